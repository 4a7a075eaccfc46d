"""Dispatch: ready instances go to the executor, as many as the limits leave room for.

The limits, in the order they bite: the executor's free slots, the DAG's
``max_active_tasks``, a task's ``max_active_tis_per_dagrun`` / ``max_active_tis_per_dag``,
``depends_on_past`` (the previous run's instance must have succeeded), and pools (slots
shared by every DAG, counted across schedulers). Higher
``priority_weight`` goes first; an instance is marked queued in the store *before* it is
handed over, and one that could not be handed over goes back to scheduled.
"""

from __future__ import annotations

import logging

from millstream.core.model import TaskSpec
from millstream.core.states import TaskState
from millstream.scheduler import past
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.commands import check_not_stale, commit_batch, persist
from millstream.scheduler.lifecycle import after_commit, follow_or_send_again
from millstream.scheduler.state import ActiveRun, Occupancy, SchedulerState
from millstream.store import pools as pools_q
from millstream.store import task_instances as ti_q
from millstream.store.tables import DEFAULT_POOL
from millstream.worker.item import WorkItem

log = logging.getLogger("millstream.scheduler")

S = TaskState


def refresh_pools(state: SchedulerState) -> None:
    with state.store.read() as conn:
        state.pools = pools_q.all_slots(conn)
        # Limits hold across schedulers: count what the others have queued or running
        # (as of this poll; only worth a query when there are others).
        state.elsewhere = ti_q.active_elsewhere(conn, state.id) if state.others_live else ({}, {}, {})


def occupancy(state: SchedulerState) -> Occupancy:
    """Active instances per DAG, per (DAG, task) and slots used per pool."""
    per_dag: dict[str, int] = dict(state.elsewhere[0])
    per_task: dict[tuple[str, str], int] = dict(state.elsewhere[1])
    per_pool: dict[str, int] = dict(state.elsewhere[2])
    for run in state.runs.values():
        for task_id in run.planner.states:
            active = run.planner.active_count(task_id)
            if not active:
                continue
            task = run.spec.task(task_id)
            per_dag[run.dag_id] = per_dag.get(run.dag_id, 0) + active
            per_task[(run.dag_id, task_id)] = per_task.get((run.dag_id, task_id), 0) + active
            pool = task.pool or DEFAULT_POOL
            per_pool[pool] = per_pool.get(pool, 0) + active * task.pool_slots
    return per_dag, per_task, per_pool


def room(state: SchedulerState, run: ActiveRun, task: TaskSpec, used: Occupancy) -> int:
    """How many more instances of ``task`` in ``run`` the limits allow right now."""
    per_dag, per_task, per_pool = used
    free = run.spec.max_active_tasks - per_dag.get(run.dag_id, 0)
    if task.max_active_tis_per_dagrun is not None:
        free = min(free, task.max_active_tis_per_dagrun - run.planner.active_count(task.task_id))
    if task.max_active_tis_per_dag is not None:
        free = min(free, task.max_active_tis_per_dag - per_task.get((run.dag_id, task.task_id), 0))
    pool = task.pool or DEFAULT_POOL
    if pool not in state.pools:
        _warn_missing_pool(state, run, task, pool)
        return 0
    if task.pool_slots > 0:
        free = min(free, (state.pools[pool] - per_pool.get(pool, 0)) // task.pool_slots)
    return free


def _warn_missing_pool(state: SchedulerState, run: ActiveRun, task: TaskSpec, pool: str) -> None:
    if (run.pk, task.task_id) in state.pool_warned:
        return
    state.pool_warned.add((run.pk, task.task_id))
    why = f"waiting: pool {pool!r} does not exist; create it with `millstream pools set {pool} SLOTS`"
    log.warning("task %s of %s: %s", task.task_id, run.dag_id, why)
    waiting = [i for i, st in run.planner.states[task.task_id].items() if st is S.SCHEDULED]
    with state.store.begin() as conn:
        ti_q.set_states(conn, run.pk, task.task_id, waiting, S.SCHEDULED, why)


def dispatch(state: SchedulerState) -> None:
    free = state.executor.slots - state.executor.in_flight()
    if free <= 0 or not state.ready:
        return
    used = occupancy(state)
    per_dag, per_task, per_pool = used
    chosen: list[tuple[ActiveRun, str, int]] = []
    for key in state.ready.keys_in_order():
        if len(chosen) >= free:
            break
        run_pk, task_id = key
        run = state.runs.get(run_pk)
        queue = state.ready.queue(key)
        if run is None:
            state.ready.discard(key)
            continue
        task = run.spec.task(task_id)
        if past.blocked(state, run, task):
            continue  # stays ready: asked again next turn
        left = min(free - len(chosen), room(state, run, task, used))
        while left > 0 and queue:
            idx = queue.popleft()
            if run.planner.states[task_id].get(idx) is not S.SCHEDULED:
                continue  # changed meanwhile (cleared, run reloaded): a stale entry
            run.planner.record(task_id, idx, S.QUEUED, reason="queued")
            chosen.append((run, task_id, idx))
            left -= 1
            per_dag[run.dag_id] = per_dag.get(run.dag_id, 0) + 1
            per_task[(run.dag_id, task_id)] = per_task.get((run.dag_id, task_id), 0) + 1
            pool = task.pool or DEFAULT_POOL
            per_pool[pool] = per_pool.get(pool, 0) + task.pool_slots
        if not queue:
            state.ready.done(key)
    if not chosen:
        return
    items: list[WorkItem] = []
    with state.store.begin() as conn:
        check_not_stale(state, conn, {run.pk: run.clear_number for run, _, _ in chosen})
        ti_q.queue_many(conn, [ti_q.key(run.pk, task_id, idx) for run, task_id, idx in chosen])
    for run, task_id, idx in chosen:
        try_number = run.tries.get((task_id, idx), 0) + 1
        run.tries[(task_id, idx)] = try_number
        items.append(state.work_item(run, task_id, idx, try_number))
    state.metrics.dispatched(items)
    for n, item in enumerate(items):
        try:
            state.executor.submit(item)
        except Exception:
            log.exception(
                "could not hand %d attempt(s) to the executor; scheduling them again", len(items) - n
            )
            _unsubmit(state, items[n:])
            return


def _unsubmit(state: SchedulerState, items: list[WorkItem]) -> None:
    """Attempts queued in the store but never handed over go back to scheduled, under
    a new try next time (one may have reached the broker after all: it is fenced)."""
    batch = WriteBatch()
    with state.store.begin() as conn:
        for item in items:
            run = state.runs.get(item.run_pk)
            if run is None:
                continue
            cmds = follow_or_send_again(
                state, conn, run, item.task_id, item.map_index, "not sent; sending again"
            )
            persist(state, batch, run, cmds)
        commit_batch(state, conn, batch)
    after_commit(state)
