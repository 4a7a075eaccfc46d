"""The OpenTelemetry SDK side of :mod:`millstream.worker.tracing`: imported only once tracing
is on, so a process with ``[traces] otel_on = false`` never loads opentelemetry.

One tracer provider per process, made on the first :func:`install`. It is also the global
provider (``opentelemetry.trace.get_tracer``, what a task's own code calls) unless the
process already had one of its own. Spans reach the exporter through a relay, so that a
later :func:`install` (a test with an in-memory exporter) swaps where they go without a
second global provider, which OpenTelemetry refuses.

The spans the scheduler writes after the fact (a run, an instance, an attempt) have ids it
chose and times it recorded: :func:`emit` builds each as the finished span it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags


class _Resource(Resource):
    """A resource that hashes once: the OTLP encoder groups every span by its resource, and
    Resource hashes by dumping its attributes to JSON each time (10 µs a span)."""

    @cached_property
    def _hash(self) -> int:
        return super().__hash__()

    def __hash__(self) -> int:
        return self._hash


class _Relay(SpanProcessor):
    """Passes spans on to the processor of the latest :func:`install`."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        if self.target is not None:
            self.target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.target is not None:
            self.target.on_end(span)

    def shutdown(self) -> None:
        if self.target is not None:
            self.target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.target.force_flush(timeout_millis) if self.target is not None else True


_provider: TracerProvider | None = None
_resource: Resource | None = None
_relay = _Relay()
_forwarder: Any = None  # a span_export.Forwarder, in a scheduler


def install(service: str, endpoint: str | None, exporter: SpanExporter | None = None) -> None:
    """Send spans to ``exporter`` (each as it ends), else over OTLP/HTTP to ``endpoint``
    (None: the standard OTEL_EXPORTER_OTLP_* variables, else localhost:4318) in batches."""
    global _provider, _resource
    if _provider is None:
        named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        made = Resource.create({} if named else {"service.name": service})
        _resource = _Resource(made.attributes, made.schema_url)
        _provider = TracerProvider(resource=_resource)
        _provider.add_span_processor(_relay)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(_provider)
    old = _relay.target
    if exporter is not None:
        _relay.target = SimpleSpanProcessor(exporter)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # A scheduler turn may finish a thousand attempts (two spans each) at once: more
        # room than the SDK's 2048 before it drops spans, unless the user chose a size.
        queue = None if os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") else 16384
        _relay.target = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), max_queue_size=queue)
    if old is not None:
        old.shutdown()
    forward_to(None)


def forward_to(forwarder: Any) -> None:
    """Hand the spans :func:`emit` writes to ``forwarder`` (a span_export.Forwarder: a
    scheduler's exporter process) instead of this process's exporter."""
    global _forwarder
    if _forwarder is not None:
        _forwarder.close()
    _forwarder = forwarder


def uninstall() -> None:
    """Stop sending spans (what was sent so far is flushed)."""
    old, _relay.target = _relay.target, None
    if old is not None:
        old.shutdown()
    forward_to(None)


def flush(timeout_millis: int = 5000) -> None:
    if _forwarder is not None:
        _forwarder.send()
    _relay.force_flush(timeout_millis)


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.OK)
_SCOPE = InstrumentationScope("millstream")


def _ERROR(description: str) -> Status:  # noqa: N802 - reads like the constant beside it
    return Status(StatusCode.ERROR, description)


def emit(
    name: str,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    start: datetime,
    end: datetime,
    attributes: Mapping[str, Any],
    error: str | None,
) -> None:
    """Write one finished span with the given ids (a root span without a parent)."""
    begin = _ns(start)
    span = (name, trace_id, span_id, parent_span_id, begin, max(_ns(end), begin), attributes, error)
    if _forwarder is not None:
        _forwarder.add(span)
    else:
        write(*span)


def write(
    name: str,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    error: str | None,
) -> None:
    """Hand a finished span to this process's exporter.

    Built as the finished span it is: a span that is over needs no sampling, live
    attributes or end hooks, and skipping them saves most of the 60 µs a span costs
    through ``start_span``."""
    assert _resource is not None
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)
    parent = (
        SpanContext(trace_id, parent_span_id, is_remote=False, trace_flags=_SAMPLED)
        if parent_span_id
        else None
    )
    _relay.on_end(
        ReadableSpan(
            name,
            ctx,
            parent,
            _resource,
            attributes,
            status=_ERROR(error) if error is not None else _OK,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=_SCOPE,
        )
    )


def attach(traceparent: str) -> object:
    """Make ``traceparent`` (one this package made: version 00, sampled) the current span
    context, so spans started in this thread are its children; returns the token for
    :func:`detach`. Parsed by hand rather than by the W3C propagator: this runs for every
    attempt, and the format is ours."""
    _, trace_hex, span_hex, _ = traceparent.split("-")
    sc = SpanContext(int(trace_hex, 16), int(span_hex, 16), is_remote=True, trace_flags=_SAMPLED)
    return context.attach(trace.set_span_in_context(NonRecordingSpan(sc)))


def detach(token: object) -> None:
    context.detach(token)  # type: ignore[arg-type]
