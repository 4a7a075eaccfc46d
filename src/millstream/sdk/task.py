"""Tasks and the ``@task`` decorator family (TaskFlow, as in Airflow 3).

A decorated function is a :class:`TaskDecorator`; each call of it inside a DAG creates
a :class:`Task` and returns an :class:`XComArg` for its output. ``.expand()`` creates a
mapped task instead, which the scheduler turns into one instance per element at run
time.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from millstream.core.model import InputRef, MapSource, TaskSpec
from millstream.core.trigger_rules import TriggerRule
from millstream.errors import DagDefinitionError
from millstream.sdk import setup_teardown
from millstream.sdk._location import caller_location
from millstream.sdk.assets import outlet_key
from millstream.sdk.current import current_dag
from millstream.sdk.mapping import KWARGS_ARG, validate_mapped
from millstream.sdk.taskgroup import TaskGroup, current_group
from millstream.sdk.xcom import NOTSET, ConcatArg, MapArg, XComArg, ZipArg, find_xcom_args

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG


#: Task arguments Millstream understands, with their defaults.
TASK_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "pool": None,
    "pool_slots": 1,
    "priority_weight": 1,
    "outlets": (),
    "inlets": (),
    "map_index_template": None,
    "max_active_tis_per_dagrun": None,
    "max_active_tis_per_dag": None,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "on_skipped_callback": None,
    "on_execute_callback": None,
    "multiple_outputs": False,
    "ignore_downstream_trigger_rules": True,
    "doc": None,
    "doc_md": None,
    "queue": None,
    "deadline": None,
}

CALLBACKS = (
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
    "on_execute_callback",
)

#: Extra arguments of ``@task.sensor`` (names and meanings as in Airflow).
SENSOR_DEFAULTS: dict[str, Any] = {
    "poke_interval": 60.0,
    "timeout": 7 * 24 * 3600.0,
    "mode": "poke",
    "soft_fail": False,
    "exponential_backoff": False,
    "max_wait": None,
}

#: Airflow operator arguments accepted so that DAGs port unchanged, but not acted on.
IGNORED_AIRFLOW_ARGS = frozenset(
    {
        "owner",
        "email",
        "email_on_failure",
        "email_on_retry",
        "depends_on_past",
        "wait_for_downstream",
        "do_xcom_push",
        "executor_config",
        "sla",
        "weight_rule",
        "run_as_user",
        "resources",
        "executor",
        "show_return_value_in_logs",
        "templates_dict",
    }
)


def _seconds(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{field} must be a timedelta or a number of seconds, got {type(value).__name__}")


def _check_config(config: Mapping[str, Any], where: str, kind: str = "python") -> dict[str, Any]:
    out: dict[str, Any] = {}
    known = {**TASK_DEFAULTS, **(SENSOR_DEFAULTS if kind == "sensor" else {})}
    for key, value in config.items():
        if key in IGNORED_AIRFLOW_ARGS:
            continue
        if key not in known:
            raise TypeError(
                f"{where}: unknown task argument {key!r}; known arguments are {', '.join(sorted(known))}"
            )
        out[key] = value
    if "trigger_rule" in out:
        try:
            out["trigger_rule"] = TriggerRule(out["trigger_rule"])
        except ValueError:
            raise ValueError(
                f"{where}: unknown trigger_rule {out['trigger_rule']!r}; use one of "
                f"{', '.join(r.value for r in TriggerRule)}"
            ) from None
    if "retries" in out and (not isinstance(out["retries"], int) or out["retries"] < 0):
        raise ValueError(f"{where}: retries must be a whole number >= 0, got {out['retries']!r}")
    if "mode" in out and out["mode"] not in ("poke", "reschedule"):
        raise ValueError(f"{where}: sensor mode must be 'poke' or 'reschedule', got {out['mode']!r}")
    for key in ("outlets", "inlets"):
        if key in out:
            value = out[key]
            items = list(value) if isinstance(value, list | tuple | set) else [value]
            for item in items:
                outlet_key(item, f"{where}: {key}")
            out[key] = tuple(items)
    for key in ("poke_interval", "timeout", "max_wait"):
        if key in out and out[key] is not None:
            out[key] = _seconds(out[key], key)
    return out


class Task:
    """One node of a DAG: a callable plus how and when to run it."""

    def __init__(
        self,
        *,
        task_id: str,
        python_callable: Callable[..., Any] | None,
        kind: str = "python",
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        expand_kwargs: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        dag: Any = None,
        explicit_id: bool = False,
        role: Mapping[str, Any] | None = None,
    ) -> None:
        self.filename, self.lineno = caller_location()
        the_dag = dag or current_dag()
        if the_dag is None:
            raise DagDefinitionError(
                f"task {task_id!r} is created outside a DAG; call it inside a @dag function "
                "or a `with DAG(...)` block",
                filename=self.filename,
                lineno=self.lineno,
            )
        self.dag: DAG = the_dag
        self.group: TaskGroup | None = current_group()
        self.mapped_group: TaskGroup | None = self.group.mapped_group() if self.group else None
        if self.mapped_group is not None and expand_kwargs:
            raise DagDefinitionError(
                f"task {task_id!r} is expanded inside the expanded task group "
                f"{self.mapped_group.group_id!r}; a task in a mapped group is already mapped over the "
                "group's values, so pass them as arguments instead",
                filename=self.filename,
                lineno=self.lineno,
            )
        label = task_id
        full_id = self.group.child_id(label) if self.group else label
        self.python_callable = python_callable
        self.kind = kind
        self.op_args = tuple(op_args)
        self.op_kwargs = dict(op_kwargs or {})
        self.expand_kwargs = dict(expand_kwargs or {})
        inherited = {**self.dag.default_args, **(self.group.default_args if self.group else {})}
        if kind != "sensor":  # default_args may carry sensor settings meant for sensors only
            inherited = {k: v for k, v in inherited.items() if k not in SENSOR_DEFAULTS}
        merged = {**inherited, **(config or {})}
        defaults = {**TASK_DEFAULTS, **(SENSOR_DEFAULTS if kind == "sensor" else {})}
        self.config = {**defaults, **_check_config(merged, f"task {full_id!r}", kind)}
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.is_setup = False
        self.is_teardown = False
        self.on_failure_fail_dagrun = False
        self.task_id = self.dag.add_task(self, full_id, explicit=explicit_id)
        if self.group:
            self.group.add(self)
        if role:
            if role["role"] == "setup":
                setup_teardown.make_setup(self)
            else:
                setup_teardown.make_teardown(
                    self, [], on_failure_fail_dagrun=role.get("on_failure_fail_dagrun")
                )
        setup_teardown.register_in_scopes(self)
        group_input = self.mapped_group.mapped_input if self.mapped_group else None
        for arg in find_xcom_args((self.op_args, self.op_kwargs, self.expand_kwargs, group_input)):
            self.set_upstream(arg.operator)

    # -- wiring -------------------------------------------------------------------------

    @property
    def deadline_callback(self) -> Any:
        return self.config["deadline"].callback if self.config["deadline"] else None

    @property
    def output(self) -> XComArg:
        return XComArg(self)

    @property
    def is_mapped(self) -> bool:
        """Expanded itself, or inside an expanded task group."""
        return bool(self.expand_kwargs) or self.mapped_group is not None

    def aligned_with(self, other: Task) -> bool:
        """Whether instance i of this task reads instance i of ``other`` (not all of it)."""
        if not other.is_mapped:
            return False
        if self.mapped_group is not None and other.mapped_group is self.mapped_group:
            return True
        if len(self.expand_kwargs) == 1:
            (only,) = self.expand_kwargs.values()
            while isinstance(only, MapArg):
                only = only.source
            return isinstance(only, XComArg) and only.operator is other
        return False

    def _tasks_of(self, other: Any) -> list[Task]:
        if isinstance(other, Task):
            return [other]
        if isinstance(other, XComArg):
            return [other.operator]
        if isinstance(other, TaskGroup):
            return other.roots()
        if isinstance(other, Iterable) and not isinstance(other, (str, bytes)):
            return [t for o in other for t in self._tasks_of(o)]
        raise TypeError(f"cannot set a dependency between task {self.task_id!r} and {other!r}")

    def set_downstream(self, other: Any) -> None:
        for t in self._tasks_of(other):
            if t.dag is not self.dag:
                raise DagDefinitionError(
                    f"tasks {self.task_id!r} and {t.task_id!r} belong to different DAGs",
                    filename=self.filename,
                    lineno=self.lineno,
                )
            if t is self:
                raise DagDefinitionError(
                    f"task {self.task_id!r} cannot depend on itself",
                    filename=self.filename,
                    lineno=self.lineno,
                )
            self.downstream_task_ids.add(t.task_id)
            t.upstream_task_ids.add(self.task_id)

    def set_upstream(self, other: Any) -> None:
        for t in self._tasks_of(other):
            t.set_downstream(self)

    def __rshift__(self, other: Any) -> Any:
        if isinstance(other, TaskGroup):
            for root in other.roots():
                self.set_downstream(root)
        else:
            self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        if isinstance(other, TaskGroup):
            for leaf in other.leaves():
                self.set_upstream(leaf)
        else:
            self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Task:
        self.__lshift__(other)
        return self

    def __rlshift__(self, other: Any) -> Task:
        self.__rshift__(other)
        return self

    # -- setup and teardown ---------------------------------------------------------------

    def as_setup(self) -> Task:
        setup_teardown.make_setup(self)
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> Task:
        setup_teardown.make_teardown(self, _setup_tasks(setups), on_failure_fail_dagrun)
        return self

    def __enter__(self) -> Task:
        self._scope = setup_teardown.enter_scope(self)
        return self

    def __exit__(self, *exc: object) -> None:
        setup_teardown.exit_scope(self._scope)

    # -- description --------------------------------------------------------------------

    def to_spec(self) -> TaskSpec:
        c = self.config
        backoff = c["retry_exponential_backoff"]
        if backoff is True:
            backoff = 2.0
        elif backoff is False or backoff is None:
            backoff = 0.0
        expand = self.mapped_group.mapped_input if self.mapped_group is not None else self.expand_kwargs
        map_sources = [map_source(name, value) for name, value in (expand or {}).items()]
        dag_tasks = self.dag.tasks
        aligned = sorted(t for t in self.upstream_task_ids if self.aligned_with(dag_tasks[t]))
        inputs = [
            InputRef(arg=name, task_id=v.task_id, key=v.key)
            for name, v in self.op_kwargs.items()
            if isinstance(v, XComArg)
        ]
        return TaskSpec(
            task_id=self.task_id,
            kind=self.kind,
            upstream=tuple(sorted(self.upstream_task_ids)),
            trigger_rule=TriggerRule(c["trigger_rule"]),
            retries=int(c["retries"]),
            retry_delay=_seconds(c["retry_delay"], "retry_delay") or 0.0,
            retry_exponential_backoff=float(backoff),
            max_retry_delay=_seconds(c["max_retry_delay"], "max_retry_delay"),
            execution_timeout=_seconds(c["execution_timeout"], "execution_timeout"),
            pool=c["pool"],
            pool_slots=int(c["pool_slots"]),
            queue=c["queue"],
            priority_weight=int(c["priority_weight"]),
            max_active_tis_per_dagrun=c["max_active_tis_per_dagrun"],
            max_active_tis_per_dag=c["max_active_tis_per_dag"],
            map_sources=tuple(map_sources),
            aligned=tuple(aligned),
            inputs=tuple(inputs),
            map_index_template=c["map_index_template"],
            group_id=self.group.group_id if self.group else None,
            is_setup=self.is_setup,
            is_teardown=self.is_teardown,
            on_failure_fail_dagrun=self.on_failure_fail_dagrun,
            callbacks=tuple(k for k in CALLBACKS if c.get(k)),
            deadline=c["deadline"].to_dict() if c["deadline"] else None,
            multiple_outputs=bool(c["multiple_outputs"]),
            ignore_downstream_trigger_rules=bool(c["ignore_downstream_trigger_rules"]),
            outlets=tuple(dict.fromkeys(outlet_key(a, self.task_id) for a in c["outlets"])),
            inlets=tuple(dict.fromkeys(outlet_key(a, self.task_id) for a in c["inlets"])),
            doc=c["doc_md"] or c["doc"],
            lineno=self.lineno,
        )

    def __repr__(self) -> str:
        return f"<Task {self.task_id}>"


def map_source(arg: str, value: Any) -> MapSource:
    """How a mapped argument's length is known: what the planner needs of it."""
    if isinstance(value, XComArg):
        return MapSource(arg=arg, task_id=value.task_id, key=value.key)
    if isinstance(value, MapArg):
        return map_source(arg, value.source)
    if isinstance(value, ZipArg):
        kind = "zip" if value.fillvalue is NOTSET else "zip_longest"
        return MapSource(arg=arg, kind=kind, parts=tuple(map_source("", p) for p in value.parts))
    if isinstance(value, ConcatArg):
        return MapSource(arg=arg, kind="concat", parts=tuple(map_source("", p) for p in value.parts))
    return MapSource(arg=arg, length=len(value))


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
        _check_config(
            {k: v for k, v in config.items() if k != "task_id"}, f"{self._name}.override()", self.kind
        )
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


