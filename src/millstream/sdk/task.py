"""Tasks and the ``@task`` decorator family (TaskFlow, as in Airflow 3).

A decorated function is a :class:`TaskDecorator`; each call of it inside a DAG creates
a :class:`Task` and returns an :class:`XComArg` for its output. ``.expand()`` creates a
mapped task instead, which the scheduler turns into one instance per element at run
time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from millstream.core.model import InputRef, MapSource, TaskSpec
from millstream.core.trigger_rules import TriggerRule
from millstream.errors import DagDefinitionError
from millstream.sdk import setup_teardown
from millstream.sdk._location import caller_location
from millstream.sdk.assets import outlet_key
from millstream.sdk.compat import OPERATOR_ARGUMENTS
from millstream.sdk.current import current_dag
from millstream.sdk.edges import EdgeModifier
from millstream.sdk.mail import MAIL_FLAGS
from millstream.sdk.mail import wanted as mail_wanted
from millstream.sdk.task_args import (
    CALLBACKS,
    IGNORED_AIRFLOW_ARGS,
    TASK_DEFAULTS,
    _check_config,
    _seconds,
    kind_defaults,
)
from millstream.sdk.taskgroup import TaskGroup, current_group
from millstream.sdk.xcom import NOTSET, ConcatArg, MapArg, XComArg, ZipArg, find_xcom_args

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG


#: What a ui_color may be (it lands in the UI's styles): #rgb, #rrggbb(aa) or a colour name.
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}")

#: How the graph names a decorated task, by kind (as Airflow's graph does).
_DECORATOR_NAMES = {
    "bash": "@task.bash",
    "sensor": "@task.sensor",
    "branch": "@task.branch",
    "short_circuit": "@task.short_circuit",
}

#: Kinds of task whose body is the Python callable (``execute`` calls it).
PYTHON_KINDS = frozenset({"python", "branch", "short_circuit"})


class Task:
    """One node of a DAG: what to run (``execute``) plus how and when to run it.

    Decorated tasks are Tasks; operator classes (``BaseOperator`` and its subclasses)
    derive from it. The worker treats them all alike: it renders ``template_fields`` on
    the attempt's own copy, then calls ``pre_execute``, ``execute`` and ``post_execute``.
    """

    #: Attributes rendered with Jinja just before ``execute`` (Airflow's contract).
    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    #: A template field's string ending in one of these is the name of a template file.
    template_ext: Sequence[str] = ()
    template_fields_renderers: Mapping[str, str] = {}
    #: The command a bash task is running (set on the attempt's own copy), for on_kill.
    _command: Any = None
    ui_color: str = "#ffefeb"
    ui_fgcolor: str = "#000"
    templates_dict: Any = None

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
        group: TaskGroup | None = None,
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
        self.group: TaskGroup | None = group or current_group()
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
        # default_args may also carry sensor settings meant for sensors only, and operator
        # arguments meant for the operator classes that take them (as in Airflow).
        accepted = TASK_DEFAULTS.keys() | IGNORED_AIRFLOW_ARGS | kind_defaults(kind).keys()
        # start_date and end_date in default_args are the DAG's (as in Airflow).
        inherited = {
            k: v for k, v in inherited.items() if k in accepted and k not in ("start_date", "end_date")
        }
        merged = {**inherited, **(config or {})}
        for key in ("start_date", "end_date"):
            self._check_own_date(key, merged.pop(key, None), full_id)
        if python_callable is not None and kind in PYTHON_KINDS | {"bash", "sensor"}:
            self.templates_dict = merged.pop("templates_dict", None)
            exts = merged.pop("templates_exts", None)
            if exts:
                self.template_ext = tuple(exts)
        defaults = {**TASK_DEFAULTS, **kind_defaults(kind)}
        self.config = {**defaults, **_check_config(merged, f"task {full_id!r}", kind)}
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.edge_labels: dict[str, str] = {}  # upstream task id -> the Label on that edge
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
        if kind == "bash":  # templated as BashOperator's are; another task's output may fill them
            self.env, self.cwd = self.config["env"], self.config["cwd"]
            self.template_fields = (*self.template_fields, "env", "cwd")
        bash = (self.config.get("env"), self.config.get("cwd"))
        for arg in find_xcom_args((self.op_args, self.op_kwargs, self.expand_kwargs, group_input, bash)):
            self.set_upstream(arg.operator)

    def _check_own_date(self, key: str, value: Any, task_id: str) -> None:
        if value is None:
            return
        from millstream.sdk.dag import _as_utc

        mine, _ = _as_utc(value, key)
        if mine != getattr(self.dag, key):
            raise DagDefinitionError(
                f"task {task_id!r}: {key}={value!r} differs from the DAG's and is refused: "
                f"{OPERATOR_ARGUMENTS[key].note}",
                filename=self.filename,
                lineno=self.lineno,
            )

    @property
    def owner(self) -> str:
        return str(self.config["owner"])

    @property
    def log(self) -> logging.Logger:
        """The task's logger (``logger_name``, else one named for its class); its records go
        to the attempt's log."""
        name = self.config["logger_name"] or f"millstream.task.{type(self).__module__}.{type(self).__name__}"
        return logging.getLogger(name)

    @property
    def task_display_name(self) -> str:
        return str(self.config["task_display_name"] or self.task_id)

    # -- running (Airflow's operator contract) --------------------------------------------

    def execute(self, context: Mapping[str, Any]) -> Any:
        """Run the task; the return value is its result (``return_value`` XCom)."""
        from millstream.sdk import execution

        if self.python_callable is None:
            raise NotImplementedError(f"{type(self).__name__} must define execute(self, context)")
        fn = self.python_callable
        if self.kind == "bash":
            args, kwargs = execution.call_arguments(fn, self.op_args, self.op_kwargs, context)
            command = self.render_template(fn(*args, **kwargs), context, (".sh", ".bash"))
            c = self.config
            last = execution.run_bash(
                str(command),
                env=self.env,
                append_env=c["append_env"],
                cwd=self.cwd,
                output_encoding=c["output_encoding"],
                skip_on_exit_code=c["skip_on_exit_code"],
                context=context,
                on_start=lambda p: setattr(self, "_command", p),
            )
            return c["output_processor"](last) if c["output_processor"] else last
        if self.kind == "sensor":

            def poke() -> Any:
                args, kwargs = execution.call_arguments(fn, self.op_args, self.op_kwargs, context)
                return fn(*args, **kwargs)

            return execution.run_sensor(poke, self.config, context, self.task_id)
        return self.call_python(context)

    def call_python(self, context: Mapping[str, Any]) -> Any:
        """``python_callable(*op_args, **op_kwargs)`` plus the context values it names
        (``templates_dict`` among them): what every Python-calling task does."""
        from millstream.sdk import execution

        fn = self.python_callable
        assert fn is not None
        ctx = context if self.templates_dict is None else {**context, "templates_dict": self.templates_dict}
        args, kwargs = execution.call_arguments(fn, self.op_args, self.op_kwargs, ctx)
        return fn(*args, **kwargs)

    def external_spec(self) -> dict[str, Any] | None:
        """What this task points at in other DAGs (cross-DAG operators say; see TaskSpec)."""
        return None

    def pre_execute(self, context: Mapping[str, Any]) -> None:
        """Called just before ``execute``, after the template fields are rendered."""

    def post_execute(self, context: Mapping[str, Any], result: Any = None) -> None:
        """Called just after a successful ``execute`` with its result."""

    def on_kill(self) -> None:
        """Called when a running attempt is stopped (timeout, mark, cancel, worker shutdown);
        release what ``execute`` holds. A ``@task.bash`` stops its command."""
        if self.kind == "bash":
            from millstream.sdk import execution

            execution.terminate(self._command)

    def render_template(self, content: Any, context: Mapping[str, Any], exts: Sequence[str] = ()) -> Any:
        """Render ``content`` (a string, or lists and dicts of them) with this task's DAG's
        Jinja environment, as Airflow's ``BaseOperator.render_template`` does."""
        from millstream.sdk.templating import Renderer

        renderer = Renderer(
            self.dag, context, where=self.where, native=self.config["render_template_as_native_obj"]
        )
        return renderer.render(content, tuple(exts or self.template_ext))

    @property
    def where(self) -> str:
        """How errors name this task: DAG, task and the line that defined it."""
        at = f" ({self.filename}:{self.lineno})" if self.filename else ""
        return f"task {self.task_id!r} of DAG {self.dag.dag_id!r}{at}"

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
            if t.task_id not in self.downstream_task_ids and self.dag is not None:
                self.dag.edge_sites[(self.task_id, t.task_id)] = caller_location()
            self.downstream_task_ids.add(t.task_id)
            t.upstream_task_ids.add(self.task_id)

    def set_upstream(self, other: Any) -> None:
        for t in self._tasks_of(other):
            t.set_downstream(self)

    def __rshift__(self, other: Any) -> Any:
        if isinstance(other, EdgeModifier):
            return NotImplemented  # Label.__rrshift__ wires and names the edge
        if isinstance(other, TaskGroup):
            for root in other.roots():
                self.set_downstream(root)
        else:
            self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        if isinstance(other, EdgeModifier):
            return NotImplemented
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

    def to_spec(self, priority_weight: int | None = None) -> TaskSpec:
        """What the engine needs of the task; ``priority_weight`` is the effective weight
        (its ``weight_rule`` applied by the DAG)."""
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
            priority_weight=int(c["priority_weight"]) if priority_weight is None else priority_weight,
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
            # Mail is sent where callbacks run: "mail:<kind>" marks a kind that mails someone.
            callbacks=tuple(k for k in CALLBACKS if c.get(k))
            + tuple(f"mail:{k}" for k in MAIL_FLAGS if mail_wanted(c, k)),
            deadline=c["deadline"].to_dict() if c["deadline"] else None,
            multiple_outputs=bool(c["multiple_outputs"]),
            ignore_downstream_trigger_rules=bool(c["ignore_downstream_trigger_rules"]),
            outlets=tuple(dict.fromkeys(outlet_key(a, self.task_id) for a in c["outlets"])),
            inlets=tuple(dict.fromkeys(outlet_key(a, self.task_id) for a in c["inlets"])),
            doc=c["doc_md"] or c["doc"] or c["doc_rst"] or c["doc_json"] or c["doc_yaml"],
            display_name=c["task_display_name"],
            lineno=self.lineno,
            # As in Airflow, wait_for_downstream implies depends_on_past.
            depends_on_past=bool(c["depends_on_past"] or c["wait_for_downstream"]),
            ignore_first_depends_on_past=bool(c["ignore_first_depends_on_past"]),
            wait_for_downstream=bool(c["wait_for_downstream"]),
            operator=type(self).__name__
            if type(self) is not Task
            else _DECORATOR_NAMES.get(self.kind, "@task"),
            ui_color=self.ui_color if _COLOR.fullmatch(str(self.ui_color)) else None,
            edge_labels={u: lbl for u, lbl in self.edge_labels.items() if u in self.upstream_task_ids},
            external=self.external_spec(),
            renderers={
                str(k): str(v)
                for k, v in dict(self.template_fields_renderers).items()
                if k in self.template_fields
            },
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
