"""DAGs: ``@dag`` and ``with DAG(...)``, and how a DAG file's DAGs are collected."""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from millstream.core.model import DagSpec
from millstream.core.priority import effective_weights
from millstream.core.timetables import (
    ContinuousTimetable,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaTimetable,
    DeltaTriggerTimetable,
    OnceTimetable,
    Timetable,
    validate_cron,
)
from millstream.core.timetables import ScheduleError as CoreScheduleError
from millstream.errors import CycleError, DagDefinitionError, DuplicateTaskIdError, ScheduleError
from millstream.sdk import engine, setup_teardown
from millstream.sdk._location import caller_location
from millstream.sdk.assets import Asset, split_schedule
from millstream.sdk.compat import DAG_ARGUMENTS, dag_refusal
from millstream.sdk.current import enter_dag, exit_dag
from millstream.sdk.deadlines import DeadlineAlert
from millstream.sdk.params import Param, params_to_dict
from millstream.sdk.xcom import DagParam

if TYPE_CHECKING:
    from millstream.sdk.results import RunResult
    from millstream.sdk.task import Task

_DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: While a DAG file is imported, every DAG created is appended here (see collect_dags).
_collector: ContextVar[list[DAG] | None] = ContextVar("millstream_collector", default=None)


@contextmanager
def collect_dags() -> Iterator[list[DAG]]:
    """Collect the DAGs created inside the block, assigned to a name or not."""
    found: list[DAG] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)


def _cron_data_intervals() -> bool:
    return os.environ.get("MILLSTREAM_CRON_DATA_INTERVALS", "").lower() in {"1", "true", "yes"}


def schedule_to_spec(schedule: Any, tz: str) -> dict[str, Any]:
    """The serialized timetable for a ``schedule=`` value; raises ScheduleError if bad."""
    if schedule is None:
        return {"type": "none"}
    if isinstance(schedule, str):
        s = schedule.strip()
        if s == "@once":
            return {"type": "once"}
        if s == "@continuous":
            return {"type": "continuous"}
        validate_cron(s)
        kind = "cron_interval" if _cron_data_intervals() else "cron"
        return {"type": kind, "expr": s, "tz": tz}
    if isinstance(schedule, timedelta):
        if schedule.total_seconds() <= 0:
            raise ScheduleError(f"a timedelta schedule must be positive, got {schedule}")
        kind = "delta_interval" if _cron_data_intervals() else "delta"
        return {"type": kind, "seconds": schedule.total_seconds()}
    if isinstance(schedule, CronDataIntervalTimetable):
        return {"type": "cron_interval", "expr": schedule.summary, "tz": schedule.tz.key}
    if isinstance(schedule, CronTriggerTimetable):
        spec: dict[str, Any] = {"type": "cron", "expr": schedule.summary, "tz": schedule.tz.key}
        if schedule.interval:
            spec["interval"] = schedule.interval.total_seconds()
        return spec
    if isinstance(schedule, DeltaTimetable):
        return {"type": "delta_interval", "seconds": schedule.delta.total_seconds()}
    if isinstance(schedule, DeltaTriggerTimetable):
        return {"type": "delta", "seconds": schedule.delta.total_seconds()}
    if isinstance(schedule, OnceTimetable):
        return {"type": "once"}
    if isinstance(schedule, ContinuousTimetable):
        return {"type": "continuous"}
    if isinstance(schedule, Timetable):
        return {"type": "none"}
    raise ScheduleError(
        f"schedule {schedule!r} is not understood; use None, a cron string, a preset such as "
        "'@daily', '@once', '@continuous', a timedelta or a timetable object"
    )


def _as_utc(value: datetime | None, field: str) -> tuple[datetime | None, str]:
    """Naive datetimes are taken as UTC, as Airflow does; returns (utc value, zone name)."""
    if value is None:
        return None, "UTC"
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC), "UTC"
    zone = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else "UTC"
    return value.astimezone(UTC), zone


