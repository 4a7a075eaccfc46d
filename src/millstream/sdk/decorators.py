"""The ``@task`` decorator family (TaskFlow, as in Airflow 3).

A decorated function is a :class:`TaskDecorator`; each call of it inside a DAG creates
a :class:`~millstream.sdk.task.Task` and returns an :class:`XComArg` for its output.
``.expand()`` creates a mapped task instead, which the scheduler turns into one instance
per element at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.errors import DagDefinitionError, SkipTask
from millstream.sdk._location import caller_location
from millstream.sdk.mapping import KWARGS_ARG, validate_mapped
from millstream.sdk.task import PYTHON_KINDS, Task
from millstream.sdk.task_args import _check_config
from millstream.sdk.xcom import ConcatArg, MapArg, XComArg, ZipArg


class TaskDecorator:
    """What ``@task`` turns a function into: call it to add a task to the current DAG."""

    def __init__(
        self,
        function: Callable[..., Any] | None,
        *,
        kind: str = "python",
        config: Mapping[str, Any] | None = None,
        partial_kwargs: Mapping[str, Any] | None = None,
        role: Mapping[str, Any] | None = None,
    ) -> None:
        self.function = function
        self.role = dict(role) if role else None
        self.kind = kind
        self.config = dict(config or {})
        self.partial_kwargs = dict(partial_kwargs or {})
        if function is not None:
            self.__name__ = function.__name__
            self.__doc__ = function.__doc__
            self.__wrapped__ = function

    @property
    def _name(self) -> str:
        return str(self.config.get("task_id") or getattr(self.function, "__name__", "task"))

    def _config(self) -> dict[str, Any]:
        cfg = {k: v for k, v in self.config.items() if k != "task_id"}
        if self.function is not None and self.function.__doc__ and "doc" not in cfg:
            cfg["doc"] = inspect.cleandoc(self.function.__doc__)
        return cfg

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        if self.function is not None:
            self._check_binding(args, {**self.partial_kwargs, **kwargs})
        task = Task(
            task_id=self._name,
            python_callable=self.function,
            kind=self.kind,
            op_args=args,
            op_kwargs={**self.partial_kwargs, **kwargs},
            config=self._config(),
            role=self.role,
        )
        return XComArg(task)

    def _check_binding(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        assert self.function is not None
        sig = inspect.signature(self.function)
        try:
            sig.bind_partial(*args, **kwargs)
        except TypeError as e:
            filename, lineno = caller_location()
            raise DagDefinitionError(
                f"{self._name}() called with arguments that do not fit its signature: {e}",
                filename=filename,
                lineno=lineno,
            ) from None

    def override(self, **config: Any) -> TaskDecorator:
        """A copy with some task arguments changed (``task_id``, ``retries``, …)."""
        _check_decorator_config(config, f"{self._name}.override()", self.kind)
        return TaskDecorator(
            self.function,
            kind=self.kind,
            config={**self.config, **config},
            partial_kwargs=self.partial_kwargs,
            role=self.role,
        )

    def partial(self, **kwargs: Any) -> TaskDecorator:
        """Fix some arguments for every mapped instance; follow with ``.expand()``."""
        return TaskDecorator(
            self.function,
            kind=self.kind,
            config=self.config,
            partial_kwargs={**self.partial_kwargs, **kwargs},
            role=self.role,
        )

    def expand(self, **mapped: Any) -> XComArg:
        """One task instance per element of the mapped argument(s), decided at run time."""
        validate_mapped(self._name, self.function, mapped)
        overlap = set(mapped) & set(self.partial_kwargs)
        if overlap:
            filename, lineno = caller_location()
            raise DagDefinitionError(
                f"{self._name}: argument(s) {sorted(overlap)} given to both partial() and expand()",
                filename=filename,
                lineno=lineno,
            )
        return self._mapped(mapped)

    def expand_kwargs(self, value: Any) -> XComArg:
        """One task instance per dict of arguments: ``[{"a": 1, "b": 2}, {"a": 3, "b": 4}]``."""
        filename, lineno = caller_location()
        if isinstance(value, (list, tuple)):
            bad = [i for i, v in enumerate(value) if not isinstance(v, dict)]
            if bad:
                raise DagDefinitionError(
                    f"{self._name}.expand_kwargs(): element {bad[0]} is a {type(value[bad[0]]).__name__}, "
                    "expected a dict of arguments",
                    filename=filename,
                    lineno=lineno,
                )
        elif not isinstance(value, (XComArg, MapArg, ZipArg, ConcatArg)):
            raise DagDefinitionError(
                f"{self._name}.expand_kwargs() takes a list of dicts or the output of a task, got "
                f"{type(value).__name__}",
                filename=filename,
                lineno=lineno,
            )
        return self._mapped({KWARGS_ARG: value})

    def _mapped(self, expand: dict[str, Any]) -> XComArg:
        task = Task(
            task_id=self._name,
            python_callable=self.function,
            kind=self.kind,
            op_kwargs=self.partial_kwargs,
            expand_kwargs=expand,
            config=self._config(),
            role=self.role,
        )
        return XComArg(task)


def _check_decorator_config(config: dict[str, Any], where: str, kind: str) -> None:
    """The task arguments a decorator takes; ``task_id`` and the Python tasks' own
    ``templates_dict``/``templates_exts`` are the task's to handle when it is built."""
    own = {"task_id"} | (
        {"templates_dict", "templates_exts"} if kind in PYTHON_KINDS | {"bash", "sensor"} else set()
    )
    _check_config({k: v for k, v in config.items() if k not in own}, where, kind)


