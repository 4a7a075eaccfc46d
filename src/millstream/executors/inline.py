"""Runs each attempt in the scheduler's own process, one at a time (``dags test``)."""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from millstream.worker import log_echo
from millstream.worker.item import AttemptResult, Event, Finished, Started, WorkItem
from millstream.worker.results import ResultReader
from millstream.worker.runner import HOSTNAME, DagResolver, run_attempt


class InlineExecutor:
    """Runs queued attempts one after another when the scheduler asks for events.

    Up to ``slots`` attempts are queued per turn and all run in one ``events`` call, so
    the scheduler records them in one transaction instead of one per task.

    ``mark_success``: tasks whose id fully matches succeed without running (``dags test
    --mark-success-pattern``); ``echo`` hears every log line of the attempts it runs.
    """

    slots = 64

    def __init__(
        self,
        resolve_dag: DagResolver,
        reader: ResultReader,
        *,
        mark_success: re.Pattern[str] | None = None,
        echo: log_echo.Echo | None = None,
    ) -> None:
        self._resolve = resolve_dag
        self._reader = reader
        self._mark_success = mark_success
        self._echo = echo
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
            if self._mark_success is not None and self._mark_success.fullmatch(item.task_id):
                out.append(Finished(self._marked(item)))
                continue
            with log_echo.echoing(self._echo):
                out.append(Finished(run_attempt(item, self._resolve, self._reader, alarm=True)))
        return out

    def _marked(self, item: WorkItem) -> AttemptResult:
        now = datetime.now(UTC)
        line = f"[{now.isoformat()}] marked success without running (it matches --mark-success-pattern)"
        Path(item.log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(item.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self._echo is not None:
            self._echo(item.instance, line)
        return AttemptResult(item=item, state="success", started_at=now, ended_at=now, pid=os.getpid())

    def cancel(self, key: tuple[int, str, int], reason: str = "its run was stopped") -> None:
        self._queue = deque(i for i in self._queue if i.key != key)

    def wake(self) -> None:
        self._woken.set()

    def shutdown(self) -> None:
        self._queue.clear()
