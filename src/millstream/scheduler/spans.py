"""The spans the scheduler writes: a run's, its instances' and their attempts' (the tree and
how the ids are chosen: :mod:`millstream.worker.tracing`).

Each hook is one call from the phase where the thing happens (``state.work_item`` at
dispatch, ``apply`` when an attempt's report is applied, ``commands.persist`` when a run
finishes) and returns at once when traces are off.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from millstream.core.states import TERMINAL_TASK_STATES, TaskState
from millstream.worker import tracing

if TYPE_CHECKING:
    from millstream.core.planner import FinishRun
    from millstream.scheduler.state import ActiveRun
    from millstream.worker.item import AttemptResult

#: trace id -> (task_id, map_index) -> when the instance was first dispatched in it. Kept only
#: while traces are on; a run's entry goes when the run ends. After a restart an instance's
#: span starts at its last attempt's start instead (the first dispatch is not stored).
_first_dispatch: dict[int, dict[tuple[str, int], datetime]] = {}
_MAX_TRACES = 100_000  # runs that left this scheduler without ending here (adopted elsewhere)


#: (run pk, start date) -> its trace id: hashed once per run, not per dispatch.
_trace_ids: dict[tuple[int, datetime | None], int] = {}


def _trace_of(run: ActiveRun) -> int:
    key = (run.pk, run.start_date)
    trace_id = _trace_ids.get(key)
    if trace_id is None:
        if len(_trace_ids) > _MAX_TRACES:
            _trace_ids.clear()
        trace_id = _trace_ids[key] = tracing.run_trace_id(run.pk, run.dag_id, run.run_id, run.start_date)
    return trace_id


def traceparent(run: ActiveRun, task_id: str, map_index: int, clock: Callable[[], datetime]) -> str | None:
    """The traceparent of an attempt about to be dispatched (None: traces are off)."""
    if not tracing.enabled():
        return None
    now = clock()
    trace_id = _trace_of(run)
    if len(_first_dispatch) > _MAX_TRACES:
        _first_dispatch.clear()
    _first_dispatch.setdefault(trace_id, {}).setdefault((task_id, map_index), now)
    return tracing.new_traceparent(trace_id)


def _ti_attributes(run: ActiveRun, task_id: str, map_index: int) -> dict[str, Any]:
    # Airflow's attribute names, so queries written against Airflow's spans carry over.
    return {
        "airflow.dag_id": run.dag_id,
        "airflow.dag_run.run_id": run.run_id,
        "airflow.task_id": task_id,
        "airflow.task_instance.map_index": map_index,
    }


def attempt_finished(run: ActiveRun, result: AttemptResult) -> None:
    """An attempt's report was applied: write its span, and its instance's if it ended."""
    item = result.item
    if not tracing.enabled() or item.traceparent is None:
        return
    trace_id, span_id = tracing.parse_traceparent(item.traceparent)
    ti_span = tracing.ti_span_id(trace_id, run.attempt, item.task_id, item.map_index)
    failed = (result.error or "failed") if result.state == "failed" else None
    tracing.emit(
        f"task_run.{item.instance}",
        (trace_id, span_id, ti_span),
        result.started_at,
        result.ended_at,
        # The ids are on the instance's span, its parent: every attribute costs each span a
        # few microseconds to export, and there is an attempt span per instance and try.
        {
            "airflow.task_instance.try_number": item.try_number,
            "airflow.task_instance.state": result.state,
            "millstream.hostname": result.hostname or "",
        },
        failed,
    )
    ti_state = run.planner.states[item.task_id].get(item.map_index)
    if ti_state not in TERMINAL_TASK_STATES:
        return  # up for retry, rescheduled, deferred: more attempts to come
    first = _first_dispatch.get(trace_id, {}).pop((item.task_id, item.map_index), result.started_at)
    tracing.emit(
        f"task_instance.{item.instance}",
        (trace_id, ti_span, tracing.run_span_id(trace_id)),
        min(first, result.started_at),
        result.ended_at,
        {
            **_ti_attributes(run, item.task_id, item.map_index),
            "airflow.task_instance.try_number": item.try_number,
            "airflow.task_instance.state": str(ti_state),
        },
        failed if ti_state is TaskState.FAILED else None,
    )


def run_finished(run: ActiveRun, finish: FinishRun, now: datetime) -> None:
    """The run ended: write its span, from its start."""
    if not tracing.enabled():
        return
    trace_id = _trace_of(run)
    _first_dispatch.pop(trace_id, None)
    _trace_ids.pop((run.pk, run.start_date), None)
    attrs: dict[str, Any] = {
        "airflow.dag_id": run.dag_id,
        "airflow.dag_run.run_id": run.run_id,
        "airflow.dag_run.run_type": run.run_type,
        "airflow.dag_run.state": finish.state.value,
        "millstream.dag_run.attempt": run.attempt,
    }
    if run.logical_date is not None:
        attrs["airflow.dag_run.logical_date"] = run.logical_date.isoformat()
    ok = finish.state.value == "success"
    tracing.emit(
        f"dag_run.{run.dag_id}",
        (trace_id, tracing.run_span_id(trace_id), None),
        run.start_date or now,
        now,
        attrs,
        None if ok else (finish.reason or finish.state.value),
    )
