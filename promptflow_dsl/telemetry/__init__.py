"""OpenTelemetry export of runs (``--otel``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` set).

:func:`span_exporter` gives the run observer that exports every run's spans over
OTLP/HTTP (protobuf) with one process-wide tracer provider, made on first use.  This
package is imported only when export is on: a run without it never imports
OpenTelemetry.  See README.md for the spans and their attributes.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from .spans import RunSpans, SpanExporter

__all__ = ["INSTALL", "RunSpans", "SpanExporter", "TelemetryUnavailable", "flush",
           "span_exporter", "tracer_provider"]

INSTALL = 'pip install "promptflow-dsl[otel]"'

_lock = threading.Lock()
_provider: Any = None


class TelemetryUnavailable(Exception):
    """Export was asked for and the ``otel`` extra is not installed."""


def tracer_provider() -> Any:
    """The process's pflow tracer provider: a batch span processor sending OTLP over
    HTTP to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` +
    ``/v1/traces`` (default ``http://localhost:4318/v1/traces``), with resource
    ``service.name`` = ``OTEL_SERVICE_NAME`` or ``pflow`` (and what
    ``OTEL_RESOURCE_ATTRIBUTES`` adds).  It is shut down, and its spans sent, when the
    process exits.

    Raises :class:`TelemetryUnavailable` when opentelemetry-sdk or the OTLP/HTTP
    exporter is not installed.
    """
    global _provider
    with _lock:
        if _provider is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
                from opentelemetry.sdk.resources import Resource
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import BatchSpanProcessor
            except ImportError as exc:
                raise TelemetryUnavailable(
                    f"exporting OpenTelemetry spans needs the otel extra ({exc.name} is not "
                    f"installed): {INSTALL}") from None
            name = os.environ.get("OTEL_SERVICE_NAME") or "pflow"
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _provider = provider
            # sent at exit before the provider's own shutdown, which would first wait
            # for the batch's next scheduled export
            atexit.register(flush)
        return _provider


def span_exporter() -> SpanExporter:
    """The observer exporting runs through :func:`tracer_provider`.  Raises
    :class:`TelemetryUnavailable` without the ``otel`` extra."""
    return SpanExporter(tracer_provider())


def flush(timeout_ms: int = 10_000) -> bool:
    """Send the spans waiting in the batch now; False if that did not finish in time
    (nothing to send when export never started).  Never raises."""
    with _lock:
        provider = _provider
    if provider is None:
        return True
    try:
        return bool(provider.force_flush(timeout_ms))
    except Exception:
        return False
