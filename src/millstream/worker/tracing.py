"""OpenTelemetry traces, opt-in (``[traces] otel_on``): which spans, with which ids.

One trace per execution of a run (a user's clear starts a new one)::

    dag_run.<dag_id>                  the run, from its start to its end
      task_instance.<task_id>[i]      an instance, from its first dispatch to its end
        task_run.<task_id>[i]         one attempt, as its worker ran it
          (the task's own spans)      made by the task's code, in the worker

The scheduler writes the first three when they end, with the start time it recorded, as
Airflow 3 writes its ``dag_run`` and ``task_run`` spans. A run outlives any one scheduler
process, so the ids of the run and instance spans are not stored but derived from the run
(its key and start time, and the run-level attempt): whichever scheduler finishes the run,
after restarts and takeovers, names the same parent. An attempt's span id is random, made
at dispatch: it travels to the worker in :attr:`WorkItem.traceparent` (W3C), comes back in
its report, and is what the scheduler writes the attempt's span under. In the worker the
traceparent is the current context while the task runs, so ``tracer.start_as_current_span``
in a task nests under its attempt; ``context["ti"].context_carrier`` holds it too (Airflow's
name).

Each process sends its own spans: the scheduler the run, instance and attempt spans, a
worker (local or Celery) the task's. A worker turns tracing on from its own settings when
the first traced attempt reaches it.

Off, nothing here imports opentelemetry: the check is one global per dispatched attempt.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from millstream.settings import Settings
    from millstream.worker.item import WorkItem

log = logging.getLogger("millstream.tracing")

P = ParamSpec("P")
R = TypeVar("R")

_on = False  # spans are being sent from this process
_worker_checked = False  # a worker process read its settings already


def enabled() -> bool:
    return _on


def endpoint_of(settings: Settings) -> str | None:
    """Where spans go: None leaves it to the standard OTEL_EXPORTER_OTLP_* variables (the
    exporter reads them itself); otherwise ``[traces] otel_host``, as Airflow's older names."""
    import os

    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    if not settings.otel_host:
        return None
    scheme = "https" if settings.otel_ssl_active else "http"
    return f"{scheme}://{settings.otel_host}:{settings.otel_port}/v1/traces"


def configure(settings: Settings, *, exporter: Any = None, export_process: bool = False) -> bool:
    """Turn tracing on in this process if the settings say so (``exporter``: an SDK
    SpanExporter to use instead of OTLP, e.g. the in-memory one of tests). A scheduler
    passes ``export_process``: its spans are encoded and sent by a process of their own
    (:mod:`millstream.worker.span_export`). Returns whether tracing is on."""
    global _on
    if not settings.otel_on and exporter is None:
        return False
    try:
        from millstream.worker import otel
    except ImportError as e:
        from millstream.settings import ConfigError

        raise ConfigError(
            f"traces.otel_on is set but OpenTelemetry is not installed ({e}); "
            "pip install 'millstream[otel]', or set traces.otel_on = false"
        ) from None
    otel.install(settings.otel_service, endpoint_of(settings), exporter)
    if export_process and exporter is None:
        from millstream.worker.span_export import Forwarder

        otel.forward_to(Forwarder(settings.otel_service, endpoint_of(settings)))
    _on = True
    return True


def disable() -> None:
    """Stop sending spans from this process (flushing what is queued)."""
    global _on
    if _on:
        from millstream.worker import otel

        otel.uninstall()
    _on = False


def flush() -> None:
    """Send queued spans now: before a worker process exits."""
    if _on:
        from millstream.worker import otel

        otel.flush()


# -- ids ------------------------------------------------------------------------------------


def _digest(*parts: object, size: int) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size)
    return int.from_bytes(h.digest(), "big") or 1  # 0 is OpenTelemetry's "invalid"


def run_trace_id(run_pk: int, dag_id: str, run_id: str, start_date: datetime | None) -> int:
    """The trace of one execution of a run: a clear restarts the run with a new start date."""
    started = int(start_date.timestamp() * 1_000_000) if start_date is not None else ""
    return _digest(run_pk, dag_id, run_id, started, size=16)


def run_span_id(trace_id: int) -> int:
    return _digest(trace_id, "run", size=8)


def ti_span_id(trace_id: int, run_attempt: int, task_id: str, map_index: int) -> int:
    """An instance's span: one per run-level attempt, since a run retry runs it again."""
    return _digest(trace_id, run_attempt, task_id, map_index, size=8)


def new_traceparent(trace_id: int) -> str:
    """A fresh attempt span under ``trace_id`` (W3C ``traceparent``, sampled)."""
    return f"00-{trace_id:032x}-{secrets.randbits(64) or 1:016x}-01"


def parse_traceparent(traceparent: str) -> tuple[int, int]:
    """(trace id, span id) of a traceparent this module made."""
    _, trace_hex, span_hex, _ = traceparent.split("-")
    return int(trace_hex, 16), int(span_hex, 16)


def carrier(item: WorkItem) -> dict[str, str] | None:
    """``ti.context_carrier``: the attempt's trace context, as Airflow's task instances carry it."""
    return {"traceparent": item.traceparent} if item.traceparent else None


def emit(
    name: str,
    ids: tuple[int, int, int | None],
    start: datetime,
    end: datetime,
    attributes: Mapping[str, Any],
    error: str | None = None,
) -> None:
    """Write a finished span ``ids`` = (trace, span, parent span or None); a failure to
    build it is logged, never raised into the scheduler's turn."""
    if not _on:
        return
    from millstream.worker import otel

    try:
        otel.emit(name, *ids, start, end, attributes, error)
    except Exception:
        log.warning("could not write span %s", name, exc_info=True)


# -- the worker side ----------------------------------------------------------------------------


def _worker_setup() -> None:
    """A worker process that gets its first traced attempt turns tracing on from its own
    settings (a Celery worker's host may send spans to a collector of its own)."""
    global _worker_checked
    _worker_checked = True
    if _on:
        return  # the scheduler's own process (dags test), or set up already
    from millstream.settings import ConfigError, Settings

    try:
        configure(Settings.load())
    except ConfigError as e:
        log.warning("traces stay off in this worker: %s", e)


def attempt_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``run_attempt``: while it runs, the attempt's traceparent is the current span
    context, so the task's own spans are children of its attempt."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        traceparent = getattr(args[0], "traceparent", None) if args else None
        if traceparent is None:
            return fn(*args, **kwargs)
        if not _worker_checked:
            _worker_setup()
        try:
            from millstream.worker import otel
        except ImportError:  # tracing on in the scheduler, not installed here: the task still runs
            return fn(*args, **kwargs)
        token = otel.attach(traceparent)
        try:
            return fn(*args, **kwargs)
        finally:
            otel.detach(token)

    return run
