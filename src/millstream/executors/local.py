"""A pool of long-lived worker processes that keep DAG modules imported.

Each worker imports a DAG file once and reuses it for every task of that file (until
the file changes), so a trivial task costs well under a millisecond of overhead.

Every worker has its own two pipes, one for work and one for reports; nothing is shared
between workers. So a worker that dies at any instant (SIGKILL, OOM killer, ``os._exit``)
cannot leave a lock behind that blocks the others, and the pool knows exactly what that
worker held: the attempt it had started is reported failed, the ones it had not started
yet go to another worker. A worker that overruns its task's ``execution_timeout``, or
stops sending heartbeats for the lease timeout (hung, paused, swapped out), is killed and
replaced the same way.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from millstream.executors.base import ExecutorBrokenError
from millstream.worker.item import AttemptResult, Event, Finished, Started, WorkItem
from millstream.worker.logformat import ids

log = logging.getLogger(__name__)

_STOP = None


@dataclass(frozen=True)
class Heartbeat:
    """A running attempt is alive (internal to the pool; the scheduler never sees it)."""

    pid: int
    key: tuple[int, str, int]
    try_number: int


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker if the scheduler process dies."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass


def _ignore(signum: int, frame: object) -> None:
    return None


def _worker_main(db_url: str, work: Connection, reports: Connection, heartbeat_every: float) -> None:
    """Body of a worker process: take items, run them, report, until told to stop.

    Reports are sent synchronously (``Connection.send``), so the pool has the Started
    report before the task's code runs. While an attempt runs, a thread sends heartbeats.
    """
    # Ctrl-C and a SIGTERM sent to the whole process group (systemd, supervisord) are the
    # parent's to handle: it lets running attempts finish, then stops us itself.
    # A handler that does nothing, not SIG_IGN: an ignored signal stays ignored in every
    # program a task starts (a bash command could then not be stopped with SIGTERM).
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    _die_with_parent()
    from millstream.worker.stopping import install_stop_handler

    install_stop_handler()  # the pool's stop request: the attempt's on_kill, then exit
    from millstream.store import Store
    from millstream.worker.dagcache import DagCache
    from millstream.worker.results import ResultReader
    from millstream.worker.runner import HOSTNAME, run_attempt

    store = Store(db_url)
    from millstream.store.secret_values import bind_store

    bind_store(store)  # tasks' Variables and Connections come from the scheduler's store
    reader = ResultReader(store)
    cache = DagCache()
    pid = os.getpid()
    lock = threading.Lock()  # the heartbeat thread and this one share the report pipe

    def report(ev: object) -> None:
        with lock:
            reports.send(ev)

    def beat(item: WorkItem, stop: threading.Event) -> None:
        while not stop.wait(heartbeat_every):
            report(Heartbeat(pid, item.key, item.try_number))

    while True:
        try:
            item = work.recv()
        except EOFError:
            break  # the pool is gone
        if item is _STOP:
            break
        report(Started(item, datetime.now(UTC), pid, HOSTNAME))
        stop = threading.Event()
        threading.Thread(target=beat, args=(item, stop), daemon=True).start()
        try:

            def resolve(fileloc: str, dag_id: str, item: WorkItem = item) -> Any:
                return cache.resolve_version(fileloc, dag_id, item.dag_version_id, reader.store)

            result = run_attempt(item, resolve, reader)
        finally:
            stop.set()
        report(Finished(result))
    store.dispose()


@dataclass
class _Worker:
    proc: BaseProcess
    work: Connection  # parent's sending end
    reports: Connection  # parent's receiving end
    waiting: deque[WorkItem] = field(default_factory=deque)  # sent, not started yet
    current: WorkItem | None = None  # started
    started_at: float = 0.0
    last_beat: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    @property
    def load(self) -> int:
        return len(self.waiting) + (self.current is not None)


class LocalExecutor:
    #: Items handed to each worker ahead of time: a small backlog keeps every worker busy
    #: while the scheduler records what just finished.
    PREFETCH = 16

    def __init__(self, db_url: str, parallelism: int | None = None, lease_timeout: float = 30.0) -> None:
        self.db_url = db_url
        self.lease_timeout = lease_timeout
        self.parallelism = parallelism or max(2, os.cpu_count() or 2)
        self.slots = self.parallelism * self.PREFETCH
        self._ctx = mp.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._spawns: list[float] = []
        self._cancelled: set[tuple[tuple[int, str, int], int]] = set()
        self._backlog: list[Event] = []  # reports read outside events() (by cancel), not yet returned
        # Workers asked to stop their attempt (on_kill), with when they get SIGKILL instead.
        self._stopping: list[tuple[BaseProcess, float]] = []
        self._wake_r: Connection | None = None
        self._wake_w: Connection | None = None
        self._wake_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        for _ in range(self.parallelism):
            self._spawn()

    def _spawn(self) -> _Worker:
        now = time.monotonic()
        self._spawns = [t for t in self._spawns if now - t < 60] + [now]
        if len(self._spawns) > 10 * self.parallelism:
            raise ExecutorBrokenError(
                f"worker processes keep dying ({len(self._spawns)} started in the last minute); "
                "see the scheduler's stderr for why"
            )
        work_r, work_w = self._ctx.Pipe(duplex=False)
        rep_r, rep_w = self._ctx.Pipe(duplex=False)
        p = self._ctx.Process(
            target=_worker_main,
            args=(self.db_url, work_r, rep_w, self.lease_timeout / 3),
            daemon=True,
            name="millstream-worker",
        )
        p.start()
        work_r.close()
        rep_w.close()
        w = _Worker(p, work_w, rep_r)
        self._workers[w.pid] = w
        return w

    def shutdown(self) -> None:
        for w in self._workers.values():
            try:
                w.work.send(_STOP)
            except OSError:
                pass
        # Idle workers exit on the stop message. A busy one is killed: the scheduler has
        # already recorded everything that finished in time (its drain), and an attempt
        # finishing now would go unrecorded and be run again by whoever adopts the run.
        # It is asked first, so that its operator's on_kill can release what it holds.
        end = time.monotonic() + 0.5
        for w in self._workers.values():
            w.proc.join(max(0.0, end - time.monotonic()))
            if w.proc.is_alive():
                self._ask_to_stop(w.proc)
        for w in self._workers.values():
            w.work.close()
            w.reports.close()
        self._workers.clear()
        for proc, until in self._stopping:
            proc.join(max(0.0, until - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        self._stopping.clear()

    # -- work in -------------------------------------------------------------------------------

    def submit(self, item: WorkItem) -> None:
        self._assign(item)

    def _assign(self, item: WorkItem) -> None:
        w = min(self._workers.values(), key=lambda w: w.load)
        w.waiting.append(item)
        w.work.send(item)

    def in_flight(self) -> int:
        # Reports read ahead (by a cancel) count until events() has handed them over.
        return sum(w.load for w in self._workers.values()) + len(self._backlog)

    def _catch_up(self, w: _Worker) -> None:
        """Read what the worker has reported so far, so ``current`` is what it runs now (a
        worker that finished the attempt and took the next must not be killed for it)."""
        try:
            while w.reports.poll():
                self._backlog.extend(self._track(w, w.reports.recv()))
        except (EOFError, OSError):
            pass  # it died: the watchdog deals with it

    def cancel(self, key: tuple[int, str, int], reason: str = "its run was stopped") -> None:
        for w in list(self._workers.values()):
            if self._workers.get(w.pid) is w:
                self._catch_up(w)
        # Catching up may have replaced a worker and handed its queue to others: look in the
        # workers there are now.
        for w in list(self._workers.values()):
            if w.current is not None and w.current.key == key:
                log.warning("stopping %s: %s", w.current.describe(), reason, extra=ids(w.current))
                _note(w.current, f"stopped: {reason}")
                w.current = None
                self._replace(w, kill=True)
                return
            for item in w.waiting:
                if item.key == key:
                    # Already in that worker's pipe: stop it the moment it starts.
                    self._cancelled.add((key, item.try_number))
                    return

    def wake(self) -> None:
        if self._wake_w is not None:
            with self._wake_lock:
                self._wake_w.send(b"!")

    # -- reports out ---------------------------------------------------------------------------

    def events(self, timeout: float) -> list[Event]:
        assert self._wake_r is not None
        out, self._backlog = self._backlog, []
        conns = [w.reports for w in self._workers.values()] + [self._wake_r]
        ready = wait(conns, timeout=0 if out else min(timeout, self._watch_interval()))
        by_conn = {w.reports: w for w in self._workers.values()}
        for conn in ready:
            if conn is self._wake_r:
                while self._wake_r.poll():
                    self._wake_r.recv()
                continue
            w = by_conn[conn]  # type: ignore[index]
            try:
                while conn.poll():
                    ev = conn.recv()  # type: ignore[union-attr]
                    out.extend(self._track(w, ev))
            except (EOFError, OSError):
                pass  # the worker died; the watchdog below deals with it
        out.extend(self._watchdog())
        return out

    def _track(self, w: _Worker, ev: Any) -> list[Event]:
        now = time.monotonic()
        if isinstance(ev, Heartbeat):
            if w.current is not None and w.current.key == ev.key and w.current.try_number == ev.try_number:
                w.last_beat = now
            return []
        if isinstance(ev, Started):
            item = ev.item
            for queued in list(w.waiting):
                if queued.key == item.key and queued.try_number == item.try_number:
                    w.waiting.remove(queued)
                    break
            w.current, w.started_at, w.last_beat = item, now, now
            if (item.key, item.try_number) in self._cancelled:
                self._cancelled.discard((item.key, item.try_number))
                log.warning("stopping %s as it starts: its run was stopped", item.describe(), extra=ids(item))
                w.current = None
                self._replace(w, kill=True)
                return []
            return [ev]
        if isinstance(ev, Finished):
            item = ev.result.item
            if (
                w.current is not None
                and w.current.key == item.key
                and w.current.try_number == item.try_number
            ):
                w.current = None
            return [ev]
        return []

    def _watch_interval(self) -> float:
        deadlines = [until for _, until in self._stopping]
        for w in self._workers.values():
            if w.current is None:
                continue
            deadlines.append(w.last_beat + self.lease_timeout)
            if w.current.execution_timeout:
                deadlines.append(w.started_at + w.current.execution_timeout)
        soonest = min(deadlines, default=None)
        return 1.0 if soonest is None else max(0.0, min(1.0, soonest - time.monotonic()))

    def _watchdog(self) -> list[Event]:
        """Fail what overran, went silent or lost its worker; replace those workers."""
        out: list[Event] = []
        self._reap_stopping()
        now = time.monotonic()
        for w in list(self._workers.values()):
            item = w.current
            if not w.proc.is_alive():
                if item is not None:
                    out.append(
                        self._failed(item, f"worker process {w.pid} died (exit code {w.proc.exitcode})")
                    )
                    w.current = None
                self._replace(w, kill=False)
            elif item is not None and item.execution_timeout and now - w.started_at > item.execution_timeout:
                log.warning(
                    "killing %s: execution_timeout of %ss exceeded",
                    item.describe(),
                    item.execution_timeout,
                    extra=ids(item),
                )
                out.append(
                    self._failed(item, f"timed out: execution_timeout of {item.execution_timeout}s exceeded")
                )
                w.current = None
                self._replace(w, kill=True)
            elif item is not None and now - w.last_beat > self.lease_timeout:
                silent = now - w.last_beat
                log.warning(
                    "lost %s: no heartbeat from pid %s for %.1fs",
                    item.describe(),
                    w.pid,
                    silent,
                    extra=ids(item),
                )
                out.append(
                    self._failed(
                        item,
                        f"lost: no heartbeat from worker pid {w.pid} for {silent:.1f}s "
                        f"(lease timeout {self.lease_timeout:g}s)",
                    )
                )
                w.current = None
                # A silent worker cannot be trusted with what it still holds: it is killed,
                # and should anything it did still arrive, the scheduler's try-number fence
                # would drop it.
                self._replace(w, kill=True)
        return out

    def _ask_to_stop(self, proc: BaseProcess) -> None:
        """Have a worker call its attempt's on_kill and exit; SIGKILL after the grace time."""
        from millstream.worker.stopping import KILL_GRACE, STOP_SIGNAL

        try:
            os.kill(proc.pid, STOP_SIGNAL)  # type: ignore[arg-type]
        except ProcessLookupError:
            return
        self._stopping.append((proc, time.monotonic() + KILL_GRACE))

    def _reap_stopping(self) -> None:
        now = time.monotonic()
        keep = []
        for proc, until in self._stopping:
            if not proc.is_alive():
                proc.join(0)
            elif now >= until:
                log.warning("worker %s did not stop within the grace time: killing it", proc.pid)
                proc.kill()
                proc.join(1)
            else:
                keep.append((proc, until))
        self._stopping = keep

    def _replace(self, w: _Worker, *, kill: bool) -> None:
        """Retire a worker: what it had not started goes to the others (or a replacement).
        A worker retired while it runs an attempt is asked to stop (on_kill), not killed."""
        if kill and w.proc.is_alive():
            self._ask_to_stop(w.proc)
        self._workers.pop(w.pid, None)
        w.work.close()
        w.reports.close()
        self._spawn()
        for item in w.waiting:
            self._assign(item)

    def _failed(self, item: WorkItem, reason: str) -> Finished:
        _note(item, reason)
        now = datetime.now(UTC)
        return Finished(AttemptResult(item=item, state="failed", started_at=now, ended_at=now, error=reason))


def _note(item: WorkItem, text: str) -> None:
    try:
        with open(item.log_path, "a", encoding="utf-8") as f:
            f.write(f"[{datetime.now(UTC).isoformat()}] {text}\n")
    except OSError:
        pass
