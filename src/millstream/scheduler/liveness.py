"""Several schedulers on one database: each registers, beats a heartbeat, and adopts the
running runs of one that stopped beating (or is gone from this host).

Adoption is a conditional claim of the run row, so two survivors never both take a run;
the adopted runs are loaded with their old owner's in-flight attempts reset
(``lifecycle.load_run``).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from millstream.scheduler.lifecycle import reload_runs
from millstream.scheduler.state import SchedulerState
from millstream.store import schedulers as schedulers_q
from millstream.worker.runner import HOSTNAME

log = logging.getLogger("millstream.scheduler")


def register(state: SchedulerState) -> None:
    with state.store.begin() as conn:
        schedulers_q.register(conn, state.id, HOSTNAME, os.getpid(), state.clock())
    state.registered = True
    log.info("scheduler %s registered", state.id)


def unregister(state: SchedulerState) -> None:
    if not state.registered:
        return
    try:
        with state.store.begin() as conn:
            released = schedulers_q.stop(conn, state.id, state.clock())
        if released:
            log.info("handed %d running run(s) back for another scheduler to adopt", released)
    except Exception:
        log.exception("could not record this scheduler's stop; others adopt its runs after a timeout")


def beat(state: SchedulerState, now: datetime) -> None:
    with state.store.begin() as conn:
        schedulers_q.heartbeat(conn, state.id, now)


def heartbeat_and_adopt(state: SchedulerState, now: datetime) -> None:
    if state.registered:
        beat(state, now)
    adopt_orphans(state, now)


def adopt_orphans(state: SchedulerState, now: datetime) -> None:
    """Take over running runs whose owner stopped beating (or is gone from this host).

    This is also the recovery of a restarted scheduler: its own runs from before the
    restart are orphans of a process that no longer beats. An instance that was queued
    but never started goes back to scheduled without using a try; one that was running
    counts as an interrupted attempt (run again without using a retry). Succeeded
    instances are never touched.
    """
    with state.store.read() as conn:
        live = schedulers_q.live(conn, now, state.heartbeat_timeout, HOSTNAME) | {state.id}
        orphans = schedulers_q.orphaned_runs(conn, live)
    state.others_live = len(live) > 1
    state.live_count = len(live)
    if not orphans:
        return
    with state.store.begin() as conn:
        claimed = [pk for pk, owner in orphans if schedulers_q.claim(conn, pk, owner, state.id)]
    state.claimed_unreset.update(claimed)  # until reset: a failed reload must still reset them
    if claimed:
        previous = sorted({owner or "nobody" for pk, owner in orphans if pk in claimed})
        log.info("adopted %d running run(s) from %s", len(claimed), ", ".join(previous))
        reload_runs(state, claimed, reset_orphans=True)
