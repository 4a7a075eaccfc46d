"""A scheduler's spans are encoded and sent by a process of their own.

The scheduler writes two spans per task instance (the instance and its attempt). Building
them is cheap; encoding them to OTLP protobuf in Python costs some 30 µs each, which in a
thread of the scheduler would take the GIL from its loop (about 10 % of a 10 000-instance
run). So the scheduler only queues each span as a tuple, and a thread pickles them in
batches down a pipe to this exporter process, which holds the OpenTelemetry SDK's batch
processor and OTLP exporter (configured, as everywhere, by the standard OTEL_* variables).

The exporter ends when the pipe closes: at the scheduler's exit (what is queued is sent
first), or when the scheduler dies (what it had not sent yet is lost with it).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("millstream.tracing")

#: Spans queued before the thread is woken to send them at once.
BATCH = 512
#: Seconds a span may wait in the scheduler before it is sent anyway.
LINGER = 1.0


class Forwarder:
    def __init__(self, service: str, endpoint: str | None) -> None:
        ctx = mp.get_context("spawn")
        recv, self._conn = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_export_main, args=(recv, service, endpoint), daemon=True, name="millstream-span-exporter"
        )
        self._proc.start()
        recv.close()
        self._spans: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()  # the loop adds, the thread takes
        self._sending = threading.Lock()  # pickling happens outside the first lock
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="millstream-span-forwarder", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # after multiprocessing's own handler: it would kill the exporter

    def add(self, span: tuple[Any, ...]) -> None:
        with self._lock:
            self._spans.append(span)
            full = len(self._spans) >= BATCH
        if full:
            self._wake.set()

    def send(self) -> None:
        with self._lock:
            batch, self._spans = self._spans, []
        if not batch:
            return
        with self._sending:  # the thread and close() both send; batches keep their order
            if self._closed:
                return
            try:
                self._conn.send(batch)
            except (OSError, ValueError):
                log.warning("the span exporter process is gone: %d spans dropped", len(batch))

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(LINGER)
            self._wake.clear()
            self.send()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, let the exporter flush it, and wait for it to end."""
        if self._closed:
            return
        self.send()
        with self._sending:
            self._closed = True
            self._conn.close()
        self._wake.set()
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()


def _export_main(conn: Connection, service: str, endpoint: str | None) -> None:
    # The scheduler handles Ctrl-C and SIGTERM; this process ends when its pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: on a busy machine the scheduler and the tasks go first (a share of a
    # core a quarter of theirs is still several times what 2 000 spans a second need).
    try:
        os.nice(5)
    except OSError:
        pass
    from millstream.worker import otel

    otel.install(service, endpoint)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            break
        for span in batch:
            otel.write(*span)
    otel.uninstall()  # flushes the batch processor
