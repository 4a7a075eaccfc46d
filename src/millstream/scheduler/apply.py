"""Apply: what workers reported becomes the planner's decisions, written in one transaction.

Each report is fenced first: one about an attempt that is no longer the latest (a worker
presumed dead that came back) is dropped, never applied over a newer attempt. The whole
turn's reports are one transaction; if it fails, the reports are kept and applied again
next turn, since the workers told us only once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from millstream.core.planner import FinishRun
from millstream.core.states import IllegalTransition, TaskState
from millstream.scheduler import callbacks, deferred, spans
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.commands import commit_batch, persist
from millstream.scheduler.lifecycle import after_commit
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.store import task_instances as ti_q
from millstream.worker.item import Event, Finished, Started

log = logging.getLogger("millstream.scheduler")

S = TaskState


def apply(state: SchedulerState, events: list[Event]) -> None:
    events = state.unapplied + events
    state.unapplied = []
    if not events:
        return
    finished_runs: list[tuple[ActiveRun, FinishRun]] = []
    now = state.clock()
    try:
        with state.store.begin() as conn:
            batch = WriteBatch()
            for ev in events:
                if isinstance(ev, Started):
                    _apply_started(state, batch, ev)
                else:
                    done = _apply_finished(state, batch, ev, now)
                    if done is not None:
                        finished_runs.append(done)
            state.metrics.asset_events(len(batch.asset_events))
            commit_batch(state, conn, batch)
    except Exception:
        # Workers told us once; keep their reports until the store takes them.
        state.unapplied = events
        raise
    applied = getattr(state.executor, "applied", None)
    if applied is not None:
        applied()  # a remote executor may now forget the reports behind these events
    after_commit(state)
    if finished_runs or batch.asset_events:
        state.nudged.set()  # a slot under max_active_runs opened: start what is queued now
    for finished_run, finish in finished_runs:
        state.emit(
            "run_finished",
            dag_id=finished_run.dag_id,
            run_id=finished_run.run_id,
            state=finish.state.value,
        )


def _apply_started(state: SchedulerState, batch: WriteBatch, ev: Started) -> None:
    item = ev.item
    run = state.runs.get(item.run_pk)
    if run is None or run.planner.states[item.task_id].get(item.map_index) is not S.QUEUED:
        return
    if run.tries.get((item.task_id, item.map_index)) != item.try_number:
        return  # a stale attempt starting late
    run.planner.record(item.task_id, item.map_index, S.RUNNING, reason="started")
    batch.runs[run.pk] = run.clear_number
    batch.started.append(
        {
            **ti_q.key(item.run_pk, item.task_id, item.map_index),
            "p_start": ev.at,
            "p_pid": ev.pid,
            "p_host": ev.hostname,
        }
    )
    state.metrics.started(run.dag_id, item, ev.at)
    state.emit(
        "ti_started", dag_id=run.dag_id, run_id=run.run_id, task_id=item.task_id, map_index=item.map_index
    )


def _apply_finished(
    state: SchedulerState, batch: WriteBatch, ev: Finished, now: datetime
) -> tuple[ActiveRun, FinishRun] | None:
    r = ev.result
    item = r.item
    run = state.runs.get(item.run_pk)
    if run is None:
        log.warning("ignoring a stale report for %s (its run is no longer running)", item.describe())
        return None
    # An attempt of this DAG ended: depends_on_past answers about its runs may have changed.
    state.finish_epochs[run.dag_id] = state.finish_epochs.get(run.dag_id, 0) + 1
    current = run.planner.states[item.task_id].get(item.map_index)
    latest = run.tries.get((item.task_id, item.map_index))
    if current not in (S.RUNNING, S.QUEUED) or latest != item.try_number:
        # Fencing: a worker presumed dead that comes back reports on an attempt that was
        # already given up; it must not overwrite what a newer attempt did.
        log.warning(
            "ignoring a stale report for %s (instance is %s at try %s now)",
            item.describe(),
            current,
            latest,
        )
        return None
    if current is S.QUEUED:  # its Started report was lost with a killed worker
        run.planner.record(item.task_id, item.map_index, S.RUNNING, reason="started")
    key = ti_q.key(item.run_pk, item.task_id, item.map_index)
    batch.finished.append(
        {
            **key,
            "p_end": r.ended_at,
            "p_duration": (r.ended_at - r.started_at).total_seconds(),
            "p_label": r.label,
        }
    )
    if r.rendered is not None:
        batch.rendered.append(
            {
                "run_pk": item.run_pk,
                "task_id": item.task_id,
                "map_index": item.map_index,
                "try_number": item.try_number,
                "fields": r.rendered,
            }
        )
    if item.next_method is not None:  # the attempt that resumed after a trigger fired
        run.resume.pop((item.task_id, item.map_index), None)
        if r.state != "deferred":
            batch.triggers_gone.append(item.key)
    try:
        if r.state == "success":
            batch.results.extend(
                {
                    "run_pk": item.run_pk,
                    "task_id": item.task_id,
                    "map_index": item.map_index,
                    "key": k,
                    "value": v,
                    "length": n,
                    "type_name": tn,
                    "ref": ref,
                }
                for k, v, n, tn, ref in r.results
            )
            cmds = run.planner.record(
                item.task_id, item.map_index, S.SUCCESS, output=r.output, reason="succeeded"
            )
            batch.asset_events.extend(
                {
                    **asset_event,
                    "source": "task",
                    "source_dag_id": run.dag_id,
                    "source_task_id": item.task_id,
                    "source_run_id": run.run_id,
                    "source_map_index": item.map_index,
                }
                for asset_event in r.asset_events
            )
        elif r.state == "skipped":
            cmds = run.planner.record(item.task_id, item.map_index, S.SKIPPED, reason=r.error or "skipped")
        elif r.state == "reschedule" and r.reschedule_at is not None:
            # A poke that found nothing frees the slot and does not use a try.
            cmds = run.planner.reschedule(item.task_id, item.map_index, r.reschedule_at)
            run.tries[(item.task_id, item.map_index)] = item.try_number - 1
            run.sensor_starts.setdefault((item.task_id, item.map_index), r.started_at)
            batch.rescheduled.append({**key, "p_first": r.started_at})
        elif r.state == "deferred" and r.trigger is not None:
            cmds = run.planner.set_deferred(
                item.task_id, item.map_index, True, f"deferred: waiting on {r.trigger['classpath']}"
            )
            deferred.on_deferred(batch, run, item, r.trigger, now)
            state.nudged.set()  # let the embedded triggerer claim it this turn
        else:
            cmds = run.planner.attempt_failed(
                item.task_id, item.map_index, item.try_number, now, r.error or "", retryable=r.retryable
            )
            if not r.callbacks_done:
                callbacks.task_callback_elsewhere(state, run, item, cmds, r.error or "")
    except IllegalTransition as e:
        log.error("dropping an impossible report for %s: %s", item.describe(), e)
        return None
    state.metrics.attempt_ended(run.dag_id, item, r.state, (r.ended_at - r.started_at).total_seconds())
    spans.attempt_finished(run, r)
    state.emit(
        "ti_finished",
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=item.task_id,
        map_index=item.map_index,
        state=r.state,
        error=r.error,
        log_path=item.log_path,
        try_number=item.try_number,
        traceback=r.traceback,
    )
    return persist(state, batch, run, cmds)
