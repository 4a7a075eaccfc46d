"""From the planner's commands to rows: every phase that lets the planner decide ends here.

``persist`` turns commands into a turn's :class:`WriteBatch` (and stages newly ready
instances); ``commit_batch`` writes the batch in the caller's transaction after checking
that no user changed the runs behind the planner's back. What runs after the commit
(publishing the ready instances, reloading runs retried as a whole) is
``lifecycle.after_commit``.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from millstream.core.planner import Command, ExpandTask, FinishRun, SetStates
from millstream.core.states import RunState, TaskState
from millstream.scheduler import callbacks, spans
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.state import ActiveRun, SchedulerState, StaleRunsError
from millstream.store import runs as runs_q
from millstream.store import schedulers as schedulers_q
from millstream.store.clearing import FINISHED_STATES, clear_run

log = logging.getLogger("millstream.scheduler")

S = TaskState
#: Decided by the planner rather than reported by a worker: the listener hears of these
#: here (a worker's reports it hears of where they are applied).
_DECIDED = frozenset({S.SKIPPED, S.UPSTREAM_FAILED, S.FAILED, S.SUCCESS})


def persist(
    state: SchedulerState, batch: WriteBatch, run: ActiveRun, cmds: list[Command]
) -> tuple[ActiveRun, FinishRun] | None:
    """Queue the planner's commands for writing; ready instances are published after the commit."""
    batch.runs[run.pk] = run.clear_number
    finish = None
    for cmd in cmds:
        if isinstance(cmd, SetStates):
            if cmd.state is S.QUEUED or cmd.state is S.RUNNING:
                continue  # written by dispatch / apply's started reports, with their extra fields
            for idx in cmd.map_indexes:
                batch.set_state(run.pk, cmd.task_id, idx, cmd.state, cmd.reason, cmd.retry_at)
            state.metrics.states(run.dag_id, cmd.task_id, cmd.state, len(cmd.map_indexes))
            if state.listener is not None and cmd.state in _DECIDED and not cmd.reported:
                for idx in cmd.map_indexes:
                    state.emit(
                        "ti_finished",
                        dag_id=run.dag_id,
                        run_id=run.run_id,
                        task_id=cmd.task_id,
                        map_index=idx,
                        state=cmd.state.value,
                        error=cmd.reason if cmd.state is S.FAILED else None,
                        log_path=None,
                        try_number=None,
                        traceback=None,
                    )
            if cmd.state is S.SCHEDULED:
                for idx in cmd.map_indexes:
                    state.ready.stage(run.pk, cmd.task_id, idx)
        elif isinstance(cmd, ExpandTask):
            batch.expansions.append((run.pk, run.spec, cmd.task_id, cmd.length, cmd.state))
            state.metrics.states(run.dag_id, cmd.task_id, cmd.state, cmd.length)
            if cmd.state is S.SCHEDULED:
                for idx in range(cmd.length):
                    state.ready.stage(run.pk, cmd.task_id, idx)
        elif isinstance(cmd, FinishRun):
            if (
                cmd.state is RunState.FAILED
                and run.attempt <= run.spec.retries
                and run.planner.marked_state is None
            ):
                batch.run_retries.append(run)  # retried as a whole instead of finishing
                continue
            batch.run_states.append((run.pk, cmd.state, cmd.reason, state.clock()))
            state.metrics.run_finished(run.dag_id, cmd.state, run.start_date, batch.run_states[-1][3])
            spans.run_finished(run, cmd, batch.run_states[-1][3])
            kind = "on_success_callback" if cmd.state is RunState.SUCCESS else "on_failure_callback"
            if kind in run.spec.callbacks:
                callbacks.submit(state, run, kind, reason=cmd.reason)
            del state.runs[run.pk]
            log.info("run %s of %s finished: %s (%s)", run.run_id, run.dag_id, cmd.state, cmd.reason)
            finish = (run, cmd)
    return finish


def check_not_stale(state: SchedulerState, conn: Connection, expected: dict[int, int]) -> None:
    """A user who cleared or marked a run changed its rows behind our planner's back:
    writing what the planner decided would undo that. Roll back and reload instead."""
    if not expected:
        return
    current = schedulers_q.owners(conn, list(expected))
    # Changed by a user (clear_number), or adopted by another scheduler that thought we
    # were dead: either way our planner is out of date for that run.
    stale = [pk for pk, n in expected.items() if pk in current and current[pk] != (n, state.id)]
    if stale:
        raise StaleRunsError(stale)


def commit_batch(state: SchedulerState, conn: Connection, batch: WriteBatch) -> None:
    """Write a turn's batch; runs that failed with run-level retries left are cleared for
    their next attempt in the same transaction (reloaded after the commit)."""
    check_not_stale(state, conn, batch.runs)
    batch.flush(conn)
    for run in batch.run_retries:
        row = runs_q.get_run_by_pk(conn, run.pk)
        if run.spec.retry_strategy == "all":
            roots, states = set(run.spec.task_ids), None
        else:
            roots = {
                t
                for t, by in run.planner.states.items()
                if any(s in (S.FAILED, S.UPSTREAM_FAILED) for s in by.values())
            }
            states = FINISHED_STATES - {S.SUCCESS.value}  # reuse what succeeded
        cleared = clear_run(
            conn, row, run.spec, roots, downstream=True, **({"states": states} if states else {})
        )
        runs_q.next_attempt(conn, run.pk)
        log.warning(
            "run %s of %s failed; run retry %d/%d clears %d task instance(s)",
            run.run_id,
            run.dag_id,
            run.attempt,
            run.spec.retries,
            len(cleared),
        )
        state.to_reload.append(run.pk)
