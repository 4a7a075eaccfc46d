"""``FileArrivalWatcher`` as a trigger: files that arrive in a folder and stop changing.

A file is *settled* once two looks at least ``settle_seconds`` apart saw the same size
and modification time; the trigger then yields one event for it, and keeps watching. It
is started with the paths already reported (from the store), and the scheduler records
"reported" and the asset event in one transaction, so a restart never reports a file
twice (a half-settled file just settles again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from millstream.sdk.deferral import BaseTrigger, TriggerEvent

log = logging.getLogger("millstream.watchers")
_warned: set[str] = set()


def scan(path: str, pattern: str = "*", recursive: bool = False) -> dict[str, tuple[int, float]]:
    """Files in the folder matching the pattern: path -> (size, mtime)."""
    folder = Path(path)
    if not folder.is_dir():
        return {}
    found: dict[str, tuple[int, float]] = {}
    for p in folder.rglob(pattern) if recursive else folder.glob(pattern):
        try:
            str(p).encode()
        except UnicodeEncodeError:
            if str(p) not in _warned:
                _warned.add(str(p))
                log.warning("ignoring %r: its name is not valid UTF-8; rename the file", p)
            continue
        try:
            st = p.stat()
        except OSError:
            continue  # gone between listing and stat
        if p.is_file():
            found[str(p)] = (st.st_size, st.st_mtime)
    return found


class SettleTracker:
    """Which files have stopped changing for the settle time (pure: the caller scans and
    passes the time, so tests need no sleeping)."""

    def __init__(self, settle_seconds: float, reported: Iterable[str] = ()) -> None:
        self.settle = settle_seconds
        self.reported = set(reported)
        self._seen: dict[str, tuple[int, float, float]] = {}  # path -> size, mtime, stable since

    def observe(self, files: Mapping[str, tuple[int, float]], now: float) -> list[tuple[str, int, float]]:
        settled = []
        for path, (size, mtime) in sorted(files.items()):
            if path in self.reported:
                continue
            prev = self._seen.get(path)
            if prev is None or (prev[0], prev[1]) != (size, mtime):
                self._seen[path] = (size, mtime, now)
                if self.settle > 0:
                    continue
            if now - self._seen[path][2] >= self.settle:
                settled.append((path, size, mtime))
                self.reported.add(path)
                del self._seen[path]
        for path in [p for p in self._seen if p not in files]:
            del self._seen[path]  # deleted before it settled
        return settled


def scan_interval(settle_seconds: float) -> float:
    return min(1.0, max(0.1, settle_seconds / 4))


class FileArrivalTrigger(BaseTrigger):
    """Yields ``{"path", "size", "mtime"}`` for each file matching ``pattern`` in ``path``
    once it has settled, for as long as it runs (an asset watcher's trigger)."""

    def __init__(
        self,
        path: str,
        pattern: str = "*",
        settle_seconds: float = 5.0,
        recursive: bool = False,
        reported: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.path = path
        self.pattern = pattern
        self.settle_seconds = float(settle_seconds)
        self.recursive = recursive
        self.reported = sorted(reported)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.file_arrival.FileArrivalTrigger",
            {
                "path": self.path,
                "pattern": self.pattern,
                "settle_seconds": self.settle_seconds,
                "recursive": self.recursive,
                "reported": self.reported,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        tracker = SettleTracker(self.settle_seconds, self.reported)
        while True:
            files = await asyncio.to_thread(scan, self.path, self.pattern, self.recursive)
            for path, size, mtime in tracker.observe(files, time.monotonic()):
                yield TriggerEvent({"path": path, "size": size, "mtime": mtime})
            await asyncio.sleep(scan_interval(self.settle_seconds))
