"""The life of a run inside a scheduler: started, loaded into a planner, reloaded when a
user changed it, and stopped where a user ended it.

A run is *active* here while this scheduler owns it (``dag_run.owner``) and keeps a
:class:`~millstream.core.planner.RunPlanner` for it. The planner is a cache of the store:
``load_run`` rebuilds it from the rows, resetting what a dead owner left in flight, and
``reload`` rebuilds them all after a failed turn. ``after_commit`` is what every phase
calls once its transaction is in: ready instances are published, and runs retried as a
whole are loaded again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from millstream.core.model import DagSpec
from millstream.core.planner import Command, RunPlanner
from millstream.core.states import TERMINAL_TASK_STATES, RunState, TaskState
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.commands import commit_batch, persist
from millstream.scheduler.state import ActiveRun, SchedulerState
from millstream.sdk import deferral
from millstream.sdk.params import resolve_params
from millstream.store import attempts as attempts_q
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import schedulers as schedulers_q
from millstream.store import task_instances as ti_q
from millstream.store import triggers as triggers_q
from millstream.store.tables import task_instance

log = logging.getLogger("millstream.scheduler")

S = TaskState
_FINISHED_RUN = (RunState.SUCCESS.value, RunState.FAILED.value)


def after_commit(state: SchedulerState) -> None:
    """Once a turn's writes are committed: reload runs retried as a whole, publish what is ready."""
    if state.to_reload:
        pks, state.to_reload = state.to_reload, []
        reload_runs(state, pks)
    state.ready.publish(state.priority)
    state.metrics.publish()


# -- starting runs ------------------------------------------------------------------------


