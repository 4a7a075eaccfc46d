"""``[logging] json_logs``: one JSON object per line, for log collectors.

A line is ``{"timestamp", "level", "logger", "event"}`` (Airflow 3's keys for its JSON
logs), ``"exception"`` with the traceback when there is one, and on lines about a task
instance its ``dag_id``, ``run_id``, ``task_id``, ``map_index`` and ``try_number``. Those
come from the attempt running in the current context (a worker sets it around each attempt,
so whatever the task's code logs carries them), or from a log call's ``extra=ids(item)``.

:func:`setup` switches a process's root handlers over. It also leaves the switch in the
environment, so that the processes a scheduler spawns (local workers, DAG-file parsers)
write their task logs' records the same way. Print output in a task log stays as the task
printed it: only logging records become JSON there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from millstream.settings import Settings
    from millstream.worker.item import WorkItem

P = ParamSpec("P")
R = TypeVar("R")

ENV = "MILLSTREAM__LOGGING__JSON_LOGS"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TASK_TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
ID_KEYS = ("dag_id", "run_id", "task_id", "map_index", "try_number")

_json = False  # set by setup(); otherwise the environment decides (a spawned worker's)
_attempt: ContextVar[Mapping[str, Any] | None] = ContextVar("millstream_log_ids", default=None)


def json_logs() -> bool:
    return _json or os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def ids(item: WorkItem) -> dict[str, Any]:
    """The ids of an attempt, for ``log.warning(..., extra=ids(item))``."""
    return {
        "dag_id": item.dag_id,
        "run_id": item.run_id,
        "task_id": item.task_id,
        "map_index": item.map_index,
        "try_number": item.try_number,
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        attempt = _attempt.get()
        if attempt is not None:
            out.update(attempt)
        for key in ID_KEYS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter() -> logging.Formatter:
    """For a process's own log: JSON or the usual text."""
    return JsonFormatter() if json_logs() else logging.Formatter(TEXT_FORMAT)


def task_log_formatter() -> logging.Formatter:
    """For logging records written into a task's log file."""
    return JsonFormatter() if json_logs() else logging.Formatter(TASK_TEXT_FORMAT)


def setup(settings: Settings) -> None:
    """Apply ``[logging] json_logs`` (or ``format = json``) to this process (its root handlers) and its children."""
    global _json
    if not (settings.json_logs or settings.format == "json"):
        return
    _json = True
    os.environ[ENV] = "true"  # spawned workers and parsers read it from here
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    logging.captureWarnings(True)  # Python's warnings print text to stderr otherwise


def uvicorn_options() -> dict[str, Any]:
    """uvicorn.Config options: with JSON logs, uvicorn's loggers go through the root's handlers
    instead of the text handlers uvicorn installs."""
    return {"log_config": None} if json_logs() else {}


def attempt_ids(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``run_attempt``: with JSON logs, what is logged while it runs carries its ids."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not json_logs() or not args:
            return fn(*args, **kwargs)
        with attempt(args[0]):  # type: ignore[arg-type]
            return fn(*args, **kwargs)

    return run


@contextlib.contextmanager
def attempt(item: WorkItem) -> Iterator[None]:
    token = _attempt.set(ids(item))
    try:
        yield
    finally:
        _attempt.reset(token)
