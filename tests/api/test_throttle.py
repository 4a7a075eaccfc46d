"""The login throttle on its own, with a clock the test moves."""

import threading

import pytest
from fastapi import HTTPException

from millstream.api import throttle as throttle_mod
from millstream.api.throttle import LoginThrottle


def test_a_username_waits_after_too_many_tries_and_is_free_after_the_window():
    now = [1000.0]
    t = LoginThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        t.attempt("Alice")
    with pytest.raises(HTTPException) as e:
        t.attempt("ALICE")  # names are counted without case
    assert e.value.status_code == 429 and e.value.headers["Retry-After"] == "61"
    t.attempt("bob")
    now[0] += 61
    t.attempt("alice")


def test_a_success_forgets_the_tries():
    t = LoginThrottle(limit=2, window=60, clock=lambda: 0.0)
    t.attempt("carol")
    t.succeeded("carol")
    t.attempt("carol")
    t.attempt("carol")


def test_parallel_tries_cannot_slip_past_the_limit():
    t = LoginThrottle(limit=10, window=60)
    refused = []
    start = threading.Barrier(40)

    def guess():
        start.wait()
        try:
            t.attempt("root")
        except HTTPException:
            refused.append(1)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(refused) == 30


def test_flooding_other_names_does_not_lift_a_lockout(monkeypatch):
    monkeypatch.setattr(throttle_mod, "TRACKED", 50)
    t = LoginThrottle(limit=2, window=60, clock=lambda: 0.0)
    t.attempt("root")
    t.attempt("root")
    for i in range(200):
        t.attempt(f"junk{i}")
    with pytest.raises(HTTPException):
        t.attempt("root")
