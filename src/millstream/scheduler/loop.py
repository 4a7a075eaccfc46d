"""The scheduler loop: load -> create runs -> start runs -> dispatch -> wait -> apply.

Each step is a named method; the loop reads like this docstring:

1. ``record_dag_files``  record DAG files parsed by the watcher thread (new versions, errors)
2. ``create_scheduled``  create the runs timetables say are due
3. ``start_queued``      start queued runs within ``max_active_runs``: rows + first plan
4. ``retry_due``         schedule ``up_for_retry`` instances whose delay has passed
5. ``dispatch``          hand scheduled instances to the executor within the limits
6. wait                  block on the executor until an event arrives or a timer is due
7. ``apply``             record what workers reported, let the planner decide, commit

DAG files are parsed by a watcher thread (each file in a child process with a timeout),
so a slow or hanging file never holds up scheduling. Steps 2-3 touch every DAG, so they
run on a timer (``poll_interval``) or when nudged, not after every finished task; steps
4-7 are proportional to what happened. Every
change is committed before anything acts on it: a crash at any point loses nothing that
was acknowledged, and a restarted scheduler rebuilds its planners from the store.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from millstream import control
from millstream.core.model import DagSpec, TaskSpec
from millstream.core.planner import Command, ExpandTask, FinishRun, RunPlanner, SetStates
from millstream.core.states import TERMINAL_TASK_STATES, IllegalTransition, RunState, TaskState
from millstream.core.timetables import RunInfo, from_spec, parse_dates
from millstream.executors.base import Executor, ExecutorBrokenError
from millstream.scheduler import asset_runs
from millstream.scheduler.batch import WriteBatch
from millstream.scheduler.dagsync import record_parsed, sync_folder
from millstream.scheduler.parsing import DagFolder, Parsed
from millstream.scheduler.watchers import Arrival, WatcherThread, record_arrivals
from millstream.sdk.params import resolve_params
from millstream.store import Store
from millstream.store import attempts as attempts_q
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import pools as pools_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import schedulers as schedulers_q
from millstream.store import task_instances as ti_q
from millstream.store.tables import DEFAULT_POOL, task_instance
from millstream.worker.callbacks import CallbackRequest, CallbackRunner, InlineCallbackRunner
from millstream.worker.item import Event, Finished, Started, WorkItem
from millstream.worker.runner import HOSTNAME, callbacks_log_path, log_path

log = logging.getLogger("millstream.scheduler")

S = TaskState
#: States the planner sets without running anything; reported to listeners like results.
_DECIDED = frozenset({S.SKIPPED, S.UPSTREAM_FAILED})
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


_FINISHED_RUN = (RunState.SUCCESS.value, RunState.FAILED.value)


class StaleRunsError(RuntimeError):
    """Runs were cleared or marked since the planner last loaded them."""

    def __init__(self, run_pks: list[int]) -> None:
        super().__init__(f"runs {run_pks} changed outside the scheduler")
        self.run_pks = run_pks


@dataclass
class ActiveRun:
    """What the scheduler keeps in memory about a running run."""

    pk: int
    dag_id: str
    run_id: str
    run_type: str
    spec: DagSpec
    planner: RunPlanner
    logical_date: datetime | None
    interval: tuple[datetime | None, datetime | None]
    conf: dict[str, Any]
    params: dict[str, Any]
    clear_number: int = 0
    version_id: int = 0
    start_date: datetime | None = None
    sensor_starts: dict[tuple[str, int], datetime] = field(default_factory=dict)
    attempt: int = 1
    deadlines_fired: set[str] = field(default_factory=set)
    prev_success: tuple[datetime | None, datetime | None] = (None, None)
    # Attempts made per instance, mirrored from the store so dispatch needs no query.
    tries: dict[tuple[str, int], int] = field(default_factory=dict)


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
    ) -> None:
        self.store = store
        # Large results: a folder beside the logs unless told otherwise (any fsspec URL).
        self.result_store_url = (
            result_store_url if result_store_url is not None else str(Path(logs_folder).parent / "results")
        )
        self.inline_limit = inline_limit
        # Several schedulers may share one database: each owns the runs it started or
        # adopted, and beats a heartbeat so that the others can adopt its runs if it dies.
        self.id = f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.heartbeat_timeout = heartbeat_timeout
        self._registered = False
        self._others_live = False
        self._live_count = 1
        self._claimed_unreset: set[int] = set()  # adopted, attempts of the old owner not reset yet
        self._elsewhere: tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]] = ({}, {}, {})
        self.executor = executor
        self.logs_folder = logs_folder
        self.dag_folder = dag_folder
        self.clock = clock
        self.poll_interval = poll_interval
        self.dag_refresh_interval = dag_refresh_interval
        self.paused_on_creation = paused_on_creation
        self.max_map_length = max_map_length
        self.listener = listener
        self.callbacks = callbacks if callbacks is not None else CallbackRunner()
        self.runs: dict[int, ActiveRun] = {}
        # Ready instances per (run, task), in the order they became ready. Dispatch walks the
        # few (run, task) pairs, not the instances, so a task held back by a limit costs
        # nothing however many of its instances wait.
        self._ready: dict[tuple[int, str], deque[int]] = {}
        self._ready_rank: dict[tuple[int, str], tuple[int, int]] = {}  # (-priority, first seen)
        self._pending_ready: list[tuple[int, str, int]] = []  # pushed after the commit
        self.pools: dict[str, int] = {DEFAULT_POOL: 128}
        self._pool_warned: set[tuple[int, str]] = set()
        self._unapplied: list[Event] = []
        self._to_reload: list[
            int
        ] = []  # runs retried as a whole, reloaded after the commit  # reports whose transaction failed, retried next turn
        self._seq = itertools.count()
        self._next_poll = 0.0
        self._next_due: datetime | None = None  # the earliest time a scheduled run is due
        self.idle_poll_interval = max(poll_interval, 5.0)
        self._parsed: queue.Queue[tuple[list[Parsed], list[str]]] = queue.Queue()
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self.watchers = WatcherThread(store, self.nudge, refresh_interval=dag_refresh_interval)
        self._arrivals: list[Arrival] = []  # settled files not yet recorded

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.executor.wake()

    def nudge(self) -> None:
        """Ask for steps 1-3 now (a trigger arrived); safe to call from any thread."""
        self._nudged.set()
        self.executor.wake()

    def run_forever(self) -> None:
        log.info("scheduler starting")
        self.executor.start()
        watcher = None
        if self.dag_folder is not None:
            watcher = threading.Thread(
                target=self._watch_dag_files, name="millstream-dag-watcher", daemon=True
            )
            watcher.start()
        self.watchers.start()
        try:
            self.register()
            self.recover()
            while not self._stop.is_set():
                try:
                    self.step()
                except ExecutorBrokenError:
                    raise
                except StaleRunsError as e:
                    # Expected after a user's clear or mark: nothing was written; rebuild
                    # from the store (reports of this turn are kept and applied again).
                    log.info("runs %s changed outside the scheduler; reloading", e.run_pks)
                    self._reload_safely()
                except Exception:
                    # A failed step (say, the database went away) must not end the scheduler.
                    # Memory may be ahead of the rolled-back store, so rebuild it from there.
                    log.exception("scheduler step failed; reloading state from the database")
                    self._stop.wait(1.0)
                    self._reload_safely()
        finally:
            self._stop.set()
            if watcher is not None:
                watcher.join(timeout=5)
            self.watchers.stop()
            self._drain()
            self.executor.shutdown()  # our local workers are gone before the runs are handed back
            self.unregister()
            log.info("scheduler stopped")

    def _drain(self, grace: float = 5.0) -> None:
        """On a clean stop, let attempts that finish within ``grace`` seconds be recorded,
        so the scheduler adopting our runs does not run them again (nothing new starts)."""
        if getattr(self.executor, "adopts_attempts", False):
            return  # remote attempts go on; whoever adopts the runs follows them
        # Well inside the heartbeat timeout, and beating meanwhile: nobody adopts our runs
        # while we are still recording their last reports.
        deadline = time.monotonic() + min(grace, self.heartbeat_timeout / 2)
        next_beat = 0.0
        try:
            while self.executor.in_flight() and time.monotonic() < deadline:
                if self._registered and time.monotonic() >= next_beat:
                    with self.store.begin() as conn:
                        schedulers_q.heartbeat(conn, self.id, self.clock())
                    next_beat = time.monotonic() + 1.0
                self.apply(self.executor.events(min(0.2, max(0.0, deadline - time.monotonic()))))
        except Exception:
            log.exception("could not record the last reports while stopping")

    def step(self, max_wait: float | None = None) -> None:
        """One turn of the loop (see the module docstring)."""
        now = self.clock()
        mono = now.timestamp()
        self.record_dag_files()
        self.record_watched(now)
        if mono >= self._next_poll or self._nudged.is_set():
            self._nudged.clear()
            self.heartbeat_and_adopt(now)
            self.sync_runs()
            self.stop_timed_out_runs(now)
            self.call_deadlines(now)
            self.refresh_pools()
            self.create_scheduled(now)
            self.create_asset_runs()
            self.start_queued(now)
            self.update_backfills(now)
            self._next_poll = mono + self._poll_gap(now)
        self.retry_due(now)
        self.dispatch()
        wait = self._wait_time(now)
        if max_wait is not None:
            wait = min(wait, max_wait)
        self.apply(self.executor.events(wait))

    def _poll_gap(self, now: datetime) -> float:
        """Seconds to the next look at the store. Busy: ``poll_interval``. Idle: up to
        ``idle_poll_interval``, but never past the next scheduled run; anything a user does
        (trigger, clear, mark, backfill, pools) and any DAG file change wakes us at once."""
        if self.runs:
            return self.poll_interval
        gap = min(self.idle_poll_interval, self.heartbeat_timeout / 3)
        if self._next_due is not None:
            gap = min(gap, (self._next_due - now).total_seconds())
        return max(self.poll_interval, gap)

    def _wait_time(self, now: datetime) -> float:
        deadlines = [self._next_poll]
        for run in self.runs.values():
            at = run.planner.next_retry_at()
            if at is not None:
                deadlines.append(at.timestamp())
        return max(0.0, min(deadlines) - now.timestamp())

    def _emit(self, kind: str, **data: Any) -> None:
        if self.listener is not None:
            self.listener(kind, data)

    # -- 1. DAG files -----------------------------------------------------------------------

    def refresh_dags(self) -> None:
        """Parse changed DAG files and record them now (before the loop starts)."""
        assert self.dag_folder is not None
        for p in sync_folder(self.store, self.dag_folder, paused_on_creation=self.paused_on_creation):
            if p.error is not None:
                log.warning("DAG file failed to import: %s", p.error)

    def _watch_dag_files(self) -> None:
        """Watcher thread: parse what changed, hand it to the loop, sleep, repeat."""
        assert self.dag_folder is not None
        known: list[str] | None = None
        while not self._stop.is_set():
            try:
                changed, files = self.dag_folder.changed()
                parsed = self.dag_folder.parse(changed) if changed else []
                if parsed or files != known:
                    self._parsed.put((parsed, files))
                    known = files
                    self.nudge()
            except Exception:
                log.exception("scanning the DAG folder failed; will try again")
            self._stop.wait(self.dag_refresh_interval)

    def record_dag_files(self) -> None:
        """Step 1: store what the watcher parsed (the loop thread does all the writing)."""
        while True:
            try:
                parsed, files = self._parsed.get_nowait()
            except queue.Empty:
                return
            for p in parsed:
                if p.error is not None:
                    log.warning("DAG file failed to import: %s", p.error)
            folder = self.dag_folder.folder if self.dag_folder is not None else None
            record_parsed(
                self.store, parsed, paused_on_creation=self.paused_on_creation, files=files, folder=folder
            )

    def record_watched(self, now: datetime) -> None:
        """Step 1b: record the files the watchers saw settle as asset events."""
        while True:
            try:
                self._arrivals.append(self.watchers.arrivals.get_nowait())
            except queue.Empty:
                break
        if self._arrivals:
            n = record_arrivals(self.store, self._arrivals, now)  # kept if this raises
            self._arrivals = []
            if n:
                self._nudged.set()

    def record_parsed(self, parsed: Iterable[Parsed]) -> None:
        record_parsed(self.store, parsed, paused_on_creation=self.paused_on_creation, now=self.clock())

    # -- 2. timetables ----------------------------------------------------------------------

    def create_scheduled(self, now: datetime) -> None:
        self._next_due = None
        with self.store.read() as conn:
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
                    self._note_due(due)
                    continue  # known not to be due yet: no write this turn
                candidates.append((row, spec))
        if not candidates:
            return
        with self.store.begin() as conn:
            active = runs_q.count_active(conn)
            for row, spec in candidates:
                if not dags_q.try_lock(conn, spec.dag_id):
                    continue  # another scheduler is creating this DAG's runs right now
                self._create_due_runs(conn, spec, row["latest_version_id"], now, active.get(spec.dag_id, 0))

    def _note_due(self, at: datetime) -> None:
        if self._next_due is None or at < self._next_due:
            self._next_due = at

    def _create_due_runs(
        self, conn: Connection, spec: DagSpec, version_id: int, now: datetime, active: int
    ) -> None:
        timetable = from_spec(spec.timetable)
        start, end = parse_dates(spec.start_date, spec.end_date)
        queued = runs_q.count_queued_live(conn, spec.dag_id)
        budget = spec.max_active_runs - active - queued
        if spec.timetable.get("type") == "continuous":
            budget = min(budget, 1 - active - queued)
        while budget > 0:
            last_row = runs_q.last_scheduled_run(conn, spec.dag_id)
            last = None
            if last_row is not None:
                last = RunInfo(
                    last_row["logical_date"],
                    last_row["data_interval_start"] or last_row["logical_date"],
                    last_row["data_interval_end"] or last_row["logical_date"],
                    last_row["run_after"],
                )
            info = timetable.next_run(last=last, now=now, start=start, end=end, catchup=spec.catchup)
            dags_q.set_next_run(
                conn, spec.dag_id, info.logical_date if info else None, info.run_after if info else None
            )
            if info is not None:
                self._note_due(info.run_after)
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

    def create_asset_runs(self) -> None:
        """Runs of DAGs whose asset condition their queued events meet."""
        with self.store.read() as conn:
            if not asset_runs.has_work(conn):
                return
        with self.store.begin() as conn:
            # The time once the write lock is held: events committed while we waited for
            # it are in this transaction too, and must not look newer than their run.
            created = asset_runs.create_asset_triggered(conn, self.clock())
        for r in created:
            self._emit("run_created", dag_id=r.dag_id, run_id=r.run_id, event_ids=list(r.event_ids))

    # -- 3. starting runs -------------------------------------------------------------------

    def start_queued(self, now: datetime) -> None:
        """Start queued runs within their limits: a DAG's ``max_active_runs`` for live runs,
        a backfill's own ``max_active_runs`` for its runs (so neither starves the other)."""
        started: list[ActiveRun] = []
        with self.store.read() as conn:
            if not runs_q.any_queued(conn):
                return  # the usual case: no write transaction every poll
        with self.store.begin() as conn:
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
            share = len(queued) if self._live_count <= 1 else -(-len(queued) // self._live_count)
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
                    conn, row["id"], RunState.RUNNING, expected=RunState.QUEUED, start_date=now, owner=self.id
                ):
                    continue  # another scheduler took it
                if bf is not None:
                    running_bf[bf] = running_bf.get(bf, 0) + 1
                else:
                    running[row["dag_id"]] = running.get(row["dag_id"], 0) + 1
                if ti_q.count_for_run(conn, row["id"]):
                    # A run queued again (a backfill reprocessing it): continue from its rows.
                    row = runs_q.get_run_by_pk(conn, row["id"])
                    self._load_run(conn, batch, row, reset_orphans=False, now=now)
                    run = self.runs[row["id"]]
                else:
                    ti_q.create_for_run(conn, row["id"], spec)
                    run = self._active_run(
                        conn, row, spec, RunPlanner(spec, max_map_length=self.max_map_length)
                    )
                    self._persist(batch, run, run.planner.start())
                run.start_date = now
                started.append(run)
            self._commit_batch(conn, batch)
        for run in started:
            self._emit("run_started", dag_id=run.dag_id, run_id=run.run_id)
        self._flush_ready()

    def update_backfills(self, now: datetime) -> None:
        """A backfill whose runs have all finished is complete."""
        with self.store.read() as conn:
            finished = []
            for b in backfills_q.in_state(conn, "running", "paused"):
                progress = backfills_q.progress(conn, b["id"])
                if not progress["queued"] and not progress["running"]:
                    finished.append((b, progress))
        if not finished:
            return  # the usual case: no write transaction every poll
        with self.store.begin() as conn:
            for b, progress in finished:
                backfills_q.set_state(conn, b["id"], "completed", completed_at=now)
                log.info("backfill %s of %s completed: %s", b["id"], b["dag_id"], progress)

    def _active_run(self, conn: Connection, row: Any, spec: DagSpec, planner: RunPlanner) -> ActiveRun:
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
        self.runs[run.pk] = run
        return run

    def recover(self) -> None:
        """Adopt the running runs no live scheduler owns (ours, before a restart, or those
        of a scheduler that died) and reset the attempts their old owner held.

        An instance that was queued but never started goes back to scheduled without
        using a try; one that was running when the old process died counts as an
        interrupted attempt (run again without using a retry). Succeeded instances are
        never touched.
        """
        self.adopt_orphans(self.clock())

    # -- several schedulers ------------------------------------------------------------------

    def register(self) -> None:
        with self.store.begin() as conn:
            schedulers_q.register(conn, self.id, HOSTNAME, os.getpid(), self.clock())
        self._registered = True
        log.info("scheduler %s registered", self.id)

    def unregister(self) -> None:
        if not self._registered:
            return
        try:
            with self.store.begin() as conn:
                released = schedulers_q.stop(conn, self.id, self.clock())
            if released:
                log.info("handed %d running run(s) back for another scheduler to adopt", released)
        except Exception:
            log.exception("could not record this scheduler's stop; others adopt its runs after a timeout")

    def heartbeat_and_adopt(self, now: datetime) -> None:
        if self._registered:
            with self.store.begin() as conn:
                schedulers_q.heartbeat(conn, self.id, now)
        self.adopt_orphans(now)

    def adopt_orphans(self, now: datetime) -> None:
        """Take over running runs whose owner stopped beating (or is gone from this host)."""
        with self.store.read() as conn:
            live = schedulers_q.live(conn, now, self.heartbeat_timeout, HOSTNAME) | {self.id}
            orphans = schedulers_q.orphaned_runs(conn, live)
        self._others_live = len(live) > 1
        self._live_count = len(live)
        if not orphans:
            return
        with self.store.begin() as conn:
            claimed = [pk for pk, owner in orphans if schedulers_q.claim(conn, pk, owner, self.id)]
        self._claimed_unreset.update(claimed)  # until reset: a failed reload must still reset them
        if claimed:
            previous = sorted({owner or "nobody" for pk, owner in orphans if pk in claimed})
            log.info("adopted %d running run(s) from %s", len(claimed), ", ".join(previous))
            self._reload_runs(claimed, reset_orphans=True)

    def _reload_safely(self) -> None:
        try:
            self.reload(reset_orphans=False)
        except Exception:
            log.exception("reloading from the database failed; will try again")

    def reload(self, *, reset_orphans: bool) -> None:
        """Rebuild the in-memory planners and ready queue from the store.

        Without ``reset_orphans``, queued and running instances are left alone: the
        executor still holds them and will report on them.
        """
        now = self.clock()
        if self.runs:
            try:  # a turn refused as stale may hide a user's mark
                self._stop_what_users_ended(list(self.runs))
            except Exception:
                # The store may be what failed: rebuild regardless, as before (an attempt
                # missed here reports later and is ignored, as a mark's always were).
                log.warning("could not check runs for marks before reloading", exc_info=True)
        self.runs.clear()
        self._ready.clear()
        self._ready_rank.clear()
        self._pending_ready.clear()
        with self.store.begin() as conn:
            batch = WriteBatch()
            for row in runs_q.runs_in_state(conn, RunState.RUNNING, owner=self.id):
                reset = reset_orphans or row["id"] in self._claimed_unreset
                self._load_run(conn, batch, row, reset_orphans=reset, now=now)
            self._commit_batch(conn, batch)
        self._claimed_unreset.clear()
        self._flush_ready()

    def sync_runs(self) -> None:
        """Load runs a user cleared (or restarted) since we last looked at them."""
        with self.store.read() as conn:
            current = runs_q.running_clear_numbers(conn, owner=self.id)
        dropped = [pk for pk in self.runs if pk not in current]
        if dropped:
            with self.store.read() as conn:
                finished = {pk for pk in dropped if runs_q.get_run_by_pk(conn, pk)["state"] in _FINISHED_RUN}
            self._stop_what_users_ended(sorted(finished))  # a user marked the whole run
            dropped = [pk for pk in dropped if pk not in finished]
        if dropped and getattr(self.executor, "adopts_attempts", False):
            for pk in dropped:  # their remote attempts go on; their reports are not ours to read
                self.executor.forget(pk)  # type: ignore[attr-defined]
        elif dropped:
            self._cancel_adopted_away(dropped)
        for pk in dropped:
            del self.runs[pk]  # finished outside this scheduler (marked by a user), or adopted
        stale = [pk for pk, n in current.items() if pk not in self.runs or self.runs[pk].clear_number != n]
        if stale:
            self._stop_what_users_ended(stale)
            self._reload_runs(stale)

    def _cancel_active(self, pk: int, reason: str) -> None:
        for task_id, by_index in self.runs[pk].planner.states.items():
            for idx, state in by_index.items():
                if state in (S.QUEUED, S.RUNNING):
                    self.executor.cancel((pk, task_id, idx), reason)

    def _stop_what_users_ended(self, pks: list[int]) -> None:
        """Attempts a user marked (or whose run a user marked) while they were queued or
        running are stopped, as Airflow does: the store says they ended, so their process
        must not go on with side effects. Called before any planner is rebuilt from the
        store (a user's change noticed by ``sync_runs``, or a turn refused as stale), since
        the old planner is what knows they were running. Nothing but a user's mark ends an
        active attempt behind this scheduler's back: a clear leaves active instances alone,
        and an adoption resets them to be run again rather than to an end."""
        with self.store.read() as conn:
            for pk in pks:
                run = self.runs.get(pk)
                if run is None:
                    continue
                active = [
                    (task_id, idx)
                    for task_id, by_index in run.planner.states.items()
                    for idx, state in by_index.items()
                    if state in (S.QUEUED, S.RUNNING)
                ]
                if not active:
                    continue
                if runs_q.get_run_by_pk(conn, pk)["state"] in _FINISHED_RUN:
                    for task_id, idx in active:
                        self.executor.cancel((pk, task_id, idx), "its run was marked by a user")
                    continue
                now = {(t, i): s for t, i, s in ti_q.states_of_run(conn, pk)}
                for task_id, idx in active:
                    state = now.get((task_id, idx))
                    if state in TERMINAL_TASK_STATES:
                        self.executor.cancel((pk, task_id, idx), f"marked {state.value} by a user")

    def _cancel_adopted_away(self, dropped: list[int]) -> None:
        """Runs another scheduler adopted while we were presumed dead (a long pause, a
        partition): it reruns their attempts, so ours, still on our local workers, stop."""
        with self.store.read() as conn:
            owners = schedulers_q.owners(conn, dropped)
        for pk in dropped:
            owner = owners.get(pk, (0, None))[1]
            if owner is None or owner == self.id:
                continue
            run = self.runs[pk]
            self._cancel_active(pk, f"its run was adopted by {owner}")
            log.warning(
                "run %s of %s was adopted by %s; stopped its attempts here", run.run_id, run.dag_id, owner
            )

    def _reload_runs(self, stale: list[int], *, reset_orphans: bool = False) -> None:
        now = self.clock()
        with self.store.begin() as conn:
            batch = WriteBatch()
            for pk in stale:
                row = runs_q.get_run_by_pk(conn, pk)
                if row["state"] == RunState.RUNNING.value and row["owner"] == self.id:
                    reset = reset_orphans or pk in self._claimed_unreset
                    self._load_run(conn, batch, row, reset_orphans=reset, now=now)
                    why = "adopted" if reset_orphans else "cleared"
                    log.info("loaded run %s of %s (%s)", row["run_id"], row["dag_id"], why)
            self._commit_batch(conn, batch)
        self._claimed_unreset.difference_update(stale)
        self._flush_ready()

    def _load_run(
        self, conn: Connection, batch: WriteBatch, row: Any, *, reset_orphans: bool, now: datetime
    ) -> None:
        spec = dags_q.spec_for_version(conn, row["dag_version_id"])
        planner = RunPlanner(
            spec,
            ti_q.states_of_run(conn, row["id"]),
            outputs=results_q.outputs_of_run(conn, row["id"]),
            retry_at=ti_q.retry_times(conn, row["id"]),
            max_tries=ti_q.raised_max_tries(conn, row["id"]),
            max_map_length=self.max_map_length,
            marked_state=RunState(row["marked_state"]) if row["marked_state"] else None,
        )
        if row["marked_state"]:
            planner.marked_reason = row["state_reason"]
        run = self._active_run(conn, row, spec, planner)
        run.tries = ti_q.tries_of_run(conn, row["id"])
        run.sensor_starts = ti_q.sensor_starts(conn, row["id"])
        cmds: list[Command] = []
        adopt = reset_orphans and getattr(self.executor, "adopts_attempts", False)
        for task_id, by_index in planner.states.items():
            for idx, state in list(by_index.items()):
                if state is S.SCHEDULED:
                    self._push(run, task_id, idx)
                elif adopt and state is S.RUNNING:
                    # Remote workers outlive a scheduler: keep following their attempt.
                    item = self._work_item(run, task_id, idx, run.tries[(task_id, idx)])
                    self.executor.adopt(item, running=True)  # type: ignore[attr-defined]
                elif adopt and state is S.QUEUED:
                    cmds += self._follow_or_send_again(
                        conn, run, task_id, idx, "sent again after a scheduler change"
                    )
                elif reset_orphans and state is S.QUEUED:
                    ti_q.set_attempt(
                        conn,
                        run.pk,
                        task_id,
                        idx,
                        expected=[S.QUEUED],
                        try_number=task_instance.c.try_number - 1,
                    )
                    run.tries[(task_id, idx)] -= 1
                    cmds += planner.record(
                        task_id, idx, S.SCHEDULED, reason="requeued after scheduler restart"
                    )
                elif reset_orphans and state is S.RUNNING:
                    # Our crash, not the task's failure: run it again without using a retry.
                    allowed = planner.interrupted(task_id, idx, run.tries[(task_id, idx)])
                    ti_q.set_attempt(conn, run.pk, task_id, idx, expected=[S.RUNNING], max_tries=allowed)
                    cmds += planner.attempt_failed(
                        task_id, idx, run.tries[(task_id, idx)], now, "interrupted by a scheduler restart"
                    )
        cmds += planner.start()
        self._persist(batch, run, cmds)

    def _follow_or_send_again(
        self, conn: Connection, run: ActiveRun, task_id: str, idx: int, reason: str
    ) -> list[Command]:
        """A queued attempt we cannot vouch was handed over (we took the run over, or the
        send failed). If a remote worker took it (its lease or reports say so; checked
        under the instance's row lock, as the worker checks), follow it. Otherwise send it
        again under a new try: a worker taking the old message finds its try out of date."""
        try_number = run.tries[(task_id, idx)]
        key = (run.pk, task_id, idx)
        if getattr(self.executor, "adopts_attempts", False):
            ti_q.attempt_of(conn, key, lock=True)
            if attempts_q.has_evidence(conn, key, try_number):
                self.executor.adopt(self._work_item(run, task_id, idx, try_number), running=True)  # type: ignore[attr-defined]
                return []
        allowed = run.planner.interrupted(task_id, idx, try_number)
        ti_q.set_attempt(conn, run.pk, task_id, idx, expected=[S.QUEUED], max_tries=allowed)
        return run.planner.record(task_id, idx, S.SCHEDULED, reason=reason)

    def call_deadlines(self, now: datetime) -> None:
        """Call deadline callbacks of runs and tasks not finished in time (once each)."""
        fired: list[tuple[ActiveRun, str]] = []
        for run in self.runs.values():
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
        with self.store.begin() as conn:
            for run, _ in fired:
                runs_q.set_deadlines_fired(conn, run.pk, sorted(run.deadlines_fired))
        for run, name in fired:
            what = "the run" if name == "run" else f"task {name!r}"
            log.warning("deadline missed by %s of %s in run %s", what, run.dag_id, run.run_id)
            self._callback(
                run,
                "deadline",
                task_id=None if name == "run" else name,
                reason=f"deadline missed: {what} not finished in time",
            )

    def stop_timed_out_runs(self, now: datetime) -> None:
        """Fail runs that ran longer than their ``dagrun_timeout``; teardowns still run."""
        late = [
            run
            for run in self.runs.values()
            if run.spec.dagrun_timeout is not None
            and run.start_date is not None
            and run.planner.marked_state is None
            and (now - run.start_date).total_seconds() > run.spec.dagrun_timeout
        ]
        if not late:
            return
        with self.store.begin() as conn:
            batch = WriteBatch()
            for run in late:
                reason = f"dagrun_timeout of {run.spec.dagrun_timeout:g}s exceeded"
                log.warning("run %s of %s: %s", run.run_id, run.dag_id, reason)
                cmds, interrupted = run.planner.mark_run(RunState.FAILED, reason)
                batch.run_marks.append((run.pk, RunState.FAILED, reason))
                for task_id, idx in interrupted:
                    self.executor.cancel((run.pk, task_id, idx))
                self._persist(batch, run, cmds)
            self._commit_batch(conn, batch)
        self._flush_ready()

    # -- 4. retries ---------------------------------------------------------------------------

    def retry_due(self, now: datetime) -> None:
        due = [
            (run, run.planner.due_retries(now))
            for run in list(self.runs.values())
            if run.planner.next_retry_at()
        ]
        due = [(run, cmds) for run, cmds in due if cmds]
        if not due:
            return
        with self.store.begin() as conn:
            batch = WriteBatch()
            for run, cmds in due:
                self._persist(batch, run, cmds)
            self._commit_batch(conn, batch)
        self._flush_ready()

    # -- 5. dispatch ----------------------------------------------------------------------------

    def _push(self, run: ActiveRun, task_id: str, map_index: int) -> None:
        self._pending_ready.append((run.pk, task_id, map_index))

    def _check_not_stale(self, conn: Connection, expected: dict[int, int]) -> None:
        """A user who cleared or marked a run changed its rows behind our planner's back:
        writing what the planner decided would undo that. Roll back and reload instead."""
        if not expected:
            return
        current = schedulers_q.owners(conn, list(expected))
        # Changed by a user (clear_number), or adopted by another scheduler that thought we
        # were dead: either way our planner is out of date for that run.
        stale = [pk for pk, n in expected.items() if pk in current and current[pk] != (n, self.id)]
        if stale:
            raise StaleRunsError(stale)

    def _commit_batch(self, conn: Connection, batch: WriteBatch) -> None:
        """Write a turn's batch; runs that failed with run-level retries left are cleared for
        their next attempt in the same transaction (reloaded after the commit)."""
        self._check_not_stale(conn, batch.runs)
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
                states = control.FINISHED_STATES - {S.SUCCESS.value}  # reuse what succeeded
            cleared = control.clear_run(
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
            self._to_reload.append(run.pk)

    def _flush_ready(self) -> None:
        if self._to_reload:
            pks, self._to_reload = self._to_reload, []
            self._reload_runs(pks)
        for run_pk, task_id, idx in self._pending_ready:
            key = (run_pk, task_id)
            if key not in self._ready:
                self._ready[key] = deque()
                run = self.runs.get(run_pk)
                prio = run.spec.task(task_id).priority_weight if run else 0
                self._ready_rank.setdefault(key, (-prio, next(self._seq)))
            self._ready[key].append(idx)
        self._pending_ready = []

    def refresh_pools(self) -> None:
        with self.store.read() as conn:
            self.pools = pools_q.all_slots(conn)
            # Limits hold across schedulers: count what the others have queued or running
            # (as of this poll; only worth a query when there are others).
            self._elsewhere = ti_q.active_elsewhere(conn, self.id) if self._others_live else ({}, {}, {})

    def _occupancy(self) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
        """Active instances per DAG, per (DAG, task) and slots used per pool."""
        per_dag: dict[str, int] = dict(self._elsewhere[0])
        per_task: dict[tuple[str, str], int] = dict(self._elsewhere[1])
        per_pool: dict[str, int] = dict(self._elsewhere[2])
        for run in self.runs.values():
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

    def _room(
        self,
        run: ActiveRun,
        task: TaskSpec,
        per_dag: dict[str, int],
        per_task: dict[tuple[str, str], int],
        per_pool: dict[str, int],
    ) -> int:
        """How many more instances of ``task`` in ``run`` the limits allow right now."""
        room = run.spec.max_active_tasks - per_dag.get(run.dag_id, 0)
        if task.max_active_tis_per_dagrun is not None:
            room = min(room, task.max_active_tis_per_dagrun - run.planner.active_count(task.task_id))
        if task.max_active_tis_per_dag is not None:
            room = min(room, task.max_active_tis_per_dag - per_task.get((run.dag_id, task.task_id), 0))
        pool = task.pool or DEFAULT_POOL
        if pool not in self.pools:
            self._warn_missing_pool(run, task, pool)
            return 0
        if task.pool_slots > 0:
            room = min(room, (self.pools[pool] - per_pool.get(pool, 0)) // task.pool_slots)
        return room

    def _warn_missing_pool(self, run: ActiveRun, task: TaskSpec, pool: str) -> None:
        if (run.pk, task.task_id) in self._pool_warned:
            return
        self._pool_warned.add((run.pk, task.task_id))
        why = f"waiting: pool {pool!r} does not exist; create it with `millstream pools set {pool} SLOTS`"
        log.warning("task %s of %s: %s", task.task_id, run.dag_id, why)
        waiting = [i for i, st in run.planner.states[task.task_id].items() if st is S.SCHEDULED]
        with self.store.begin() as conn:
            ti_q.set_states(conn, run.pk, task.task_id, waiting, S.SCHEDULED, why)

    def dispatch(self) -> None:
        free = self.executor.slots - self.executor.in_flight()
        if free <= 0 or not self._ready:
            return
        per_dag, per_task, per_pool = self._occupancy()
        chosen: list[tuple[ActiveRun, str, int]] = []
        for key in sorted(self._ready, key=self._ready_rank.__getitem__):
            if len(chosen) >= free:
                break
            run_pk, task_id = key
            run = self.runs.get(run_pk)
            queue = self._ready[key]
            if run is None:
                del self._ready[key]
                continue
            task = run.spec.task(task_id)
            room = min(free - len(chosen), self._room(run, task, per_dag, per_task, per_pool))
            while room > 0 and queue:
                idx = queue.popleft()
                if run.planner.states[task_id].get(idx) is not S.SCHEDULED:
                    continue  # changed meanwhile (cleared, run reloaded): a stale entry
                run.planner.record(task_id, idx, S.QUEUED, reason="queued")
                chosen.append((run, task_id, idx))
                room -= 1
                per_dag[run.dag_id] = per_dag.get(run.dag_id, 0) + 1
                per_task[(run.dag_id, task_id)] = per_task.get((run.dag_id, task_id), 0) + 1
                pool = task.pool or DEFAULT_POOL
                per_pool[pool] = per_pool.get(pool, 0) + task.pool_slots
            if not queue:
                del self._ready[key]
                self._ready_rank.pop(key, None)
        if not chosen:
            return
        items: list[WorkItem] = []
        with self.store.begin() as conn:
            self._check_not_stale(conn, {run.pk: run.clear_number for run, _, _ in chosen})
            ti_q.queue_many(conn, [ti_q.key(run.pk, task_id, idx) for run, task_id, idx in chosen])
        for run, task_id, idx in chosen:
            try_number = run.tries.get((task_id, idx), 0) + 1
            run.tries[(task_id, idx)] = try_number
            items.append(self._work_item(run, task_id, idx, try_number))
        for n, item in enumerate(items):
            try:
                self.executor.submit(item)
            except Exception:
                log.exception(
                    "could not hand %d attempt(s) to the executor; scheduling them again", len(items) - n
                )
                self._unsubmit(items[n:])
                return

    def _unsubmit(self, items: list[WorkItem]) -> None:
        """Attempts queued in the store but never handed over go back to scheduled, under
        a new try next time (one may have reached the broker after all: it is fenced)."""
        batch = WriteBatch()
        with self.store.begin() as conn:
            for item in items:
                run = self.runs.get(item.run_pk)
                if run is None:
                    continue
                cmds = self._follow_or_send_again(
                    conn, run, item.task_id, item.map_index, "not sent; sending again"
                )
                self._persist(batch, run, cmds)
            self._commit_batch(conn, batch)
        self._flush_ready()

    def _work_item(self, run: ActiveRun, task_id: str, idx: int, try_number: int) -> WorkItem:
        task = run.spec.task(task_id)
        return WorkItem(
            run_pk=run.pk,
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=task_id,
            map_index=idx,
            try_number=try_number,
            fileloc=run.spec.fileloc,
            run_type=run.run_type,
            logical_date=run.logical_date,
            data_interval_start=run.interval[0],
            data_interval_end=run.interval[1],
            conf=run.conf,
            params=run.params,
            log_path=log_path(self.logs_folder, run.dag_id, run.run_id, task_id, idx, try_number),
            execution_timeout=task.execution_timeout,
            run_version=run.clear_number,
            max_tries=run.planner.max_tries.get((task_id, idx), task.retries),
            sensor_started_at=run.sensor_starts.get((task_id, idx)),
            prev_success_interval=run.prev_success,
            result_store_url=self.result_store_url,
            inline_limit=self.inline_limit,
            queue=task.queue,
            dag_version_id=run.version_id,
        )

    # -- 7. applying events -----------------------------------------------------------------

    def apply(self, events: list[Event]) -> None:
        events = self._unapplied + events
        self._unapplied = []
        if not events:
            return
        finished_runs: list[tuple[ActiveRun, FinishRun]] = []
        now = self.clock()
        try:
            with self.store.begin() as conn:
                batch = WriteBatch()
                for ev in events:
                    if isinstance(ev, Started):
                        self._apply_started(batch, ev)
                    else:
                        done = self._apply_finished(batch, ev, now)
                        if done is not None:
                            finished_runs.append(done)
                self._commit_batch(conn, batch)
        except Exception:
            # Workers told us once; keep their reports until the store takes them.
            self._unapplied = events
            raise
        applied = getattr(self.executor, "applied", None)
        if applied is not None:
            applied()  # a remote executor may now forget the reports behind these events
        self._flush_ready()
        if finished_runs or batch.asset_events:
            self._nudged.set()  # a slot under max_active_runs opened: start what is queued now
        for finished_run, finish in finished_runs:
            self._emit(
                "run_finished",
                dag_id=finished_run.dag_id,
                run_id=finished_run.run_id,
                state=finish.state.value,
            )

    def _apply_started(self, batch: WriteBatch, ev: Started) -> None:
        item = ev.item
        run = self.runs.get(item.run_pk)
        if run is None or run.planner.states[item.task_id].get(item.map_index) is not S.QUEUED:
            return
        if run.tries.get((item.task_id, item.map_index)) != item.try_number:
            return  # a stale attempt starting late
        run.planner.record(item.task_id, item.map_index, S.RUNNING, reason="started")
        batch.runs[run.pk] = run.clear_number
        batch.started.append(
            {
                **ti_q.key(item.run_pk, item.task_id, item.map_index),
                "p_start": ev.at,
                "p_pid": ev.pid,
                "p_host": ev.hostname,
            }
        )
        self._emit(
            "ti_started", dag_id=run.dag_id, run_id=run.run_id, task_id=item.task_id, map_index=item.map_index
        )

    def _apply_finished(
        self, batch: WriteBatch, ev: Finished, now: datetime
    ) -> tuple[ActiveRun, FinishRun] | None:
        r = ev.result
        item = r.item
        run = self.runs.get(item.run_pk)
        if run is None:
            log.warning("ignoring a stale report for %s (its run is no longer running)", item.describe())
            return None
        current = run.planner.states[item.task_id].get(item.map_index)
        latest = run.tries.get((item.task_id, item.map_index))
        if current not in (S.RUNNING, S.QUEUED) or latest != item.try_number:
            # Fencing: a worker presumed dead that comes back reports on an attempt that was
            # already given up; it must not overwrite what a newer attempt did.
            log.warning(
                "ignoring a stale report for %s (instance is %s at try %s now)",
                item.describe(),
                current,
                latest,
            )
            return None
        if current is S.QUEUED:  # its Started report was lost with a killed worker
            run.planner.record(item.task_id, item.map_index, S.RUNNING, reason="started")
        key = ti_q.key(item.run_pk, item.task_id, item.map_index)
        batch.finished.append(
            {
                **key,
                "p_end": r.ended_at,
                "p_duration": (r.ended_at - r.started_at).total_seconds(),
                "p_label": r.label,
            }
        )
        try:
            if r.state == "success":
                batch.results.extend(
                    {
                        "run_pk": item.run_pk,
                        "task_id": item.task_id,
                        "map_index": item.map_index,
                        "key": k,
                        "value": v,
                        "length": n,
                        "type_name": tn,
                        "ref": ref,
                    }
                    for k, v, n, tn, ref in r.results
                )
                cmds = run.planner.record(
                    item.task_id, item.map_index, S.SUCCESS, output=r.output, reason="succeeded"
                )
                batch.asset_events.extend(
                    {
                        **ev,
                        "source": "task",
                        "source_dag_id": run.dag_id,
                        "source_task_id": item.task_id,
                        "source_run_id": run.run_id,
                        "source_map_index": item.map_index,
                    }
                    for ev in r.asset_events
                )
            elif r.state == "skipped":
                cmds = run.planner.record(
                    item.task_id, item.map_index, S.SKIPPED, reason=r.error or "skipped"
                )
            elif r.state == "reschedule" and r.reschedule_at is not None:
                # A poke that found nothing frees the slot and does not use a try.
                cmds = run.planner.reschedule(item.task_id, item.map_index, r.reschedule_at)
                run.tries[(item.task_id, item.map_index)] = item.try_number - 1
                run.sensor_starts.setdefault((item.task_id, item.map_index), r.started_at)
                batch.rescheduled.append({**key, "p_first": r.started_at})
            else:
                cmds = run.planner.attempt_failed(
                    item.task_id, item.map_index, item.try_number, now, r.error or "", retryable=r.retryable
                )

                if not r.callbacks_done:
                    self._task_callback_elsewhere(run, item, cmds, r.error or "")
        except IllegalTransition as e:
            log.error("dropping an impossible report for %s: %s", item.describe(), e)
            return None
        self._emit(
            "ti_finished",
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=item.task_id,
            map_index=item.map_index,
            state=r.state,
            error=r.error,
            log_path=item.log_path,
        )
        return self._persist(batch, run, cmds)

    def _persist(
        self, batch: WriteBatch, run: ActiveRun, cmds: list[Command]
    ) -> tuple[ActiveRun, FinishRun] | None:
        """Queue the planner's commands for writing; ready instances are pushed after the commit."""
        batch.runs[run.pk] = run.clear_number
        finish = None
        for cmd in cmds:
            if isinstance(cmd, SetStates):
                if cmd.state is S.QUEUED or cmd.state is S.RUNNING:
                    continue  # written by dispatch / _apply_started with their extra fields
                for idx in cmd.map_indexes:
                    batch.set_state(run.pk, cmd.task_id, idx, cmd.state, cmd.reason, cmd.retry_at)
                if self.listener is not None and cmd.state in _DECIDED:
                    for idx in cmd.map_indexes:
                        self._emit(
                            "ti_finished",
                            dag_id=run.dag_id,
                            run_id=run.run_id,
                            task_id=cmd.task_id,
                            map_index=idx,
                            state=cmd.state.value,
                            error=None,
                            log_path=None,
                        )
                if cmd.state is S.SCHEDULED:
                    for idx in cmd.map_indexes:
                        self._push(run, cmd.task_id, idx)
            elif isinstance(cmd, ExpandTask):
                batch.expansions.append((run.pk, run.spec, cmd.task_id, cmd.length, cmd.state))
                if cmd.state is S.SCHEDULED:
                    for idx in range(cmd.length):
                        self._push(run, cmd.task_id, idx)
            elif isinstance(cmd, FinishRun):
                if (
                    cmd.state is RunState.FAILED
                    and run.attempt <= run.spec.retries
                    and run.planner.marked_state is None
                ):
                    batch.run_retries.append(run)  # retried as a whole instead of finishing
                    continue
                batch.run_states.append((run.pk, cmd.state, cmd.reason, self.clock()))
                kind = "on_success_callback" if cmd.state is RunState.SUCCESS else "on_failure_callback"
                if kind in run.spec.callbacks:
                    self._callback(run, kind, reason=cmd.reason)
                del self.runs[run.pk]
                log.info("run %s of %s finished: %s (%s)", run.run_id, run.dag_id, cmd.state, cmd.reason)
                finish = (run, cmd)
        return finish

    # -- callbacks ------------------------------------------------------------------------------

    def _callback(
        self,
        run: ActiveRun,
        kind: str,
        *,
        task_id: str | None = None,
        map_index: int = -1,
        reason: str = "",
        log_file: str | None = None,
    ) -> None:
        self.callbacks.submit(
            CallbackRequest(
                fileloc=run.spec.fileloc,
                dag_id=run.dag_id,
                kind=kind,
                run_id=run.run_id,
                log_path=log_file or callbacks_log_path(self.logs_folder, run.dag_id, run.run_id),
                task_id=task_id,
                map_index=map_index,
                reason=reason,
                logical_date=run.logical_date.isoformat() if run.logical_date else None,
            )
        )

    def _task_callback_elsewhere(
        self, run: ActiveRun, item: WorkItem, cmds: list[Command], error: str
    ) -> None:
        """The attempt ended outside its worker (timed out, lost): run its callback here."""
        retried = any(isinstance(c, SetStates) and c.state is S.UP_FOR_RETRY for c in cmds)
        kind = "on_retry_callback" if retried else "on_failure_callback"
        if kind in run.spec.task(item.task_id).callbacks:
            self._callback(
                run,
                kind,
                task_id=item.task_id,
                map_index=item.map_index,
                reason=error,
                log_file=item.log_path,
            )

    # -- helpers for callers that drive the loop themselves (dags test, tests) ------------------

    def run_until(self, predicate: Callable[[], bool], timeout: float = 600.0) -> None:
        deadline = self.clock() + timedelta(seconds=timeout)
        while not predicate():
            if self.clock() > deadline:
                raise TimeoutError("scheduler did not reach the expected state in time")
            self.step(max_wait=0.05)
