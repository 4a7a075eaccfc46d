"""Where runs come from: timetables that say a run is due, asset events that meet a DAG's
condition, and backfills (whose runs ``control`` creates queued; here they are completed).

Manual triggers insert their queued run themselves (``control.trigger``); every source
ends in a ``queued`` row that ``lifecycle.start_queued`` starts within its limits.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection

from millstream.core.model import DagSpec
from millstream.core.timetables import from_spec, parse_dates
from millstream.scheduler import asset_runs
from millstream.scheduler.state import SchedulerState
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

log = logging.getLogger("millstream.scheduler")


def create_scheduled(state: SchedulerState, now: datetime) -> None:
    """Runs the timetables of unpaused DAGs say are due (and when the next one is)."""
    state.next_due = None
    with state.store.read() as conn:
        candidates = []
        for row in dags_q.list_dags(conn):
            if row["is_paused"] or not row["latest_version_id"]:
                continue
            spec = dags_q.spec_for_version(conn, row["latest_version_id"])
            timetable = from_spec(spec.timetable)
            if not timetable.periodic and spec.timetable.get("type") not in ("once", "continuous"):
                continue
            due = row["next_run_after"]
            if due is not None and due > now and row["next_run_logical_date"] is not None:
                state.note_due(due)
                continue  # known not to be due yet: no write this turn
            candidates.append((row, spec))
    if not candidates:
        return
    with state.store.begin() as conn:
        active = runs_q.count_active(conn)
        for row, spec in candidates:
            if not dags_q.try_lock(conn, spec.dag_id):
                continue  # another scheduler is creating this DAG's runs right now
            _create_due_runs(state, conn, spec, row["latest_version_id"], now, active.get(spec.dag_id, 0))


def _create_due_runs(
    state: SchedulerState, conn: Connection, spec: DagSpec, version_id: int, now: datetime, active: int
) -> None:
    timetable = from_spec(spec.timetable)
    start, end = parse_dates(spec.start_date, spec.end_date)
    queued = runs_q.count_queued_live(conn, spec.dag_id)
    budget = spec.max_active_runs - active - queued
    if spec.timetable.get("type") == "continuous":
        budget = min(budget, 1 - active - queued)
    while budget > 0:
        last = runs_q.last_scheduled_info(conn, spec.dag_id)
        info = timetable.next_run(last=last, now=now, start=start, end=end, catchup=spec.catchup)
        dags_q.set_next_run(
            conn, spec.dag_id, info.logical_date if info else None, info.run_after if info else None
        )
        if info is not None:
            state.note_due(info.run_after)
        if info is None or info.run_after > now:
            return
        run_id = f"scheduled__{info.logical_date.isoformat()}"
        runs_q.create_run(
            conn,
            dag_id=spec.dag_id,
            run_id=run_id,
            version_id=version_id,
            run_type="scheduled",
            logical_date=info.logical_date,
            interval=(info.interval_start, info.interval_end),
            run_after=info.run_after,
            conf={},
            now=now,
        )
        log.info("created run %s of %s", run_id, spec.dag_id)
        budget -= 1


def create_asset_runs(state: SchedulerState) -> None:
    """Runs of DAGs whose asset condition their queued events meet."""
    with state.store.read() as conn:
        if not asset_runs.has_work(conn):
            return
    with state.store.begin() as conn:
        # The time once the write lock is held: events committed while we waited for
        # it are in this transaction too, and must not look newer than their run.
        created = asset_runs.create_asset_triggered(conn, state.clock())
    for r in created:
        state.emit("run_created", dag_id=r.dag_id, run_id=r.run_id, event_ids=list(r.event_ids))


def update_backfills(state: SchedulerState, now: datetime) -> None:
    """A backfill whose runs have all finished is complete."""
    with state.store.read() as conn:
        finished = []
        for b in backfills_q.in_state(conn, "running", "paused"):
            progress = backfills_q.progress(conn, b["id"])
            if not progress["queued"] and not progress["running"]:
                finished.append((b, progress))
    if not finished:
        return  # the usual case: no write transaction every poll
    with state.store.begin() as conn:
        for b, progress in finished:
            backfills_q.set_state(conn, b["id"], "completed", completed_at=now)
            log.info("backfill %s of %s completed: %s", b["id"], b["dag_id"], progress)
