"""How long a failed attempt waits before the next one.

Pure: the jitter comes from a hash of the task instance and try number, so the same
failure always gets the same delay (reproducible in tests and across scheduler restarts)
while different instances of a mapped task still spread out instead of retrying in a
thundering herd.
"""

from __future__ import annotations

import hashlib

#: Exponential backoff never waits longer than this unless ``max_retry_delay`` says so.
DEFAULT_MAX_RETRY_DELAY = 24 * 3600.0


def _unit_jitter(key: str, try_number: int) -> float:
    digest = hashlib.sha1(f"{key}#{try_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def retry_delay(
    *,
    base: float,
    try_number: int,
    backoff: float = 0.0,
    max_delay: float | None = None,
    key: str = "",
) -> float:
    """Seconds to wait after attempt ``try_number`` (1-based) failed.

    ``backoff`` 0 keeps the delay constant; otherwise the delay is multiplied by
    ``backoff`` per try (2.0 doubles it, as ``retry_exponential_backoff=True`` does),
    with jitter in [50 %, 100 %] of the computed delay, and capped by ``max_delay``.
    """
    if base <= 0:
        return 0.0
    if not backoff:
        return base
    cap = max_delay if max_delay is not None else DEFAULT_MAX_RETRY_DELAY
    exp = min(try_number - 1, 64)  # beyond 2**64 the cap has long been reached
    raw = min(base * backoff**exp, cap)
    jittered = raw * (0.5 + 0.5 * _unit_jitter(key, try_number))
    return max(min(jittered, cap), min(base, cap))
