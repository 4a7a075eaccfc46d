"""Deferred instances, on the scheduler's side: act on triggers that fired, failed or
timed out, for the runs this scheduler drives, in one transaction per turn.

A fired trigger makes its instance scheduled again, to resume at the deferral's
``method_name`` with the event (kept in its row until the resumed attempt reports, so a
scheduler restart in between still resumes it rather than starting over). A trigger that
ended the task (``TaskSuccessEvent`` and kin) sets the state directly; one that raised
fails the attempt with its traceback; a timeout fails it (a ``soft_fail`` sensor skips).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from millstream.core.planner import Command
from millstream.core.states import IllegalTransition, TaskState
from millstream.scheduler import callbacks, store_triggers
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.commands import commit_batch, persist
from millstream.scheduler.lifecycle import after_commit
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.sdk import deferral
from millstream.store import triggers as triggers_q

log = logging.getLogger("millstream.scheduler")

S = TaskState
_END = {"success": S.SUCCESS, "failed": S.FAILED, "skipped": S.SKIPPED}


def consume(state: SchedulerState, now: datetime, *, polled: bool = True) -> None:
    """Act on what fired; on a poll also on timeouts and the scheduler's own triggers."""
    if not state.runs:
        return
    with state.store.begin() as conn:
        if polled:
            _evaluate_store_triggers(conn, list(state.runs), now)
        rows = triggers_q.due(conn, list(state.runs), now, timeouts=polled)
        if not rows:
            return
        batch = WriteBatch()
        resumed: list[tuple[int, str, int]] = []
        for row in rows:
            run = state.runs.get(row["run_pk"])
            key = (row["run_pk"], row["task_id"], row["map_index"])
            if run is None or run.planner.states[row["task_id"]].get(row["map_index"]) is not S.DEFERRED:
                batch.triggers_gone.append(key)  # cleared or marked meanwhile
                continue
            try:
                cmds, resume = _act(run, row, now)
                if row["event"] is None:  # failed or timed out: its callbacks run here
                    tries = run.tries.get((row["task_id"], row["map_index"]), 1)
                    item = state.work_item(run, row["task_id"], row["map_index"], tries)
                    callbacks.task_callback_elsewhere(state, run, item, cmds, _error(row))
            except IllegalTransition as e:
                log.error("dropping trigger outcome for %s: %s", key, e)
                batch.triggers_gone.append(key)
                continue
            if resume:
                # The resumed attempt is the same try as the one that deferred (as in Airflow).
                resumed.append(key)
                k = (row["task_id"], row["map_index"])
                run.tries[k] = run.tries.get(k, 1) - 1
                batch.rescheduled.append(
                    {"k_run": key[0], "k_task": key[1], "k_idx": key[2], "p_first": None}
                )
            else:
                batch.triggers_gone.append(key)
            persist(state, batch, run, cmds)
        triggers_q.resumed_many(conn, resumed, now)
        commit_batch(state, conn, batch)
    after_commit(state)


def _evaluate_store_triggers(conn: Any, run_pks: list[int], now: datetime) -> None:
    """Fire the triggers that wait on other runs' states whose condition holds now."""
    fired = []
    for row in triggers_q.watching(conn, run_pks):
        try:
            payload = store_triggers.evaluate(conn, deferral.build_trigger(row["classpath"], row["kwargs"]))
        except Exception as e:  # noqa: BLE001 - a broken trigger fails its own task only
            error = f"trigger {row['classpath']} failed: {type(e).__name__}: {e}"
            triggers_q.set_failure(conn, (row["run_pk"], row["task_id"], row["map_index"]), error, now)
            continue
        if payload is not None:
            fired.append({**row, "event": deferral.dumps({"payload": payload, "end": None}), "fired_at": now})
    triggers_q.set_event_many(conn, fired)


def _act(run: ActiveRun, row: Any, now: datetime) -> tuple[list[Command], bool]:
    task_id, idx = row["task_id"], row["map_index"]
    planner = run.planner
    if row["event"] is not None:
        event = deferral.loads(row["event"])
        end = event.get("end")
        if end:
            return planner.record(task_id, idx, _END[end], reason=f"{end}: ended by its trigger"), False
        run.resume[(task_id, idx)] = (
            row["method_name"],
            deferral.resume_kwargs(row["next_kwargs"], row["event"]),
        )
        return planner.set_deferred(
            task_id, idx, False, f"trigger fired: resuming at {row['method_name']}"
        ), True
    tries = run.tries.get((task_id, idx), 1)
    retryable = row["failure"] is not None  # a timeout is final, as a sensor's timeout is
    return planner.attempt_failed(task_id, idx, tries, now, _error(row), retryable=retryable), False


def _error(row: Any) -> str:
    if row["failure"] is not None:
        return str(row["failure"])
    return f"trigger timeout: not fired by {row['timeout_at'].isoformat()}"


def on_deferred(batch: WriteBatch, run: ActiveRun, item: Any, trigger: dict[str, Any], now: datetime) -> None:
    """A worker reported a deferral: keep its trigger for a triggerer to claim."""
    batch.triggers_put.append(
        {
            "run_pk": item.run_pk,
            "task_id": item.task_id,
            "map_index": item.map_index,
            "dag_id": run.dag_id,
            "try_number": item.try_number,
            "created_at": now,
            **trigger,
        }
    )