class DAG:
    """A set of tasks with dependencies and a schedule."""

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: Any = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
        max_active_runs: int = 16,
        max_active_tasks: int = 16,
        dagrun_timeout: timedelta | None = None,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Any = (),
        on_success_callback: Callable[..., Any] | None = None,
        on_failure_callback: Callable[..., Any] | None = None,
        description: str | None = None,
        doc_md: str | None = None,
        timezone: str | None = None,
        retries: int = 0,
        retry_strategy: str = "failed_only",
        deadline: DeadlineAlert | None = None,
        template_searchpath: str | Sequence[str] | None = None,
        template_undefined: type | None = None,
        user_defined_macros: Mapping[str, Any] | None = None,
        user_defined_filters: Mapping[str, Callable[..., Any]] | None = None,
        render_template_as_native_obj: bool = False,
        jinja_environment_kwargs: Mapping[str, Any] | None = None,
        dag_display_name: str | None = None,
        is_paused_upon_creation: bool | None = None,
        owner_links: Mapping[str, str] | None = None,
        **airflow_only: Any,
    ) -> None:
        self.filename, self.lineno = caller_location()
        if not isinstance(dag_id, str) or not _DAG_ID_RE.match(dag_id):
            raise DagDefinitionError(
                f"invalid dag_id {dag_id!r}: use letters, digits, '_', '.' and '-' only",
                filename=self.filename,
                lineno=self.lineno,
            )
        unknown = set(airflow_only) - set(DAG_ARGUMENTS)
        if unknown:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: unknown argument(s) {', '.join(sorted(unknown))}",
                filename=self.filename,
                lineno=self.lineno,
            )
        for key, value in airflow_only.items():
            reason = dag_refusal(key, value)
            if reason:
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: {key}={value!r} is refused: {reason}",
                    filename=self.filename,
                    lineno=self.lineno,
                )
        if owner_links is not None and not (
            isinstance(owner_links, Mapping) and all(isinstance(v, str) for v in owner_links.values())
        ):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: owner_links must map owner names to URLs, got {owner_links!r}",
                filename=self.filename,
                lineno=self.lineno,
            )
        self.dag_display_name = dag_display_name
        self.is_paused_upon_creation = is_paused_upon_creation
        self.owner_links = dict(owner_links or {})
        self.dag_id = dag_id
        # As in Airflow, default_args may give the DAG its start and end dates.
        start_date = start_date or (default_args or {}).get("start_date")
        end_date = end_date or (default_args or {}).get("end_date")
        self.start_date, zone = _as_utc(start_date, "start_date")
        self.end_date, _ = _as_utc(end_date, "end_date")
        self.timezone = timezone or zone
        time_schedule, self.asset_trigger = split_schedule(schedule)
        try:
            self.timetable_spec = schedule_to_spec(time_schedule, self.timezone)
        except CoreScheduleError as e:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule: {e}", filename=self.filename, lineno=self.lineno
            ) from None
        self.schedule = schedule
        self.catchup = catchup
        self.max_active_runs = max_active_runs
        self.max_active_tasks = max_active_tasks
        self.dagrun_timeout = dagrun_timeout
        self.default_args = dict(default_args or {})
        self.params: dict[str, Any] = dict(params or {})
        self.tags = tuple(tags)
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.description = description
        self.doc_md = doc_md
        if retry_strategy not in ("failed_only", "all"):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: retry_strategy must be 'failed_only' or 'all', got {retry_strategy!r}",
                filename=self.filename,
                lineno=self.lineno,
            )
        self.retries = retries
        self.retry_strategy = retry_strategy
        self.deadline = deadline
        # Templating (see millstream.sdk.templating); None means StrictUndefined, as in Airflow.
        self.template_searchpath = template_searchpath
        self.template_undefined = template_undefined
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.render_template_as_native_obj = bool(render_template_as_native_obj)
        self.jinja_environment_kwargs = dict(jinja_environment_kwargs or {})
        self.deadline_callback = deadline.callback if deadline else None
        self.tasks: dict[str, Task] = {}
        # (upstream, downstream) -> where the edge was written, in the order written: a
        # cycle error points at the edge that closed the loop, not at a task's creation.
        self.edge_sites: dict[tuple[str, str], tuple[str | None, int | None]] = {}
        self.task_group_ids: set[str] = set()
        self.task_group_dict: dict[str, Any] = {}  # group id -> TaskGroup
        collector = _collector.get()
        if collector is not None:
            collector.append(self)

    # -- building -----------------------------------------------------------------------

    def __enter__(self) -> DAG:
        self._token = enter_dag(self)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        exit_dag(self._token)
        if exc_type is None:
            self.validate()

    def add_task(self, task: Task, task_id: str, *, explicit: bool) -> str:
        """Register ``task``; decorated tasks called twice get ``name__1``, ``name__2``."""
        if task_id in self.tasks or task_id in self.task_group_ids:
            if explicit:
                raise DuplicateTaskIdError(
                    f"DAG {self.dag_id!r} already has a task {task_id!r}; task ids must be unique",
                    filename=task.filename,
                    lineno=task.lineno,
                )
            base = re.sub(r"__\d+$", "", task_id)
            n = 1
            while f"{base}__{n}" in self.tasks:
                n += 1
            task_id = f"{base}__{n}"
        self.tasks[task_id] = task
        return task_id

    def get_task(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise KeyError(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    @property
    def task_ids(self) -> list[str]:
        return list(self.tasks)

    def validate(self) -> None:
        """Reject cycles (naming the loop and the line of a task in it) and misused
        setups and teardowns."""
        self._validate_acyclic()
        setup_teardown.validate(self.tasks)

    def _validate_acyclic(self) -> None:
        indeg = {t: len(task.upstream_task_ids) for t, task in self.tasks.items()}
        ready = [t for t, d in indeg.items() if d == 0]
        seen = 0
        while ready:
            t = ready.pop()
            seen += 1
            for d in self.tasks[t].downstream_task_ids:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
        if seen == len(self.tasks):
            return
        cycle = self._find_cycle({t for t, d in indeg.items() if d > 0})
        edges = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        order = {e: i for i, e in enumerate(self.edge_sites)}
        closing = max(edges, key=lambda e: order.get(e, -1))
        filename, lineno = self.edge_sites.get(closing, (None, None))
        if lineno is None:
            filename, lineno = self.tasks[cycle[0]].filename, self.tasks[cycle[0]].lineno
        raise CycleError(
            f"DAG {self.dag_id!r} has a cycle: {' >> '.join([*cycle, cycle[0]])} "
            f"(closed by the edge {closing[0]} >> {closing[1]})",
            filename=filename,
            lineno=lineno,
        )

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        start = sorted(candidates)[0]
        path: list[str] = []
        index: dict[str, int] = {}
        node = start
        while node not in index:
            index[node] = len(path)
            path.append(node)
            node = sorted(d for d in self.tasks[node].downstream_task_ids if d in candidates)[0]
        return path[index[node] :]

    # -- description --------------------------------------------------------------------

    def topological_order(self) -> list[str]:
        indeg = {t: len(task.upstream_task_ids) for t, task in self.tasks.items()}
        order: list[str] = []
        ready = [t for t in self.tasks if indeg[t] == 0]
        while ready:
            t = ready.pop(0)
            order.append(t)
            for d in sorted(self.tasks[t].downstream_task_ids, key=list(self.tasks).index):
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
        return order

    def to_spec(self) -> DagSpec:
        weights = effective_weights(
            {t: int(task.config["priority_weight"]) for t, task in self.tasks.items()},
            {t: task.config["weight_rule"] for t, task in self.tasks.items()},
            {t: task.downstream_task_ids for t, task in self.tasks.items()},
            {t: task.upstream_task_ids for t, task in self.tasks.items()},
        )
        return DagSpec(
            dag_id=self.dag_id,
            tasks=tuple(self.tasks[t].to_spec(weights[t]) for t in self.topological_order()),
            fileloc=os.path.abspath(self.filename) if self.filename else "",
            timetable=self.timetable_spec,
            start_date=self.start_date.isoformat() if self.start_date else None,
            end_date=self.end_date.isoformat() if self.end_date else None,
            catchup=self.catchup,
            max_active_runs=self.max_active_runs,
            max_active_tasks=self.max_active_tasks,
            dagrun_timeout=self.dagrun_timeout.total_seconds() if self.dagrun_timeout else None,
            params=params_to_dict(self.params),
            tags=self.tags,
            description=self.description,
            doc=self.doc_md,
            callbacks=tuple(
                k for k in ("on_success_callback", "on_failure_callback") if getattr(self, k) is not None
            ),
            retries=self.retries,
            retry_strategy=self.retry_strategy,
            deadline=self.deadline.to_dict() if self.deadline else None,
            asset_trigger=self.asset_trigger.to_dict() if self.asset_trigger else None,
            assets=tuple(a.to_dict() for a in self.assets()),
            display_name=self.dag_display_name,
            is_paused_upon_creation=self.is_paused_upon_creation,
            owner_links=dict(self.owner_links),
        )

    def assets(self) -> list[Asset]:
        """Every asset the DAG schedules on, produces or reads, each once by name."""
        found: list[Asset] = []
        if self.asset_trigger is not None:
            found.extend(self.asset_trigger.condition.iter_assets())
        for t in self.tasks.values():
            found.extend(a for a in (*t.config["outlets"], *t.config["inlets"]) if isinstance(a, Asset))
        by_name: dict[str, Asset] = {}
        for a in found:
            seen = by_name.setdefault(a.name, a)
            if seen.uri != a.uri:
                raise DagDefinitionError(
                    f"DAG {self.dag_id!r} names two different assets {a.name!r}: uri {seen.uri!r} "
                    f"and {a.uri!r}; an asset name must mean one thing",
                    filename=self.filename,
                    lineno=self.lineno,
                )
            if a.watchers and not seen.watchers:
                by_name[a.name] = a
        return list(by_name.values())

    def test(
        self,
        run_conf: Mapping[str, Any] | None = None,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        mark_success_pattern: str | re.Pattern[str] | None = None,
    ) -> RunResult:
        """Run this DAG once, in this process, and return the finished run.

        Uses the real scheduler and store (an in-memory SQLite database) with the inline
        executor. A failing task does not raise: the run's state says what happened, and
        ``RunResult.failures()`` says why, with tracebacks. Tasks whose id fully matches
        ``mark_success_pattern`` are marked successful without running, as in Airflow.
        """
        return engine.inline_runner()(
            self,
            conf=run_conf if run_conf is not None else conf,
            logical_date=logical_date,
            mark_success_pattern=mark_success_pattern,
        )

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id}>"


def dag(dag_id: Any = None, **dag_kwargs: Any) -> Any:
    """Decorate a function that builds a DAG; calling it creates and registers the DAG.

    The function's own parameters become DAG params, as in Airflow: inside the function
    they stand for the run-time value and can be passed to tasks.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., DAG]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any) -> DAG:
            bound = sig.bind_partial(*args, **kwargs)
            fn_params: dict[str, Any] = {}
            call_args: dict[str, Any] = {}
            for name, p in sig.parameters.items():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                default = bound.arguments.get(name, p.default)
                if default is inspect.Parameter.empty:
                    raise DagDefinitionError(f"@dag {fn.__name__}(): parameter {name!r} needs a default")
                fn_params[name] = default
                call_args[name] = DagParam(name, default.default if isinstance(default, Param) else default)
            params = {**fn_params, **dict(dag_kwargs.get("params") or {})}
            kw = {k: v for k, v in dag_kwargs.items() if k != "params"}
            if not kw.get("description") and fn.__doc__:
                kw["description"] = inspect.cleandoc(fn.__doc__).splitlines()[0]
            kw.setdefault("doc_md", inspect.cleandoc(fn.__doc__) if fn.__doc__ else None)
            with DAG(dag_id or fn.__name__, params=params, **kw) as the_dag:
                the_dag.filename, the_dag.lineno = caller_location()
                fn(**call_args)
            return the_dag

        build.dag_id = dag_id or fn.__name__  # type: ignore[attr-defined]
        return build

    if callable(dag_id) and not isinstance(dag_id, str):
        fn, dag_id = dag_id, None
        return wrap(fn)
    return wrap
