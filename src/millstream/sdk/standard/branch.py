"""Branching and short-circuit operators, with Airflow 3.3's skip semantics.

A branch returns the task ids (or task group ids) to follow; every other task directly
downstream of it is skipped, and the skip spreads through the trigger rules as usual.
The engine is told which direct downstream tasks to follow (:func:`branch_follow`), so the
scheduler's pure core does the skipping, the same way for ``@task.branch`` and for these
classes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from millstream.core.timetables import RunInfo, from_spec
from millstream.errors import DagDefinitionError, TaskFlowError
from millstream.sdk.baseoperator import BaseOperator
from millstream.sdk.operators import PythonOperator
from millstream.sdk.standard.weekday import WeekDay

if TYPE_CHECKING:
    from millstream.sdk.task import Task


def _chosen_ids(task_id: str, value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        chosen = list(value)
        bad = sorted({f"{v!r} ({type(v).__name__})" for v in chosen if not isinstance(v, str)})
        if bad:
            raise TaskFlowError(
                f"branch task {task_id!r} returned values that are not task ids: {', '.join(bad)}; "
                "return a task id, a task group id, a list of them, or None"
            )
        return set(chosen)
    raise TaskFlowError(
        f"branch task {task_id!r} must return a task id, a task group id, a list of them or None, "
        f"got {type(value).__name__}"
    )


def branch_follow(task: Task, value: Any) -> tuple[str, ...]:
    """The direct downstream tasks a branch that returned ``value`` goes on with.

    As in Airflow: a task group id stands for the group's first tasks; a chosen task's own
    downstream tasks count as chosen, so a join that is both directly downstream of the
    branch and after the chosen path is not skipped; ``None`` or ``[]`` skips them all.
    """
    dag = task.dag
    chosen = _chosen_ids(task.task_id, value)
    groups = getattr(dag, "task_group_dict", {})
    unknown = sorted(c for c in chosen if c not in dag.tasks and c not in groups)
    if unknown:
        raise TaskFlowError(
            f"branch task {task.task_id!r} returned {unknown}, which are neither tasks nor task groups "
            f"of DAG {dag.dag_id!r}; choose from its direct downstream tasks "
            f"{sorted(task.downstream_task_ids)}"
        )
    follow: set[str] = set()
    stack = [r.task_id for c in chosen for r in (groups[c].roots() if c in groups else [dag.tasks[c]])]
    while stack:
        t = stack.pop()
        if t not in follow:
            follow.add(t)
            stack.extend(dag.tasks[t].downstream_task_ids)
    return tuple(sorted(d for d in task.downstream_task_ids if d in follow))


class BaseBranchOperator(BaseOperator):
    """Subclass it and define ``choose_branch(self, context)``: return the task id(s) or
    task group id(s) to follow; the other direct downstream tasks are skipped."""

    task_kind = "branch"
    inherits_from_skipmixin = True

    def choose_branch(self, context: Mapping[str, Any]) -> str | Iterable[str] | None:
        raise NotImplementedError(f"{type(self).__name__} must define choose_branch(self, context)")

    def execute(self, context: Mapping[str, Any]) -> Any:
        return self.choose_branch(context)


class BranchPythonOperator(BaseBranchOperator, PythonOperator):
    """``python_callable`` returns the task id(s) or group id(s) to follow."""

    def choose_branch(self, context: Mapping[str, Any]) -> Any:
        return PythonOperator.execute(self, context)


class ShortCircuitOperator(PythonOperator):
    """A falsy result of ``python_callable`` skips what is downstream.

    With ``ignore_downstream_trigger_rules=True`` (the default) every task downstream is
    skipped whatever its trigger rule; with False only the direct downstream tasks are,
    and the others follow their trigger rules. Teardown tasks are never skipped.
    """

    task_kind = "short_circuit"
    inherits_from_skipmixin = True

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(ignore_downstream_trigger_rules=ignore_downstream_trigger_rules, **kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules


def _run_date(context: Mapping[str, Any]) -> dt.datetime:
    now = context.get("logical_date")
    if now is None:
        now = context["dag_run"].run_after
    return now  # type: ignore[no-any-return]


class LatestOnlyOperator(BaseBranchOperator):
    """Skips its direct downstream tasks unless the run is the latest scheduled one.

    A manual run always goes on. A scheduled or backfill run goes on only while now is
    inside its schedule window: after the start of its data interval and not after the end
    of the next run's. A timetable with no next run (the last one) goes on too.
    """

    ui_color = "#e9ffdb"

    def choose_branch(self, context: Mapping[str, Any]) -> list[str]:
        run = context["dag_run"]
        downstream = sorted(self.downstream_task_ids)
        if run.run_type == "manual":
            print("Manually triggered DAG run: allowing execution to proceed.")
            return downstream
        window = self._window(run)
        if window is None:
            print("Last scheduled execution: allowing execution to proceed.")
            return downstream
        now = dt.datetime.now(dt.UTC)
        left, right = window
        print(f"Checking latest only with left_window: {left} right_window: {right} now: {now}")
        if not left < now <= right:
            print("Not latest execution, skipping downstream.")
            return []
        print("Latest, allowing execution to proceed.")
        return downstream

    def _window(self, run: Any) -> tuple[dt.datetime, dt.datetime] | None:
        date = run.logical_date or getattr(run, "run_after", None)
        if date is None:
            return None
        start: dt.datetime = run.data_interval_start or date
        end: dt.datetime = run.data_interval_end or date
        timetable = from_spec(self.dag.timetable_spec)
        current = RunInfo(date, start, end, end)
        upcoming = timetable.next_run(last=current, now=end, start=None, end=None, catchup=True)
        if upcoming is None:
            return None
        return start, upcoming.interval_end


def _with_zone(value: dt.datetime | None, zone: str) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


def target_times_as_dates(
    base: dt.datetime, lower: dt.datetime | dt.time | None, upper: dt.datetime | dt.time | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Times of day become datetimes on ``base``'s date; an upper time before the lower one
    means the next day (a window across midnight)."""
    if isinstance(lower, dt.datetime) and isinstance(upper, dt.datetime):
        return lower, upper
    low = dt.datetime.combine(base, lower) if isinstance(lower, dt.time) else lower
    up = dt.datetime.combine(base, upper) if isinstance(upper, dt.time) else upper
    if low is not None and up is not None and up < low:
        up += dt.timedelta(days=1)
    return low, up


class BranchDateTimeOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` while now (or the logical date, with
    ``use_task_logical_date``) is between ``target_lower`` and ``target_upper``."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        target_lower: dt.datetime | dt.time | None,
        target_upper: dt.datetime | dt.time | None,
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                f"BranchDateTimeOperator {self.task_id!r}: both target_upper and target_lower are "
                "None; give at least one to compare the current datetime with",
                filename=self.filename,
                lineno=self.lineno,
            )
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date

    def choose_branch(self, context: Mapping[str, Any]) -> str | Iterable[str]:
        now = _run_date(context) if self.use_task_logical_date else dt.datetime.now(dt.UTC)
        lower, upper = target_times_as_dates(now, self.target_lower, self.target_upper)
        lower = _with_zone(lower, self.dag.timezone)
        upper = _with_zone(upper, self.dag.timezone)
        if (upper is not None and upper < now) or (lower is not None and lower > now):
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` on the day(s) of ``week_day``: today in the
    DAG's timezone, or the logical date's day with ``use_task_logical_date``."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        self._week_day_num = WeekDay.validate_week_day(week_day)

    def choose_branch(self, context: Mapping[str, Any]) -> str | Iterable[str]:
        if self.use_task_logical_date:
            now = _run_date(context)
        else:
            now = dt.datetime.now(ZoneInfo(self.dag.timezone))
        if now.isoweekday() in self._week_day_num:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false
