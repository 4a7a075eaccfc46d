"""``BaseOperator`` and ``BaseSensorOperator``: Airflow's class-based operator contract.

A subclass defines ``execute(self, context)`` (its return value is the task's result),
lists attributes to render in ``template_fields``, and may override ``pre_execute``,
``post_execute`` and ``on_kill``. Its instances are ordinary Millstream tasks: they wire
with ``>>``, run through the same worker path as ``@task`` functions, and map with
``MyOperator.partial(...).expand(...)``.

When the outermost ``__init__`` of an operator returns, its template fields are checked
(each must name an attribute) and any task outputs found in them become upstream
dependencies, as Airflow does.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from millstream.errors import DagDefinitionError
from millstream.sdk import execution
from millstream.sdk._location import caller_location
from millstream.sdk.current import current_dag
from millstream.sdk.deferral import BaseTrigger, TaskDeferred
from millstream.sdk.mapping import KWARGS_ARG, validate_mapped
from millstream.sdk.task import Task
from millstream.sdk.task_args import IGNORED_AIRFLOW_ARGS, SENSOR_DEFAULTS, TASK_DEFAULTS
from millstream.sdk.taskgroup import current_group
from millstream.sdk.xcom import ConcatArg, MapArg, XComArg, ZipArg, find_xcom_args


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    """The named ``__init__`` parameters of ``cls`` and its bases, nearest first."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass in (Task, object):
            continue
        for name, p in inspect.signature(getattr(init, "__wrapped__", init)).parameters.items():
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                out.setdefault(name, p)
    return out