def start_queued(state: SchedulerState, now: datetime) -> None:
    """Start queued runs within their limits: a DAG's ``max_active_runs`` for live runs,
    a backfill's own ``max_active_runs`` for its runs (so neither starves the other)."""
    started: list[ActiveRun] = []
    with state.store.read() as conn:
        if not runs_q.any_queued(conn):
            return  # the usual case: no write transaction every poll
    with state.store.begin() as conn:
        batch = WriteBatch()
        # Another scheduler starting runs of the same DAGs waits here, so that both
        # never count the same free places under max_active_runs.
        locked = set(runs_q.queued_dag_ids(conn))
        dags_q.lock(conn, sorted(locked))
        running = runs_q.count_active(conn)
        backfills = {b["id"]: b for b in backfills_q.in_state(conn, "running")}
        running_bf = runs_q.count_active_backfill_runs(conn)
        queued = runs_q.queued_in_order(conn)
        # With other schedulers alive, take a fair share per turn and leave the rest
        # to them (each claims with SKIP LOCKED, so nobody waits for anybody).
        share = len(queued) if state.live_count <= 1 else -(-len(queued) // state.live_count)
        for row in queued:
            if len(started) >= share:
                break
            if row["dag_id"] not in locked:
                continue  # queued after we chose what to lock: next turn, under its lock
            spec = dags_q.spec_for_version(conn, row["dag_version_id"])
            bf = row["backfill_id"]
            if bf is not None:
                if bf not in backfills or running_bf.get(bf, 0) >= backfills[bf]["max_active_runs"]:
                    continue
            elif running.get(row["dag_id"], 0) >= spec.max_active_runs:
                continue
            if not runs_q.set_state(
                conn, row["id"], RunState.RUNNING, expected=RunState.QUEUED, start_date=now, owner=state.id
            ):
                continue  # another scheduler took it
            if bf is not None:
                running_bf[bf] = running_bf.get(bf, 0) + 1
            else:
                running[row["dag_id"]] = running.get(row["dag_id"], 0) + 1
            if ti_q.count_for_run(conn, row["id"]):
                # A run queued again (a backfill reprocessing it): continue from its rows.
                row = runs_q.get_run_by_pk(conn, row["id"])
                load_run(state, conn, batch, row, reset_orphans=False, now=now)
                if row["id"] not in state.runs:
                    continue  # nothing was left to run (a user queued a finished run): it ended again
                run = state.runs[row["id"]]
            else:
                ti_q.create_for_run(conn, row["id"], spec)
                run = active_run(
                    state, conn, row, spec, RunPlanner(spec, max_map_length=state.max_map_length)
                )
                persist(state, batch, run, run.planner.start())
            run.start_date = now
            started.append(run)
        commit_batch(state, conn, batch)
    for run in started:
        state.emit("run_started", dag_id=run.dag_id, run_id=run.run_id)
    after_commit(state)


def active_run(
    state: SchedulerState, conn: Connection, row: Any, spec: DagSpec, planner: RunPlanner
) -> ActiveRun:
    try:
        params = resolve_params(spec.params, row["conf"])
    except Exception:  # noqa: BLE001 - validated at trigger time; a later DAG change is tolerated
        params = dict(row["conf"] or {})
    run = ActiveRun(
        pk=row["id"],
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        run_type=row["run_type"],
        spec=spec,
        planner=planner,
        logical_date=row["logical_date"],
        interval=(row["data_interval_start"], row["data_interval_end"]),
        conf=dict(row["conf"] or {}),
        params=params,
        clear_number=row["clear_number"],
        version_id=row["dag_version_id"],
        start_date=row["start_date"],
        attempt=row["attempt"],
        deadlines_fired=set(row["deadlines_fired"] or ()),
        prev_success=runs_q.previous_success_interval(conn, row["dag_id"], row["logical_date"]),
    )
    state.runs[run.pk] = run
    return run


# -- loading runs from the store ----------------------------------------------------------


def load_run(
    state: SchedulerState,
    conn: Connection,
    batch: WriteBatch,
    row: Any,
    *,
    reset_orphans: bool,
    now: datetime,
) -> None:
    """Rebuild a run's planner from its rows. With ``reset_orphans`` (we took the run
    over), what its old owner had in flight is reset: a queued attempt goes back to
    scheduled without using a try, a running one counts as interrupted (run again without
    using a retry) — unless a remote executor can follow it, which it then does."""
    spec = dags_q.spec_for_version(conn, row["dag_version_id"])
    planner = RunPlanner(
        spec,
        ti_q.states_of_run(conn, row["id"]),
        outputs=results_q.outputs_of_run(conn, row["id"]),
        retry_at=ti_q.retry_times(conn, row["id"]),
        max_tries=ti_q.raised_max_tries(conn, row["id"]),
        max_map_length=state.max_map_length,
        marked_state=RunState(row["marked_state"]) if row["marked_state"] else None,
    )
    if row["marked_state"]:
        planner.marked_reason = row["state_reason"]
    planner.fail_reasons.update(ti_q.failure_reasons(conn, row["id"]))
    run = active_run(state, conn, row, spec, planner)
    run.tries = ti_q.tries_of_run(conn, row["id"])
    run.sensor_starts = ti_q.sensor_starts(conn, row["id"])
    for trow in triggers_q.for_run(conn, row["id"]):
        if trow["resumed_at"] is not None and trow["event"] is not None:
            # Resumed before a restart, not run again yet: it still resumes.
            kwargs = deferral.resume_kwargs(trow["next_kwargs"], trow["event"])
            run.resume[(trow["task_id"], trow["map_index"])] = (trow["method_name"], kwargs)
    cmds: list[Command] = []
    adopt = reset_orphans and getattr(state.executor, "adopts_attempts", False)
    for task_id, by_index in planner.states.items():
        for idx, st in list(by_index.items()):
            if st is S.SCHEDULED:
                state.ready.stage(run.pk, task_id, idx)
            elif adopt and st is S.RUNNING:
                # Remote workers outlive a scheduler: keep following their attempt.
                item = state.work_item(run, task_id, idx, run.tries[(task_id, idx)])
                state.executor.adopt(item, running=True)  # type: ignore[attr-defined]
            elif adopt and st is S.QUEUED:
                cmds += follow_or_send_again(
                    state, conn, run, task_id, idx, "sent again after a scheduler change"
                )
            elif reset_orphans and st is S.QUEUED:
                ti_q.set_attempt(
                    conn,
                    run.pk,
                    task_id,
                    idx,
                    expected=[S.QUEUED],
                    try_number=task_instance.c.try_number - 1,
                )
                run.tries[(task_id, idx)] -= 1
                cmds += planner.record(task_id, idx, S.SCHEDULED, reason="requeued after scheduler restart")
            elif reset_orphans and st is S.RUNNING:
                # Our crash, not the task's failure: run it again without using a retry.
                allowed = planner.interrupted(task_id, idx, run.tries[(task_id, idx)])
                ti_q.set_attempt(conn, run.pk, task_id, idx, expected=[S.RUNNING], max_tries=allowed)
                cmds += planner.attempt_failed(
                    task_id, idx, run.tries[(task_id, idx)], now, "interrupted by a scheduler restart"
                )
    cmds += planner.start()
    persist(state, batch, run, cmds)


def follow_or_send_again(
    state: SchedulerState, conn: Connection, run: ActiveRun, task_id: str, idx: int, reason: str
) -> list[Command]:
    """A queued attempt we cannot vouch was handed over (we took the run over, or the
    send failed). If a remote worker took it (its lease or reports say so; checked
    under the instance's row lock, as the worker checks), follow it. Otherwise send it
    again under a new try: a worker taking the old message finds its try out of date."""
    try_number = run.tries[(task_id, idx)]
    key = (run.pk, task_id, idx)
    if getattr(state.executor, "adopts_attempts", False):
        ti_q.attempt_of(conn, key, lock=True)
        if attempts_q.has_evidence(conn, key, try_number):
            state.executor.adopt(state.work_item(run, task_id, idx, try_number), running=True)  # type: ignore[attr-defined]
            return []
    allowed = run.planner.interrupted(task_id, idx, try_number)
    ti_q.set_attempt(conn, run.pk, task_id, idx, expected=[S.QUEUED], max_tries=allowed)
    return run.planner.record(task_id, idx, S.SCHEDULED, reason=reason)


def reload(state: SchedulerState, *, reset_orphans: bool) -> None:
    """Rebuild every planner and the ready queue from the store.

    Without ``reset_orphans``, queued and running instances are left alone: the
    executor still holds them and will report on them.
    """
    now = state.clock()
    if state.runs:
        try:  # a turn refused as stale may hide a user's mark
            stop_what_users_ended(state, list(state.runs))
        except Exception:
            # The store may be what failed: rebuild regardless, as before (an attempt
            # missed here reports later and is ignored, as a mark's always were).
            log.warning("could not check runs for marks before reloading", exc_info=True)
    state.runs.clear()
    state.ready.clear()
    state.metrics.discard()
    with state.store.begin() as conn:
        batch = WriteBatch()
        for row in runs_q.runs_in_state(conn, RunState.RUNNING, owner=state.id):
            reset = reset_orphans or row["id"] in state.claimed_unreset
            load_run(state, conn, batch, row, reset_orphans=reset, now=now)
        commit_batch(state, conn, batch)
    state.claimed_unreset.clear()
    after_commit(state)


def reload_safely(state: SchedulerState) -> None:
    try:
        reload(state, reset_orphans=False)
    except Exception:
        log.exception("reloading from the database failed; will try again")


def reload_runs(state: SchedulerState, stale: list[int], *, reset_orphans: bool = False) -> None:
    now = state.clock()
    with state.store.begin() as conn:
        batch = WriteBatch()
        for pk in stale:
            row = runs_q.get_run_by_pk(conn, pk)
            if row["state"] == RunState.RUNNING.value and row["owner"] == state.id:
                reset = reset_orphans or pk in state.claimed_unreset
                load_run(state, conn, batch, row, reset_orphans=reset, now=now)
                why = "adopted" if reset_orphans else "cleared"
                log.info("loaded run %s of %s (%s)", row["run_id"], row["dag_id"], why)
        commit_batch(state, conn, batch)
    state.claimed_unreset.difference_update(stale)
    after_commit(state)


# -- what users changed -------------------------------------------------------------------


def sync_runs(state: SchedulerState) -> None:
    """Load runs a user cleared (or restarted) since we last looked at them."""
    with state.store.read() as conn:
        current = runs_q.running_clear_numbers(conn, owner=state.id)
    dropped = [pk for pk in state.runs if pk not in current]
    if dropped:
        with state.store.read() as conn:
            finished = {pk for pk in dropped if runs_q.get_run_by_pk(conn, pk)["state"] in _FINISHED_RUN}
        stop_what_users_ended(state, sorted(finished))  # a user marked the whole run
        dropped = [pk for pk in dropped if pk not in finished]
    if dropped and getattr(state.executor, "adopts_attempts", False):
        for pk in dropped:  # their remote attempts go on; their reports are not ours to read
            state.executor.forget(pk)  # type: ignore[attr-defined]
    elif dropped:
        _cancel_adopted_away(state, dropped)
    for pk in dropped:
        del state.runs[pk]  # finished outside this scheduler (marked by a user), or adopted
    stale = [pk for pk, n in current.items() if pk not in state.runs or state.runs[pk].clear_number != n]
    if stale:
        stop_what_users_ended(state, stale)
        reload_runs(state, stale)


def _active_instances(run: ActiveRun) -> list[tuple[str, int]]:
    return [
        (task_id, idx)
        for task_id, by_index in run.planner.states.items()
        for idx, st in by_index.items()
        if st in (S.QUEUED, S.RUNNING)
    ]


def stop_what_users_ended(state: SchedulerState, pks: list[int]) -> None:
    """Attempts a user marked (or whose run a user marked) while they were queued or
    running are stopped, as Airflow does: the store says they ended, so their process
    must not go on with side effects. Called before any planner is rebuilt from the
    store (a user's change noticed by ``sync_runs``, or a turn refused as stale), since
    the old planner is what knows they were running. Nothing but a user's mark ends an
    active attempt behind this scheduler's back: a clear leaves active instances alone,
    and an adoption resets them to be run again rather than to an end."""
    with state.store.read() as conn:
        for pk in pks:
            run = state.runs.get(pk)
            if run is None:
                continue
            active = _active_instances(run)
            if not active:
                continue
            if runs_q.get_run_by_pk(conn, pk)["state"] in _FINISHED_RUN:
                for task_id, idx in active:
                    state.executor.cancel((pk, task_id, idx), "its run was marked by a user")
                continue
            now = {(t, i): s for t, i, s in ti_q.states_of_run(conn, pk)}
            for task_id, idx in active:
                st = now.get((task_id, idx))
                if st in TERMINAL_TASK_STATES:
                    state.executor.cancel((pk, task_id, idx), f"marked {st.value} by a user")


def _cancel_adopted_away(state: SchedulerState, dropped: list[int]) -> None:
    """Runs another scheduler adopted while we were presumed dead (a long pause, a
    partition): it reruns their attempts, so ours, still on our local workers, stop."""
    with state.store.read() as conn:
        owners = schedulers_q.owners(conn, dropped)
    for pk in dropped:
        owner = owners.get(pk, (0, None))[1]
        if owner is None or owner == state.id:
            continue
        run = state.runs[pk]
        for task_id, idx in _active_instances(run):
            state.executor.cancel((pk, task_id, idx), f"its run was adopted by {owner}")
        log.warning(
            "run %s of %s was adopted by %s; stopped its attempts here", run.run_id, run.dag_id, owner
        )
