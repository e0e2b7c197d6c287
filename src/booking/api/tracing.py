"""OpenTelemetry tracing, on with TRACING_ENABLED and the `tracing` extra installed
(`pip install 'booking-api[tracing]'`): the maintained instrumentations make a span per request
(FastAPI, continuing the caller's W3C `traceparent`) and one per database statement (asyncpg,
both pools; statement text only, never the bound values).

Spans go to the tracer provider already set in the process (a test's, or one set up by
`opentelemetry-instrument`), else to an OTLP/HTTP exporter configured by the standard
OTEL_EXPORTER_OTLP_* variables (OTEL_SERVICE_NAME defaults to `booking-api`). Every log line
written while a span is current carries its `trace_id` and `span_id`, next to the request id.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

if TYPE_CHECKING:  # opentelemetry is there only with the `tracing` extra (or a recent FastAPI)
    from opentelemetry.trace import TracerProvider

# Probes and scrapes would drown the traces that matter.
UNTRACED_PATHS = "/healthz,/readyz,/metrics"

_log_records_carry_trace_ids = False


def instrument(app: FastAPI, tracer_provider: TracerProvider | None = None) -> None:
    """Trace `app`'s requests and every asyncpg statement of the process, to `tracer_provider`
    (tests pass theirs), else to the process's global one."""
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as error:
        raise RuntimeError(
            "TRACING_ENABLED=true needs the tracing extra: pip install 'booking-api[tracing]'"
        ) from error
    if tracer_provider is None:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # none set yet
            trace.set_tracer_provider(_otlp_tracer_provider())
        tracer_provider = trace.get_tracer_provider()
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider)
    _add_trace_ids_to_log_records()


def _otlp_tracer_provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "booking-api")})
    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _add_trace_ids_to_log_records() -> None:
    """Once per process: the JSON formatter writes every extra attribute of a record, so the
    ids set here appear in each line (the access line included: the request's span is still
    current when it is written)."""
    global _log_records_carry_trace_ids
    if _log_records_carry_trace_ids:
        return
    from opentelemetry import trace

    make_record = logging.getLogRecordFactory()

    def record_with_trace_ids(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return record

    logging.setLogRecordFactory(record_with_trace_ids)
    _log_records_carry_trace_ids = True