def _decorator(kind: str) -> Callable[..., Any]:
    def make(python_callable: Callable[..., Any] | None = None, **config: Any) -> Any:
        if python_callable is not None and not callable(python_callable):
            raise TypeError(f"@task expects a function, got {python_callable!r}")
        _check_decorator_config(config, "@task", kind)
        if python_callable is not None:
            return TaskDecorator(python_callable, kind=kind, config=config)
        return lambda fn: TaskDecorator(fn, kind=kind, config=config)

    return make


def _condition(condition: Callable[..., Any], skip_message: str | None, *, run: bool, name: str) -> Any:
    """``@task.run_if`` / ``@task.skip_if``: a ``pre_execute`` hook that skips the task by
    ``condition(context)`` (which may return ``(bool, message)``), put on top of @task."""
    default = skip_message or "Task was skipped due to condition."

    def check(context: Mapping[str, Any]) -> None:
        verdict = condition(context)
        message = default
        if isinstance(verdict, tuple):
            verdict, own = verdict
            message = own or default
        if bool(verdict) is not run:
            raise SkipTask(message)

    def decorate(task: TaskDecorator) -> TaskDecorator:
        if not isinstance(task, TaskDecorator):
            raise TypeError(f"{name} can only be used with task. decorate with @task before @{name}.")
        before = task.config.get("pre_execute")

        def pre_execute(context: Mapping[str, Any]) -> None:
            if before is not None:
                before(context)
            check(context)

        task.config["pre_execute"] = pre_execute
        return task

    return decorate


class _TaskNamespace:
    """``@task``, ``@task(...)``, ``@task.branch``, ``@task.short_circuit``, ``@task.bash``."""

    def __init__(self) -> None:
        self._python = _decorator("python")
        self.branch = _decorator("branch")
        self.short_circuit = _decorator("short_circuit")
        self.bash = _decorator("bash")
        self.sensor = _decorator("sensor")
        self.python = self._python

    def __call__(self, python_callable: Callable[..., Any] | None = None, **config: Any) -> Any:
        return self._python(python_callable, **config)

    # Python in another interpreter (see millstream.sdk.standard.isolated).
    @property
    def virtualenv(self) -> Callable[..., Any]:
        from millstream.sdk.standard import isolated

        return isolated.isolated_decorator(isolated.PythonVirtualenvOperator)

    @property
    def external_python(self) -> Callable[..., Any]:
        from millstream.sdk.standard import isolated

        return isolated.isolated_decorator(isolated.ExternalPythonOperator)

    @property
    def branch_virtualenv(self) -> Callable[..., Any]:
        from millstream.sdk.standard import isolated

        return isolated.isolated_decorator(isolated.BranchPythonVirtualenvOperator)

    @property
    def branch_external_python(self) -> Callable[..., Any]:
        from millstream.sdk.standard import isolated

        return isolated.isolated_decorator(isolated.BranchExternalPythonOperator)

    @staticmethod
    def run_if(condition: Callable[..., Any], skip_message: str | None = None) -> Any:
        """Run the task only when ``condition(context)`` is true; skip it otherwise."""
        return _condition(condition, skip_message, run=True, name="run_if")

    @staticmethod
    def skip_if(condition: Callable[..., Any], skip_message: str | None = None) -> Any:
        """Skip the task when ``condition(context)`` is true."""
        return _condition(condition, skip_message, run=False, name="skip_if")


task = _TaskNamespace()