def _decorator(kind: str) -> Callable[..., Any]:
    def make(python_callable: Callable[..., Any] | None = None, **config: Any) -> Any:
        if python_callable is not None and not callable(python_callable):
            raise TypeError(f"@task expects a function, got {python_callable!r}")
        _check_config({k: v for k, v in config.items() if k != "task_id"}, "@task", kind)
        if python_callable is not None:
            return TaskDecorator(python_callable, kind=kind, config=config)
        return lambda fn: TaskDecorator(fn, kind=kind, config=config)

    return make


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


task = _TaskNamespace()


def chain(*elements: Any) -> None:
    """``chain(a, b, [c, d], e)``: a >> b >> [c, d] >> e; two lists in a row pair up."""
    for left, right in itertools.pairwise(elements):
        if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            if len(left) != len(right):
                raise DagDefinitionError(
                    f"chain(): adjacent lists must have the same length, got {len(left)} and {len(right)}"
                )
            for a, b in zip(left, right, strict=True):
                a >> b
        elif isinstance(left, (list, tuple)):
            for a in left:
                a >> right
        else:
            left >> right


def _setup_tasks(value: Any) -> list[Task]:
    """The tasks behind ``as_teardown(setups=...)``: tasks, their outputs, or lists of them."""
    if value is None:
        return []
    if isinstance(value, XComArg):
        return [value.operator]
    if isinstance(value, Task):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _setup_tasks(v)]
    raise TypeError(f"setups= takes tasks (or their outputs), got {type(value).__name__}")
