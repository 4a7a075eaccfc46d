"""A pool of long-lived worker processes that keep DAG modules imported.

Each worker imports a DAG file once and reuses it for every task of that file (until
the file changes), so a trivial task costs well under a millisecond of overhead. The
pool watches its workers: one that dies or overruns its task's ``execution_timeout`` is
killed and replaced, and its attempt reported failed with the reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any

from millstream.executors.base import ExecutorBrokenError
from millstream.worker.item import AttemptResult, Event, Finished, Started, WorkItem

log = logging.getLogger(__name__)

_STOP = None
_WAKE = "wake"


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


def _beat(
    events: Any, pid: int, key: tuple[int, str, int], try_number: int, every: float, stop: threading.Event
) -> None:
    while not stop.wait(every):
        events.put(Heartbeat(pid, key, try_number))


def _worker_main(db_url: str, tasks: Any, events: Any, heartbeat_every: float) -> None:
    """Body of a worker process: take items, run them, report, forever.

    While an attempt runs, a thread reports a heartbeat; a worker that stops beating (it
    hangs, is paused, or the machine is gone) loses its lease and its attempt is retried.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    from millstream.store import Store
    from millstream.worker.dagcache import DagCache
    from millstream.worker.results import ResultReader
    from millstream.worker.runner import HOSTNAME, run_attempt

    store = Store(db_url)
    reader = ResultReader(store)
    cache = DagCache()
    pid = os.getpid()
    while True:
        item = tasks.get()
        if item is _STOP:
            break
        events.put(Started(item, datetime.now(UTC), pid, HOSTNAME))
        stop = threading.Event()
        beat = threading.Thread(
            target=_beat, args=(events, pid, item.key, item.try_number, heartbeat_every, stop), daemon=True
        )
        beat.start()
        try:
            result = run_attempt(item, cache.resolve, reader)
        finally:
            stop.set()
        events.put(Finished(result))
    store.dispose()


@dataclass(frozen=True)
class Heartbeat:
    """A running attempt is alive (internal to the pool; the scheduler never sees it)."""

    pid: int
    key: tuple[int, str, int]
    try_number: int


@dataclass
class _Running:
    item: WorkItem
    pid: int
    deadline: float | None
    last_beat: float


