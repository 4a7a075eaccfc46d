"""DAG files and watched files, from the threads that see them to the loop that records them.

Parsing runs in a thread (each file in a child process with a timeout, see ``parsing``),
so a slow or hanging file never holds up scheduling; asset watchers run in a thread of
their own. Both only hand results over: the loop thread does every write, in
``record_dag_files`` and ``record_watched``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from millstream.core.duplicates import Duplicate
from millstream.scheduler.dagsync import record_parsed, sync_folder
from millstream.scheduler.parsing import DagFolder, Parsed
from millstream.scheduler.state import SchedulerState
from millstream.scheduler.watchers import Arrival, TriggerArrival, WatcherThread, record_arrivals

log = logging.getLogger("millstream.scheduler")


def _log_duplicates(duplicates: Iterable[Duplicate]) -> None:
    for d in duplicates:
        log.warning("DAG file failed to import: %s", d.message)


class DagFiles:
    """The DAG folder watcher thread, the asset watchers, and what they handed over."""

    def __init__(
        self,
        state: SchedulerState,
        folder: DagFolder | None,
        wake: Callable[[], None],
        refresh_interval: float,
    ) -> None:
        self.state = state
        self.folder = folder
        self.wake = wake
        self.refresh_interval = refresh_interval
        self.parsed: queue.Queue[tuple[list[Parsed], list[str]]] = queue.Queue()
        self.watchers = WatcherThread(
            state.store,
            wake,
            refresh_interval=refresh_interval,
            scheduler_id=state.id,
            heartbeat_timeout=state.heartbeat_timeout,
        )
        self.arrivals: list[
            Arrival | TriggerArrival
        ] = []  # settled files and fired watchers not yet recorded

    def refresh(self) -> None:
        """Parse changed DAG files and record them now (before the loop starts)."""
        assert self.folder is not None
        synced = sync_folder(self.state.store, self.folder, paused_on_creation=self.state.paused_on_creation)
        for p in synced.parsed:
            if p.error is not None:
                log.warning("DAG file failed to import: %s", p.error)
        _log_duplicates(synced.duplicates)

    def watch(self, stop: threading.Event) -> None:
        """The watcher thread: parse what changed, hand it to the loop, sleep, repeat."""
        assert self.folder is not None
        known: list[str] | None = None
        while not stop.is_set():
            try:
                changed, files = self.folder.changed()
                parsed = self.folder.parse(changed) if changed else []
                if parsed or files != known:
                    self.parsed.put((parsed, files))
                    known = files
                    self.wake()
            except Exception:
                log.exception("scanning the DAG folder failed; will try again")
            stop.wait(self.refresh_interval)

    def record_dag_files(self) -> None:
        """Store what the watcher parsed (new versions, import errors, files gone)."""
        while True:
            try:
                parsed, files = self.parsed.get_nowait()
            except queue.Empty:
                return
            for p in parsed:
                if p.error is not None:
                    log.warning("DAG file failed to import: %s", p.error)
            self.state.metrics.parsed(parsed)
            recorded = record_parsed(
                self.state.store,
                parsed,
                paused_on_creation=self.state.paused_on_creation,
                files=files,
                folder=self.folder.folder if self.folder is not None else None,
            )
            _log_duplicates(recorded.duplicates)
            if recorded.reparse and self.folder is not None:
                self.folder.forget(recorded.reparse)  # the watcher parses them on its next look

    def record_watched(self, now: datetime) -> None:
        """Record the files the watchers saw settle as asset events."""
        while True:
            try:
                self.arrivals.append(self.watchers.arrivals.get_nowait())
            except queue.Empty:
                break
        if self.arrivals:
            n = record_arrivals(self.state.store, self.arrivals, now)  # kept if this raises
            self.arrivals = []
            if n:
                self.state.nudged.set()

    def record_parsed(self, parsed: Iterable[Parsed]) -> None:
        """Record parses made by the caller (``dags test``, tests) at once."""
        record_parsed(
            self.state.store, parsed, paused_on_creation=self.state.paused_on_creation, now=self.state.clock()
        )
