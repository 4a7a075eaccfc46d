"""Runs each attempt in the scheduler's own process, one at a time (``dags test``)."""

from __future__ import annotations

import os
import threading
from collections import deque
from datetime import UTC, datetime

from millstream.worker.item import Event, Finished, Started, WorkItem
from millstream.worker.results import ResultReader
from millstream.worker.runner import HOSTNAME, DagResolver, run_attempt


class InlineExecutor:
    """Runs queued attempts one after another when the scheduler asks for events.

    Up to ``slots`` attempts are queued per turn and all run in one ``events`` call, so
    the scheduler records them in one transaction instead of one per task.
    """

    slots = 64

    def __init__(self, resolve_dag: DagResolver, reader: ResultReader) -> None:
        self._resolve = resolve_dag
        self._reader = reader
        self._queue: deque[WorkItem] = deque()
        self._woken = threading.Event()

    def start(self) -> None:
        pass

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)

    def in_flight(self) -> int:
        return len(self._queue)

    def events(self, timeout: float) -> list[Event]:
        if not self._queue:
            # Nothing to run: wait like the other executors do (until a timer is due or a
            # trigger fires), rather than spin while a sensor or a deferred task waits.
            self._woken.wait(max(0.0, timeout))
            self._woken.clear()
        out: list[Event] = []
        while self._queue:
            item = self._queue.popleft()
            out.append(Started(item, datetime.now(UTC), os.getpid(), HOSTNAME))
            out.append(Finished(run_attempt(item, self._resolve, self._reader, alarm=True)))
        return out

    def cancel(self, key: tuple[int, str, int], reason: str = "its run was stopped") -> None:
        self._queue = deque(i for i in self._queue if i.key != key)

    def wake(self) -> None:
        self._woken.set()

    def shutdown(self) -> None:
        self._queue.clear()
