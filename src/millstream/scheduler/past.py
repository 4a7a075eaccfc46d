"""The ``depends_on_past`` gate of dispatch: an instance whose task's previous-run
instances have not succeeded stays scheduled, and says why in its state reason.

What it waits for is read from the store (:mod:`millstream.store.past`), at most once
a second per task of a run, and again as soon as an attempt of its DAG ends here; so a long chain
of daily runs moves on at the pace of its tasks, not of polling.
"""

from __future__ import annotations

import time
from datetime import datetime

from millstream.core.model import TaskSpec
from millstream.core.states import TaskState
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.store import task_instances as ti_q
from millstream.store.past import waiting_on_past

#: Seconds a "still waiting" answer is trusted when nothing ended here meanwhile (a run of
#: another scheduler may have moved on).
RECHECK = 1.0


def blocked(state: SchedulerState, run: ActiveRun, task: TaskSpec) -> bool:
    """Must ``task``'s instances in ``run`` wait for the previous run?"""
    if not task.depends_on_past:
        return False
    key = (run.pk, task.task_id)
    now = time.monotonic()
    epoch = state.finish_epochs.get(run.dag_id, 0)
    cached = state.past_checks.get(key)
    if cached is not None and cached[0] == epoch and now - cached[1] < RECHECK:
        return cached[2] is not None
    start = run.spec.start_date
    with state.store.read() as conn:
        reason = waiting_on_past(
            conn,
            run_pk=run.pk,
            dag_id=run.dag_id,
            logical_date=run.logical_date,
            task_id=task.task_id,
            catchup=run.spec.catchup,
            start_date=datetime.fromisoformat(start) if start else None,
            ignore_first=task.ignore_first_depends_on_past,
            downstream=run.spec.downstream(task.task_id) if task.wait_for_downstream else None,
        )
    if len(state.past_checks) > 4 * len(state.runs) + 64:  # forget ended runs
        state.past_checks = {k: v for k, v in state.past_checks.items() if k[0] in state.runs}
    state.past_checks[key] = (epoch, now, reason)
    if reason is not None and (cached is None or cached[2] != reason):
        waiting = [i for i, st in run.planner.states[task.task_id].items() if st is TaskState.SCHEDULED]
        with state.store.begin() as conn:
            ti_q.set_states(conn, run.pk, task.task_id, waiting, TaskState.SCHEDULED, reason)
    return reason is not None
