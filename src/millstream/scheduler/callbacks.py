"""Callbacks the scheduler, not a worker, must run: DAG-level ones when a run ends,
deadline callbacks, and task callbacks of attempts that ended outside their worker
(timed out, lost). Each is a request to the callback runner (a child process), so user
code never runs on the loop thread."""

from __future__ import annotations

from millstream.core.planner import Command, SetStates
from millstream.core.states import TaskState
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.worker.callbacks import CallbackRequest
from millstream.worker.item import WorkItem
from millstream.worker.runner import callbacks_log_path


def submit(
    state: SchedulerState,
    run: ActiveRun,
    kind: str,
    *,
    task_id: str | None = None,
    map_index: int = -1,
    reason: str = "",
    log_file: str | None = None,
    try_number: int | None = None,
) -> None:
    state.callbacks.submit(
        CallbackRequest(
            fileloc=run.spec.fileloc,
            dag_id=run.dag_id,
            kind=kind,
            run_id=run.run_id,
            log_path=log_file or callbacks_log_path(state.logs_folder, run.dag_id, run.run_id),
            task_id=task_id,
            map_index=map_index,
            reason=reason,
            logical_date=run.logical_date.isoformat() if run.logical_date else None,
            try_number=try_number,
        )
    )


def task_callback_elsewhere(
    state: SchedulerState, run: ActiveRun, item: WorkItem, cmds: list[Command], error: str
) -> None:
    """The attempt ended outside its worker (timed out, lost): run its callback here."""
    retried = any(isinstance(c, SetStates) and c.state is TaskState.UP_FOR_RETRY for c in cmds)
    kind = "on_retry_callback" if retried else "on_failure_callback"
    wanted = run.spec.task(item.task_id).callbacks
    if kind in wanted or f"mail:{kind}" in wanted:
        submit(
            state,
            run,
            kind,
            task_id=item.task_id,
            map_index=item.map_index,
            reason=error,
            log_file=item.log_path,
            try_number=item.try_number,
        )
