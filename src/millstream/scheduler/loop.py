"""The scheduler's turn: record files -> poll the store -> time -> dispatch -> wait -> apply.

``Scheduler.step`` is one turn, and reads like this docstring. Each step is a function
of one phase module, all sharing one :class:`~millstream.scheduler.state.SchedulerState`:

1. ``dagfiles``   record DAG files the watcher thread parsed, and files the asset watchers saw settle
2. on a poll (every ``poll_interval``, or at once when nudged), the steps that touch every DAG:
   ``liveness``   heartbeat, adopt the runs of schedulers that stopped beating
   ``lifecycle``  load runs users cleared, stop attempts users marked
   ``timers``     fail runs past ``dagrun_timeout``; call missed deadlines
   ``dispatch``   refresh pool sizes and what other schedulers hold
   ``creation``   runs that timetables and asset events make due
   ``lifecycle``  start queued runs within ``max_active_runs``
   ``creation``   complete backfills whose runs all ended
3. ``triggerer``  (on a poll, or when a trigger fired) the embedded triggerer's turn: beat,
                  claim deferred instances' triggers, record what fired
   ``deferred``   resume instances whose trigger fired; fail those that raised or timed out
   ``timers``     retries whose delay has passed
4. ``dispatch``   hand ready instances to the executor within the limits
5. wait           block on the executor until a report arrives or a timer is due
6. ``apply``      record what workers reported, let the planner decide, commit

Steps 3-6 are proportional to what happened, not to the size of the store. Every change
is committed before anything acts on it: a crash at any point loses nothing that was
acknowledged, and a restarted scheduler rebuilds its planners from the store.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from millstream.executors.base import Executor, ExecutorBrokenError
from millstream.scheduler import apply as apply_phase
from millstream.scheduler import creation, deferred, dispatch, lifecycle, liveness, timers, triggerer
from millstream.scheduler.dagfiles import DagFiles
from millstream.scheduler.metrics import NoMetrics
from millstream.scheduler.parsing import DagFolder, Parsed
from millstream.scheduler.state import ActiveRun, Clock, SchedulerState, StaleRunsError, utcnow
from millstream.scheduler.triggerer import TriggerRunner
from millstream.scheduler.watchers import WatcherThread
from millstream.store import Store
from millstream.worker.callbacks import CallbackRunner, InlineCallbackRunner
from millstream.worker.item import Event
from millstream.worker.runner import HOSTNAME

log = logging.getLogger("millstream.scheduler")

__all__ = ["ActiveRun", "Scheduler", "StaleRunsError"]


class Scheduler:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        logs_folder: str,
        dag_folder: DagFolder | None = None,
        clock: Clock = utcnow,
        poll_interval: float = 1.0,
        dag_refresh_interval: float = 5.0,
        paused_on_creation: bool = True,
        max_map_length: int = 100_000,
        listener: Callable[[str, dict[str, Any]], None] | None = None,
        callbacks: CallbackRunner | InlineCallbackRunner | None = None,
        heartbeat_timeout: float = 30.0,
        result_store_url: str | None = None,
        inline_limit: int = 65536,
        triggerer_capacity: int = 10_000,
        metrics: NoMetrics | None = None,
    ) -> None:
        self.state = SchedulerState(
            store=store,
            executor=executor,
            clock=clock,
            # Several schedulers may share one database: each owns the runs it started or
            # adopted, and beats a heartbeat so that the others can adopt its runs if it dies.
            id=f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            logs_folder=logs_folder,
            # Large results: a folder beside the logs unless told otherwise (any fsspec URL).
            result_store_url=(
                result_store_url
                if result_store_url is not None
                else str(Path(logs_folder).parent / "results")
            ),
            inline_limit=inline_limit,
            max_map_length=max_map_length,
            paused_on_creation=paused_on_creation,
            heartbeat_timeout=heartbeat_timeout,
            callbacks=callbacks if callbacks is not None else CallbackRunner(),
            listener=listener,
            metrics=metrics if metrics is not None else NoMetrics(),
        )
        self.poll_interval = poll_interval
        self.idle_poll_interval = max(poll_interval, 5.0)
        self._next_poll = 0.0
        self._stop = threading.Event()
        self.files = DagFiles(self.state, dag_folder, self.nudge, dag_refresh_interval)
        # The embedded triggerer (0: leave deferred tasks to `millstream triggerer` processes).
        self.triggerer_capacity = triggerer_capacity
        self._next_trigger_beat = 0.0
        self.triggers = TriggerRunner(self.state.executor.wake) if triggerer_capacity > 0 else None
        if self.triggers is not None and dag_folder is not None and dag_folder.folder not in sys.path:
            sys.path.append(dag_folder.folder)  # trigger classes kept beside the DAG files import

    # -- what callers see: the plugs, and the runs this scheduler is driving --------------

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def store(self) -> Store:
        return self.state.store

    @property
    def executor(self) -> Executor:
        return self.state.executor

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def heartbeat_timeout(self) -> float:
        return self.state.heartbeat_timeout

    @property
    def runs(self) -> dict[int, ActiveRun]:
        return self.state.runs

    @property
    def watchers(self) -> WatcherThread:
        return self.files.watchers

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.state.executor.wake()

    def nudge(self) -> None:
        """Ask for a poll now (a trigger arrived); safe to call from any thread."""
        self.state.nudged.set()
        self.state.executor.wake()

    def run_forever(self) -> None:
        log.info("scheduler starting")
        self.state.executor.start()
        watcher = None
        if self.files.folder is not None:
            watcher = threading.Thread(
                target=self.files.watch, args=(self._stop,), name="millstream-dag-watcher", daemon=True
            )
            watcher.start()
        self.files.watchers.start()
        try:
            liveness.register(self.state)
            liveness.adopt_orphans(self.state, self.state.clock())  # recovery: our runs from before a restart
            while not self._stop.is_set():
                try:
                    self.step()
                except ExecutorBrokenError:
                    raise
                except StaleRunsError as e:
                    # Expected after a user's clear or mark: nothing was written; rebuild
                    # from the store (reports of this turn are kept and applied again).
                    log.info("runs %s changed outside the scheduler; reloading", e.run_pks)
                    lifecycle.reload_safely(self.state)
                except Exception:
                    # A failed step (say, the database went away) must not end the scheduler.
                    # Memory may be ahead of the rolled-back store, so rebuild it from there.
                    log.exception("scheduler step failed; reloading state from the database")
                    self._stop.wait(1.0)
                    lifecycle.reload_safely(self.state)
        finally:
            self._stop.set()
            if watcher is not None:
                watcher.join(timeout=5)
            self.files.watchers.stop()
            self.close()
            self._drain()
            self.state.executor.shutdown()  # our local workers are gone before the runs are handed back
            liveness.unregister(self.state)
            self.state.metrics.close()
            log.info("scheduler stopped")

    def close(self) -> None:
        """Stop the embedded triggerer's loop (its triggers are claimed again elsewhere)."""
        if self.triggers is not None:
            self.triggers.stop()

    def _drain(self, grace: float = 5.0) -> None:
        """On a clean stop, let attempts that finish within ``grace`` seconds be recorded,
        so the scheduler adopting our runs does not run them again (nothing new starts)."""
        st = self.state
        if getattr(st.executor, "adopts_attempts", False):
            return  # remote attempts go on; whoever adopts the runs follows them
        # Well inside the heartbeat timeout, and beating meanwhile: nobody adopts our runs
        # while we are still recording their last reports.
        deadline = time.monotonic() + min(grace, st.heartbeat_timeout / 2)
        next_beat = 0.0
        try:
            while st.executor.in_flight() and time.monotonic() < deadline:
                if st.registered and time.monotonic() >= next_beat:
                    liveness.beat(st, st.clock())
                    next_beat = time.monotonic() + 1.0
                self.apply(st.executor.events(min(0.2, max(0.0, deadline - time.monotonic()))))
        except Exception:
            log.exception("could not record the last reports while stopping")

    # -- the turn -----------------------------------------------------------------------------

    def step(self, max_wait: float | None = None) -> None:
        """One turn of the loop (see the module docstring)."""
        st = self.state
        began = time.perf_counter()
        now = st.clock()
        mono = now.timestamp()
        self.files.record_dag_files()
        self.files.record_watched(now)
        polled = mono >= self._next_poll or st.nudged.is_set()
        if polled:
            st.nudged.clear()
            liveness.heartbeat_and_adopt(st, now)
            lifecycle.sync_runs(st)
            timers.stop_timed_out_runs(st, now)
            timers.call_deadlines(st, now)
            dispatch.refresh_pools(st)
            creation.create_scheduled(st, now)
            creation.create_asset_runs(st)
            lifecycle.start_queued(st, now)
            creation.update_backfills(st, now)
            self._next_poll = mono + self._poll_gap(now)
        fired = self.triggers is not None and self.triggers.has_fired()
        if self.triggers is not None and (polled or fired):
            beat = mono >= self._next_trigger_beat
            triggerer.sync(
                st.store,
                self.triggers,
                st.id,
                now,
                capacity=self.triggerer_capacity,
                heartbeat_timeout=st.heartbeat_timeout,
                beat=beat,
            )
            if beat:
                self._next_trigger_beat = mono + min(st.heartbeat_timeout / 3, 10.0)
        if polled or fired:
            deferred.consume(st, now, polled=polled)
        timers.retry_due(st, now)
        dispatch.dispatch(st)
        wait = timers.wait_time(st, now, self._next_poll)
        if max_wait is not None:
            wait = min(wait, max_wait)
        busy = time.perf_counter() - began
        events = st.executor.events(wait)
        began = time.perf_counter()
        self.apply(events)
        st.metrics.turn(busy + time.perf_counter() - began, polled, st.executor)

    def _poll_gap(self, now: datetime) -> float:
        """Seconds to the next look at the store. Busy: ``poll_interval``. Idle: up to
        ``idle_poll_interval``, but never past the next scheduled run; anything a user does
        (trigger, clear, mark, backfill, pools) and any DAG file change wakes us at once."""
        st = self.state
        if st.runs:
            return self.poll_interval
        gap = min(self.idle_poll_interval, st.heartbeat_timeout / 3)
        if st.next_due is not None:
            gap = min(gap, (st.next_due - now).total_seconds())
        return max(self.poll_interval, gap)

    # -- single steps, for callers that drive the loop themselves (dags test, tests) ----------

    def refresh_dags(self) -> None:
        self.files.refresh()

    def record_parsed(self, parsed: Iterable[Parsed]) -> None:
        self.files.record_parsed(parsed)

    def create_scheduled(self, now: datetime) -> None:
        creation.create_scheduled(self.state, now)

    def start_queued(self, now: datetime) -> None:
        lifecycle.start_queued(self.state, now)

    def apply(self, events: list[Event]) -> None:
        apply_phase.apply(self.state, events)

    def run_until(self, predicate: Callable[[], bool], timeout: float = 600.0) -> None:
        deadline = self.state.clock() + timedelta(seconds=timeout)
        while not predicate():
            if self.state.clock() > deadline:
                raise TimeoutError("scheduler did not reach the expected state in time")
            self.step(max_wait=0.05)