class LocalExecutor:
    #: Items handed to the pool per worker process: a small backlog keeps every worker busy
    #: while the scheduler records what just finished.
    PREFETCH = 4

    def __init__(self, db_url: str, parallelism: int | None = None, lease_timeout: float = 30.0) -> None:
        self.db_url = db_url
        self.lease_timeout = lease_timeout
        self.parallelism = parallelism or max(2, os.cpu_count() or 2)
        self.slots = self.parallelism * self.PREFETCH
        self._ctx = mp.get_context("spawn")
        self._tasks: Any = None
        self._events: Any = None
        self._procs: dict[int, BaseProcess] = {}
        self._running: dict[tuple[int, str, int], _Running] = {}
        self._submitted: dict[tuple[int, str, int], WorkItem] = {}
        self._spawns: list[float] = []
        self._retiring = 0
        self._cancelled: set[tuple[tuple[int, str, int], int]] = set()
        self._lost: list[BaseProcess] = []  # workers whose lease expired; left alone, fenced off

    def start(self) -> None:
        self._tasks = self._ctx.Queue()
        self._events = self._ctx.Queue()
        for _ in range(self.parallelism):
            self._spawn()

    def _spawn(self) -> None:
        now = time.monotonic()
        self._spawns = [t for t in self._spawns if now - t < 60] + [now]
        if len(self._spawns) > 10 * self.parallelism:
            raise ExecutorBrokenError(
                f"worker processes keep dying ({len(self._spawns)} started in the last minute); "
                "see the scheduler's stderr for why"
            )
        p = self._ctx.Process(
            target=_worker_main,
            args=(self.db_url, self._tasks, self._events, self.lease_timeout / 3),
            daemon=True,
            name="millstream-worker",
        )
        p.start()
        assert p.pid is not None
        self._procs[p.pid] = p

    def submit(self, item: WorkItem) -> None:
        self._submitted[item.key] = item
        self._tasks.put(item)

    def in_flight(self) -> int:
        return len(self._submitted)

    def events(self, timeout: float) -> list[Event]:
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        wait = min(timeout, self._watch_interval())
        try:
            out.append(self._events.get(timeout=max(wait, 0)))
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        out = self._screen(out)
        for ev in out:
            if isinstance(ev, Heartbeat):
                r = self._running.get(ev.key)
                if r is not None and r.pid == ev.pid and r.item.try_number == ev.try_number:
                    r.last_beat = time.monotonic()
        out = [ev for ev in out if not isinstance(ev, (str, Heartbeat))]  # internal: wake-ups, beats
        for ev in out:
            self._track(ev)
        out.extend(self._watchdog())
        del deadline
        return out

    def _screen(self, events: list[Any]) -> list[Any]:
        """Deal with workers that come back after losing their lease, and with attempts
        that were cancelled while still waiting in the queue."""
        kept = []
        for ev in events:
            pid = ev.pid if isinstance(ev, (Started, Heartbeat)) else None
            if isinstance(ev, Finished):
                pid = ev.result.pid
            lost = next((p for p in self._lost if p.pid == pid), None)
            if lost is not None:
                # Back from the dead: it is a worker again, and one worker too many (a
                # replacement took its place), so one worker is asked to retire.
                self._lost.remove(lost)
                self._procs[lost.pid] = lost  # type: ignore[index]
                self._retiring += 1
                self._tasks.put(_STOP)
            if isinstance(ev, Started) and (ev.item.key, ev.item.try_number) in self._cancelled:
                self._cancelled.discard((ev.item.key, ev.item.try_number))
                log.warning("stopping %s as it starts: its run was stopped", ev.item.describe())
                self._kill(ev.pid)
                continue
            kept.append(ev)
        return kept

    def _watch_interval(self) -> float:
        deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
        deadlines += [r.last_beat + self.lease_timeout for r in self._running.values()]
        soonest = min(deadlines, default=None)
        base = 1.0
        return base if soonest is None else max(0.0, min(base, soonest - time.monotonic()))

    def _track(self, ev: Event) -> None:
        if isinstance(ev, Started):
            timeout = ev.item.execution_timeout
            now = time.monotonic()
            self._running[ev.item.key] = _Running(ev.item, ev.pid, now + timeout if timeout else None, now)
        else:
            # Only the attempt it is about: a lost worker's late report must not unregister
            # the retry that replaced it.
            item = ev.result.item
            r = self._running.get(item.key)
            if r is not None and r.item.try_number == item.try_number:
                del self._running[item.key]
            sub = self._submitted.get(item.key)
            if sub is not None and sub.try_number == item.try_number:
                del self._submitted[item.key]

    def _watchdog(self) -> list[Event]:
        """Kill overrunning attempts; replace dead workers and fail what they held."""
        out: list[Event] = []
        now = time.monotonic()
        for _key, r in list(self._running.items()):
            if r.deadline is not None and now > r.deadline:
                log.warning(
                    "killing %s: execution_timeout of %ss exceeded",
                    r.item.describe(),
                    r.item.execution_timeout,
                )
                self._kill(r.pid)
                out.append(
                    self._failed(r, f"timed out: execution_timeout of {r.item.execution_timeout}s exceeded")
                )
        for _key, r in list(self._running.items()):
            silent = now - r.last_beat
            if silent > self.lease_timeout:
                # Not killed: a paused worker may come back; its late report is fenced off by
                # its try number, and a replacement takes its place in the pool meanwhile.
                log.warning("lost %s: no heartbeat from pid %s for %.1fs", r.item.describe(), r.pid, silent)
                proc = self._procs.pop(r.pid, None)
                if proc is not None:
                    self._lost.append(proc)
                    self._spawn()
                out.append(
                    self._failed(
                        r,
                        f"lost: no heartbeat from worker pid {r.pid} for {silent:.1f}s "
                        f"(lease timeout {self.lease_timeout:g}s)",
                    )
                )
        for pid, p in list(self._procs.items()):
            if not p.is_alive() and p.exitcode == 0 and self._retiring:
                del self._procs[pid]  # retired on purpose (see _screen)
                self._retiring -= 1
                continue
            if not p.is_alive():
                del self._procs[pid]
                for _key, r in list(self._running.items()):
                    if r.pid == pid:
                        out.append(self._failed(r, f"worker process {pid} died (exit code {p.exitcode})"))
                self._spawn()
        return out

    def _kill(self, pid: int) -> None:
        p = self._procs.pop(pid, None)
        if p is not None:
            p.kill()
            p.join(5)
            self._spawn()

    def _failed(self, r: _Running, reason: str) -> Finished:
        self._running.pop(r.item.key, None)
        self._submitted.pop(r.item.key, None)
        try:
            with open(r.item.log_path, "a", encoding="utf-8") as f:
                f.write(f"[{datetime.now(UTC).isoformat()}] {reason}\n")
        except OSError:
            pass
        now = datetime.now(UTC)
        return Finished(
            AttemptResult(item=r.item, state="failed", started_at=now, ended_at=now, error=reason, pid=r.pid)
        )

    def cancel(self, key: tuple[int, str, int]) -> None:
        r = self._running.pop(key, None)
        waiting = self._submitted.pop(key, None)
        if r is None and waiting is not None:
            self._cancelled.add((key, waiting.try_number))  # still in the queue: stop it as it starts
        if r is not None:
            log.warning("stopping %s: its run was stopped", r.item.describe())
            self._kill(r.pid)
            with open(r.item.log_path, "a", encoding="utf-8") as f:
                f.write(f"[{datetime.now(UTC).isoformat()}] stopped: its run was stopped\n")

    def wake(self) -> None:
        if self._events is not None:
            self._events.put(_WAKE)

    def shutdown(self) -> None:
        if self._tasks is None:
            return
        for _ in self._procs:
            self._tasks.put(_STOP)
        end = time.monotonic() + 5
        for p in self._procs.values():
            p.join(max(0.0, end - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1)
        for p in self._lost:
            p.kill()
            p.join(1)
        self._procs.clear()
        self._lost.clear()
        self._tasks.cancel_join_thread()
        self._events.cancel_join_thread()
        self._tasks = None
