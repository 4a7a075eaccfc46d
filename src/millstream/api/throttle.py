"""Slows password guessing: after too many wrong passwords for one username within a
window, that username is refused (429) until the window has passed.

Each try is counted before its password is checked, so parallel guesses cannot slip
through between the check and the count; a right password takes its own try back and
forgets the failures. Per process and in memory: several API servers each count on their
own, and a restart forgets. That bounds guessing at (servers x limit) per window, which
Argon2's cost per try makes slow already; a shared counter would need a table written on
every try.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException

#: Usernames tracked at once. Beyond it, names whose window has passed are forgotten; a name
#: still locked out never is, so flooding with other names cannot lift a lockout.
TRACKED = 10_000


class LoginThrottle:
    def __init__(
        self, limit: int = 10, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._tries: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._tries.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def attempt(self, username: str) -> None:
        """Count a try for ``username``, or raise 429 when its tries for the window are used up."""
        key = username.lower()
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            if len(q) >= self.limit:
                wait = int(self.window - (now - q[0])) + 1
                raise HTTPException(
                    429,
                    f"too many wrong passwords for {username!r}; try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            q.append(now)
            if len(self._tries) > TRACKED:
                self._forget_expired(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._tries.pop(username.lower(), None)

    def _forget_expired(self, now: float) -> None:
        for key in list(self._tries):
            if not self._recent(key, now):
                del self._tries[key]
