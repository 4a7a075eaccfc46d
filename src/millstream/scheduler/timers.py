"""What happens because time passed: retries whose delay is over, runs past their
``dagrun_timeout``, deadlines missed, and how long the loop may sleep before the next
of these is due. Time is always the ``now`` passed in, never read here."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from millstream.core.states import TERMINAL_TASK_STATES, RunState
from millstream.scheduler import callbacks
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.commands import commit_batch, persist
from millstream.scheduler.lifecycle import after_commit
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.store import runs as runs_q

log = logging.getLogger("millstream.scheduler")


def retry_due(state: SchedulerState, now: datetime) -> None:
    """``up_for_retry`` instances whose delay has passed become scheduled."""
    due = [
        (run, run.planner.due_retries(now))
        for run in list(state.runs.values())
        if run.planner.next_retry_at()
    ]
    due = [(run, cmds) for run, cmds in due if cmds]
    if not due:
        return
    with state.store.begin() as conn:
        batch = WriteBatch()
        for run, cmds in due:
            persist(state, batch, run, cmds)
        commit_batch(state, conn, batch)
    after_commit(state)


def stop_timed_out_runs(state: SchedulerState, now: datetime) -> None:
    """Fail runs that ran longer than their ``dagrun_timeout``; teardowns still run."""
    late = [
        run
        for run in state.runs.values()
        if run.spec.dagrun_timeout is not None
        and run.start_date is not None
        and run.planner.marked_state is None
        and (now - run.start_date).total_seconds() > run.spec.dagrun_timeout
    ]
    if not late:
        return
    with state.store.begin() as conn:
        batch = WriteBatch()
        for run in late:
            reason = f"dagrun_timeout of {run.spec.dagrun_timeout:g}s exceeded"
            log.warning("run %s of %s: %s", run.run_id, run.dag_id, reason)
            cmds, interrupted = run.planner.mark_run(RunState.FAILED, reason)
            batch.run_marks.append((run.pk, RunState.FAILED, reason))
            for task_id, idx in interrupted:
                state.executor.cancel((run.pk, task_id, idx))
            persist(state, batch, run, cmds)
        commit_batch(state, conn, batch)
    after_commit(state)


def call_deadlines(state: SchedulerState, now: datetime) -> None:
    """Call deadline callbacks of runs and tasks not finished in time (once each)."""
    fired: list[tuple[ActiveRun, str]] = []
    for run in state.runs.values():
        reference = {"logical_date": run.logical_date, "run_start": run.start_date}
        targets: list[tuple[str, Any, bool]] = []
        if run.spec.deadline:
            targets.append(("run", run.spec.deadline, True))
        for task in run.spec.tasks:
            if task.deadline:
                unfinished = any(
                    st not in TERMINAL_TASK_STATES for st in run.planner.states[task.task_id].values()
                )
                targets.append((task.task_id, task.deadline, unfinished))
        for name, deadline, unfinished in targets:
            ref = reference.get(deadline["reference"])
            if name in run.deadlines_fired or not unfinished or ref is None:
                continue
            if now >= ref + timedelta(seconds=deadline["seconds"]):
                run.deadlines_fired.add(name)
                fired.append((run, name))
    if not fired:
        return
    with state.store.begin() as conn:
        for run, _ in fired:
            runs_q.set_deadlines_fired(conn, run.pk, sorted(run.deadlines_fired))
    for run, name in fired:
        what = "the run" if name == "run" else f"task {name!r}"
        log.warning("deadline missed by %s of %s in run %s", what, run.dag_id, run.run_id)
        callbacks.submit(
            state,
            run,
            "deadline",
            task_id=None if name == "run" else name,
            reason=f"deadline missed: {what} not finished in time",
        )


def wait_time(state: SchedulerState, now: datetime, next_poll: float) -> float:
    """Seconds the loop may block on the executor: until the next poll or the first retry due."""
    deadlines = [next_poll]
    for run in state.runs.values():
        at = run.planner.next_retry_at()
        if at is not None:
            deadlines.append(at.timestamp())
    return max(0.0, min(deadlines) - now.timestamp())