def _wrap_init(init: Callable[..., None]) -> Callable[..., None]:
    """Give an operator class's ``__init__`` Airflow's behaviour: arguments it names are
    filled from ``default_args``, and the outermost call finishes the task."""

    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_init_depth", 0)
        self.__dict__["_init_depth"] = depth + 1
        try:
            if depth == 0:
                where = caller_location()  # the line that created the operator, not its class
                kwargs = _with_default_args(type(self), init, args, kwargs)
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_init_depth"] = depth
        if depth == 0:
            self.filename, self.lineno = where
            self._finish_init()

    wrapper._millstream_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def _with_default_args(
    cls: type, init: Callable[..., None], args: Sequence[Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    dag = kwargs.get("dag") or current_dag()
    group = current_group()
    defaults = {**(dag.default_args if dag else {}), **(group.default_args if group else {})}
    if not defaults:
        return kwargs
    try:
        given = inspect.signature(init).bind_partial(None, *args, **kwargs).arguments
    except TypeError:
        return kwargs  # the call itself is wrong; let Python say how
    params = _init_params(cls)
    fill = {k: v for k, v in defaults.items() if k in params and k not in given and k not in kwargs}
    return {**fill, **kwargs}


class BaseOperator(Task):
    """Subclass it and define ``execute(self, context)``: Airflow's ``BaseOperator``."""

    template_fields: Sequence[str] = ()
    ui_color: str = "#fff"
    #: The kind of task the engine sees (shown by the API and UI).
    task_kind: str = "operator"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_millstream_wrapped", False):
            cls.__init__ = _wrap_init(init)  # type: ignore[method-assign]
        if isinstance(cls.__dict__.get("template_fields"), str):
            cls.template_fields = (cls.__dict__["template_fields"],)
        if isinstance(cls.__dict__.get("template_ext"), str):
            cls.template_ext = (cls.__dict__["template_ext"],)

    def __init__(self, task_id: str, *, dag: Any = None, task_group: Any = None, **kwargs: Any) -> None:
        Task.__init__(
            self,
            task_id=task_id,
            python_callable=None,
            kind=self.task_kind,
            config=kwargs,
            dag=dag,
            explicit_id=True,
            group=task_group,
        )

    def _finish_init(self) -> None:
        missing = [f for f in self.template_fields if not hasattr(self, f)]
        if missing:
            raise DagDefinitionError(
                f"{type(self).__name__}.template_fields names {', '.join(map(repr, missing))}, which "
                f"task {self.task_id!r} has no attribute for; set self.{missing[0]} in __init__ or "
                "remove it from template_fields",
                filename=self.filename,
                lineno=self.lineno,
            )
        values = [getattr(self, f) for f in self.template_fields]
        for arg in find_xcom_args(values):
            self.set_upstream(arg.operator)

    def execute(self, context: Mapping[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define execute(self, context)")

    def defer(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: Mapping[str, Any] | None = None,
        timeout: timedelta | float | None = None,
    ) -> NoReturn:
        """End this attempt and wait on ``trigger`` without holding a worker; when it fires,
        the task resumes at ``method_name(context, event=payload, **kwargs)``. ``timeout``
        fails the task if the trigger has not fired by then."""
        raise TaskDeferred(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def resume_execution(self, next_method: str, next_kwargs: Mapping[str, Any], context: Any) -> Any:
        """Go on after a trigger fired (Airflow's name; override it to change how)."""
        return getattr(self, next_method)(context, **next_kwargs)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Fix some arguments for every mapped instance; follow with ``.expand()``."""
        return OperatorPartial(cls, kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseOperator:
        # A task points at its DAG; copying one must not copy the whole DAG.
        clone = copy.copy(self)
        memo[id(self)] = clone
        return clone


BaseOperator.__init__ = _wrap_init(BaseOperator.__init__)  # type: ignore[method-assign]


class BaseSensorOperator(BaseOperator):
    """Subclass it and define ``poke(self, context)``: return True (or a
    ``PokeReturnValue``) when the condition holds."""

    ui_color = "#e6f1f2"
    task_kind = "sensor"
    # Set from the sensor arguments (see SENSOR_DEFAULTS) by __init__.
    poke_interval: float
    timeout: float
    mode: str
    soft_fail: bool
    exponential_backoff: bool
    max_wait: float | None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in SENSOR_DEFAULTS:
            setattr(self, name, self.config[name])

    def poke(self, context: Mapping[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define poke(self, context)")

    def execute(self, context: Mapping[str, Any]) -> Any:
        return execution.run_sensor(lambda: self.poke(context), self.config, context, self.task_id)


class OperatorPartial:
    """``MyOperator.partial(task_id=..., fixed=...)``: waits for ``.expand()``."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> None:
        self.operator_class = operator_class
        self.kwargs = dict(kwargs)
        if "task_id" not in self.kwargs:
            filename, lineno = caller_location()
            raise DagDefinitionError(
                f"{operator_class.__name__}.partial() needs task_id", filename=filename, lineno=lineno
            )

    def expand(self, **mapped: Any) -> MappedOperator:
        """One task instance per element of the mapped argument(s), decided at run time."""
        name = f"{self.operator_class.__name__}({self.kwargs['task_id']!r})"
        validate_mapped(name, None, mapped)
        params = _init_params(self.operator_class)
        filename, lineno = caller_location()
        for arg in mapped:
            problem = None
            if arg in self.kwargs:
                problem = "is given to both partial() and expand()"
            elif arg in TASK_DEFAULTS or arg in SENSOR_DEFAULTS or arg in IGNORED_AIRFLOW_ARGS:
                problem = "is a task setting, which Millstream cannot map; give it to partial()"
            elif arg not in params:
                problem = f"is not an argument of {self.operator_class.__name__}"
            if problem:
                raise DagDefinitionError(
                    f"{name}.expand(): {arg!r} {problem}", filename=filename, lineno=lineno
                )
        return MappedOperator(self.operator_class, self.kwargs, mapped)

    def expand_kwargs(self, value: Any) -> MappedOperator:
        """One task instance per dict of arguments."""
        if not isinstance(value, (list, tuple, XComArg, MapArg, ZipArg, ConcatArg)):
            filename, lineno = caller_location()
            raise DagDefinitionError(
                f"{self.operator_class.__name__}.expand_kwargs() takes a list of dicts or the output "
                f"of a task, got {type(value).__name__}",
                filename=filename,
                lineno=lineno,
            )
        return MappedOperator(self.operator_class, self.kwargs, {KWARGS_ARG: value})


_TASK_SETTINGS = TASK_DEFAULTS.keys() | SENSOR_DEFAULTS.keys() | IGNORED_AIRFLOW_ARGS


class MappedOperator(Task):
    """A mapped operator: one instance of ``operator_class`` per element, built at run
    time by :meth:`unmap` from the fixed arguments and that element's values."""

    def __init__(
        self, operator_class: type[BaseOperator], partial_kwargs: Mapping[str, Any], expand: Mapping[str, Any]
    ) -> None:
        self.operator_class = operator_class
        self.template_fields = tuple(operator_class.template_fields)
        self.template_ext = tuple(operator_class.template_ext)
        kwargs = {k: v for k, v in partial_kwargs.items() if k not in ("task_id", "dag", "task_group")}
        config = {k: v for k, v in kwargs.items() if k in _TASK_SETTINGS}
        self.partial_kwargs = {k: v for k, v in kwargs.items() if k not in _TASK_SETTINGS}
        Task.__init__(
            self,
            task_id=partial_kwargs["task_id"],
            python_callable=None,
            kind=operator_class.task_kind,
            op_kwargs=self.partial_kwargs,
            expand_kwargs=expand,
            config=config,
            dag=partial_kwargs.get("dag"),
            explicit_id=True,
            group=partial_kwargs.get("task_group"),
        )

    def unmap(self, values: Mapping[str, Any]) -> BaseOperator:
        """The operator for one map index, not registered in any DAG."""
        from millstream.sdk.dag import DAG

        scratch = DAG(self.dag.dag_id, schedule=None)
        with scratch:
            op = self.operator_class(task_id=self.task_id, **self.config, **self.partial_kwargs, **values)
        op.dag, op.group, op.mapped_group = self.dag, self.group, self.mapped_group
        op.upstream_task_ids, op.downstream_task_ids = self.upstream_task_ids, self.downstream_task_ids
        op.filename, op.lineno = self.filename, self.lineno
        return op

    def execute(self, context: Mapping[str, Any]) -> Any:
        raise RuntimeError(f"mapped task {self.task_id!r} runs through its unmapped operators")
