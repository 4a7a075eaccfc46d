"""Echo a task's log lines somewhere else as they are written: ``dags test`` shows each
task's output live, prefixed with the instance it came from, while the log file still
gets every byte.

The echo target is a context variable set by whoever runs the attempt in its own
process (the inline executor), so worker processes and Celery workers, which never set
it, pay one lookup per attempt and nothing per line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

#: (instance label, one line without its newline) -> None
Echo = Callable[[str, str], None]

_echo: ContextVar[Echo | None] = ContextVar("millstream_log_echo", default=None)


@contextlib.contextmanager
def echoing(echo: Echo | None) -> Iterator[None]:
    token = _echo.set(echo)
    try:
        yield
    finally:
        _echo.reset(token)


def current() -> Echo | None:
    return _echo.get()


class EchoWriter:
    """Writes through to ``stream`` and hands each complete line to ``echo``; a partial
    last line is handed over when the attempt's log is closed (:meth:`flush_echo`)."""

    def __init__(self, stream: Any, echo: Echo, label: str) -> None:
        self._stream = stream
        self._echo = echo
        self._label = label
        self._pending = ""

    def write(self, text: str) -> int:
        self._stream.write(text)
        if "\n" not in text:
            self._pending += text
            return len(text)
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._echo(self._label, line)
        return len(text)

    def flush_echo(self) -> None:
        if self._pending:
            self._echo(self._label, self._pending)
            self._pending = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
