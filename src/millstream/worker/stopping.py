"""Stopping a running attempt so that its operator can clean up: Airflow's ``on_kill``.

An attempt is stopped when it overruns ``execution_timeout``, when a user marks it or
its run, when its run is stopped or adopted, and when its worker shuts down. The
worker pool asks a worker process to stop with :data:`STOP_SIGNAL`; the process calls
the running operator's ``on_kill`` and exits, and the pool kills it outright if it has
not exited after a grace period. Where the attempt runs in the caller's own process
(``dags test``), ``execution_timeout`` raises :class:`AttemptTimeout` inside the task
instead, and ``on_kill`` is called as the attempt fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import Any

STOP_SIGNAL = signal.SIGUSR1
#: The exit code of a worker process that stopped its attempt on request.
STOPPED_EXIT = 75
#: Seconds a stopped worker has for ``on_kill`` before it is killed (SIGKILL).
KILL_GRACE = 5.0

_running: list[Any] = []  # the operator of the attempt this process is running now


class AttemptTimeout(Exception):  # noqa: N818 - Airflow's AirflowTaskTimeout, by meaning
    """The attempt overran its ``execution_timeout``."""


def is_stop(e: BaseException) -> bool:
    """Was the attempt stopped from outside (its timeout here, or Celery's soft limit)?"""
    return isinstance(e, AttemptTimeout) or type(e).__name__ == "SoftTimeLimitExceeded"


@contextlib.contextmanager
def running(op: Any) -> Iterator[None]:
    """While ``op`` executes, a stop request or a timeout calls its ``on_kill``."""
    _running.append(op)
    try:
        yield
    except BaseException as e:
        if is_stop(e):
            call_on_kill(str(e) or type(e).__name__)
        raise
    finally:
        _running.remove(op)


def call_on_kill(reason: str) -> None:
    """Call ``on_kill`` of the running operator, if any; its errors are logged, not raised."""
    op = _running[-1] if _running else None
    if op is None:
        return
    print(f"[{datetime.now(UTC).isoformat()}] stopping: {reason}; calling on_kill()", flush=True)
    try:
        op.on_kill()
    except Exception:  # noqa: BLE001 - the attempt is being stopped whatever on_kill does
        traceback.print_exc()


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    # An on_kill that hangs must not keep the attempt alive: the process exits regardless.
    threading.Timer(KILL_GRACE, os._exit, args=(STOPPED_EXIT,)).start()
    call_on_kill("this attempt was stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STOPPED_EXIT)


@contextlib.contextmanager
def stop_on(signum: int) -> Iterator[None]:
    """While an attempt runs in this process (a Celery worker's child), ``signum`` stops it:
    on_kill, then the process exits. Outside the main thread signals cannot be caught."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, _on_stop_signal)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def install_stop_handler() -> None:
    """In a pool's worker process: a stop request runs ``on_kill``, then the process exits."""
    signal.signal(STOP_SIGNAL, _on_stop_signal)


def timeout_alarm(seconds: float | None) -> contextlib.AbstractContextManager[None]:
    """Raise :class:`AttemptTimeout` in this thread after ``seconds`` (main thread only:
    elsewhere, as under a Celery worker, the executor enforces the limit)."""
    return alarm(seconds, lambda: AttemptTimeout(f"timed out: execution_timeout of {seconds:g}s exceeded"))


@contextlib.contextmanager
def alarm(seconds: float | None, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``error()`` in this thread after ``seconds`` (SIGALRM: the main thread only;
    elsewhere nothing is enforced, and the caller's executor must do it)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
