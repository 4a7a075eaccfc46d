"""Slows password guessing: after too many wrong passwords for one username within a
window, that username is refused (429) until the window has passed.

Per process and in memory: several API servers each count on their own, and a restart
forgets. That bounds guessing at (servers x limit) per window, which Argon2's cost per
try makes slow already; a shared counter would need a table written on every failure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException


class LoginThrottle:
    def __init__(
        self, limit: int = 10, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, username: str, now: float) -> deque[float]:
        q = self._failures.setdefault(username.lower(), deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def check(self, username: str) -> None:
        """Raise 429 while ``username`` has used up its wrong passwords for the window."""
        with self._lock:
            now = self.clock()
            q = self._recent(username, now)
            if len(q) >= self.limit:
                wait = int(self.window - (now - q[0])) + 1
                raise HTTPException(
                    429,
                    f"too many wrong passwords for {username!r}; try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )

    def failed(self, username: str) -> None:
        with self._lock:
            self._recent(username, self.clock()).append(self.clock())
            if len(self._failures) > 10_000:  # forget the oldest names rather than grow for ever
                for name in list(self._failures)[:1000]:
                    del self._failures[name]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.lower(), None)
