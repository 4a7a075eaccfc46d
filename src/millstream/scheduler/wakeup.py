"""Waking a scheduler in another process at once when a run is triggered.

The scheduler binds a UNIX datagram socket in ``$MILLSTREAM_HOME``; ``notify`` sends
it one byte. Without it, a trigger from the CLI would wait for the next poll (up to
``poll_interval``). Best effort: with no scheduler listening, nothing happens, and the
poll still finds the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_NAME = "scheduler.sock"


def notify(home: str | os.PathLike[str]) -> bool:
    path = Path(home) / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"!", str(path))
            return True
        except OSError:
            return False


class WakeupListener:
    """A daemon thread that calls ``on_wake`` for every datagram received."""

    def __init__(self, home: str | os.PathLike[str], on_wake: Callable[[], None]) -> None:
        self.path = Path(home) / SOCKET_NAME
        self.on_wake = on_wake
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(self.path))
        except OSError as e:  # a path too long for a UNIX socket, a read-only home...
            log.warning(
                "cannot listen for wake-ups at %s (%s); triggers wait for the next poll", self.path, e
            )
            sock.close()
            return
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="millstream-wakeup", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                sock.recv(16)
            except OSError:
                return  # closed by stop()
            self.on_wake()

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._sock = None
