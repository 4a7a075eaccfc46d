"""The login throttle on its own, with a clock the test moves."""

import pytest
from fastapi import HTTPException

from millstream.api.throttle import LoginThrottle


def test_a_username_waits_after_too_many_failures_and_is_free_after_the_window():
    now = [1000.0]
    t = LoginThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        t.check("Alice")
        t.failed("alice")
    with pytest.raises(HTTPException) as e:
        t.check("ALICE")  # names are counted without case
    assert e.value.status_code == 429 and e.value.headers["Retry-After"] == "61"
    t.check("bob")
    now[0] += 61
    t.check("alice")


def test_a_success_forgets_the_failures():
    t = LoginThrottle(limit=2, window=60, clock=lambda: 0.0)
    t.failed("carol")
    t.succeeded("carol")
    t.failed("carol")
    t.check("carol")
