"""User callbacks: ``on_success_callback``, ``on_failure_callback``, ``on_retry_callback``,
``on_skipped_callback`` (task and DAG level), and deadline callbacks.

A callback is user code that reacts to an outcome; it never changes it. One that raises
is logged with its traceback, and nothing else happens. Task callbacks run in the worker
right after the attempt; DAG callbacks, and task callbacks for attempts that ended
outside their worker (timed out, lost), run through a :class:`CallbackRunner`: in a child
process next to the scheduler, so a callback that hangs or crashes cannot hurt it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from millstream.sdk.accessors import ConnectionAccessor, VariableAccessor

log = logging.getLogger(__name__)

#: Seconds a callback child process may take.
CALLBACK_TIMEOUT = 120.0


def as_list(callbacks: Any) -> list[Callable[..., Any]]:
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    return list(callbacks)


def call_all(callbacks: Any, context: dict[str, Any], what: str, out: TextIO) -> None:
    """Call each callback with the context; report (never raise) what goes wrong."""
    for cb in as_list(callbacks):
        name = getattr(cb, "__name__", repr(cb))
        try:
            cb(context)
            print(f"[{datetime.now(UTC).isoformat()}] {what} {name} done", file=out)
        except Exception:  # noqa: BLE001 - a failing callback is reported, never propagated
            print(f"[{datetime.now(UTC).isoformat()}] {what} {name} raised; the outcome stands:", file=out)
            traceback.print_exc(file=out)


@dataclass(frozen=True)
class CallbackRequest:
    """What a callback child process needs: which callback of which DAG (or task), why."""

    fileloc: str
    dag_id: str
    kind: str  # on_success_callback | on_failure_callback | on_retry_callback | deadline
    run_id: str
    log_path: str
    task_id: str | None = None
    map_index: int = -1
    reason: str = ""
    logical_date: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    try_number: int | None = None


def _context_for(req: CallbackRequest, dag: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "dag": dag,
        "dag_id": req.dag_id,
        "run_id": req.run_id,
        "reason": req.reason,
        "logical_date": datetime.fromisoformat(req.logical_date) if req.logical_date else None,
        "map_index": req.map_index,
        **req.extra,
    }
    if req.task_id:
        ctx["task"] = dag.get_task(req.task_id)
        ctx["task_id"] = req.task_id
        if "ti" not in ctx:  # the worker's context has a live one; here, what templates ask of it
            ctx["ti"] = ctx["task_instance"] = SimpleNamespace(
                dag_id=req.dag_id,
                run_id=req.run_id,
                task_id=req.task_id,
                map_index=req.map_index,
                try_number=req.try_number,
                state=_STATE_OF.get(req.kind),
                logical_date=ctx["logical_date"],
            )
    ctx.setdefault("exception", req.reason or None)
    ctx.setdefault("var", VariableAccessor())
    ctx.setdefault("conn", ConnectionAccessor())
    return ctx


_STATE_OF = {
    "on_failure_callback": "failed",
    "on_retry_callback": "up_for_retry",
    "on_success_callback": "success",
    "on_skipped_callback": "skipped",
}


def run_request(req: CallbackRequest, resolve: Callable[[str, str], Any]) -> None:
    """Run one request in this process (the child, or inline for ``dags test``)."""
    Path(req.log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(req.log_path, "a", encoding="utf-8") as out:
        try:
            dag = resolve(req.fileloc, req.dag_id)
            ctx = _context_for(req, dag)
            if req.kind == "deadline":
                target = dag.get_task(req.task_id) if req.task_id else dag
                callbacks = getattr(target, "deadline_callback", None)
            elif req.task_id:
                callbacks = dag.get_task(req.task_id).config.get(req.kind)
            else:
                callbacks = getattr(dag, req.kind, None)
        except Exception:  # noqa: BLE001
            print(f"[{datetime.now(UTC).isoformat()}] could not load {req.kind} of {req.dag_id}:", file=out)
            traceback.print_exc(file=out)
            return
        call_all(callbacks, ctx, req.kind, out)
        if req.task_id and req.kind != "deadline":
            from millstream.worker import mail

            mail.send_task_alert(
                dag.get_task(req.task_id).config,
                req.kind,
                dag_id=req.dag_id,
                run_id=req.run_id,
                task_id=req.task_id,
                map_index=req.map_index,
                try_number=req.try_number,
                error=req.reason,
                log=out,
            )


class CallbackRunner:
    """Runs callback requests one after another in child processes, off the loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[CallbackRequest] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, req: CallbackRequest) -> None:
        with self._lock:
            self._pending.append(req)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="millstream-callbacks", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                req = self._pending.pop(0)
            try:
                subprocess.run(
                    [sys.executable, "-m", "millstream.worker.callbacks"],
                    input=json.dumps(asdict(req)),
                    text=True,
                    timeout=CALLBACK_TIMEOUT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=os.environ.copy(),
                )
            except subprocess.TimeoutExpired:
                with open(req.log_path, "a", encoding="utf-8") as out:
                    print(f"{req.kind} did not finish within {CALLBACK_TIMEOUT:g}s and was stopped", file=out)

    def pending(self) -> int:
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            return len(self._pending) + int(busy)


class InlineCallbackRunner:
    """For ``dags test``: callbacks run at once, in this process, on the DAG object."""

    def __init__(self, resolve: Callable[[str, str], Any]) -> None:
        self._resolve = resolve

    def submit(self, req: CallbackRequest) -> None:
        run_request(req, self._resolve)


def _main() -> None:
    import millstream.store  # noqa: F401 - the store is the last secrets backend (notifiers' connections)
    from millstream.worker.dagcache import DagCache

    req = CallbackRequest(**json.loads(sys.stdin.read()))
    run_request(req, DagCache().resolve)


if __name__ == "__main__":
    _main()
