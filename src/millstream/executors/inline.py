"""Runs each attempt in the scheduler's own process, one at a time (``dags test``)."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from millstream.worker.item import Event, Finished, Started, WorkItem
from millstream.worker.results import ResultReader
from millstream.worker.runner import HOSTNAME, DagResolver, run_attempt


class InlineExecutor:
    slots = 1

    def __init__(self, resolve_dag: DagResolver, reader: ResultReader) -> None:
        self._resolve = resolve_dag
        self._reader = reader
        self._queue: deque[WorkItem] = deque()

    def start(self) -> None:
        pass

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)

    def in_flight(self) -> int:
        return len(self._queue)

    def events(self, timeout: float) -> list[Event]:
        if not self._queue:
            return []
        item = self._queue.popleft()
        import os

        started = Started(item, datetime.now(UTC), os.getpid(), HOSTNAME)
        return [started, Finished(run_attempt(item, self._resolve, self._reader))]

    def shutdown(self) -> None:
        self._queue.clear()
