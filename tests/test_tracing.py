"""Tracing (TRACING_ENABLED, `tracing` extra): a span per request that continues the caller's
W3C traceparent, a span per database statement beneath it, and the trace id in the request's
log lines next to its request id."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.api.middleware import JsonLogFormatter
from booking.settings import Settings
from tests.builders import World
from tests.conftest import TODAY, FakeClock

pytest.importorskip("opentelemetry.instrumentation.fastapi", reason="the tracing extra")
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DAY = TODAY + timedelta(days=1)
APPOINTMENTS = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments"


@pytest.fixture
async def traced(
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        settings.model_copy(update={"tracing_enabled": True}),
        database_url,
        clock=clock,
        tracer_provider=provider,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, exporter
    finally:
        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]


def trace_id_of(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


async def test_a_request_span_continues_the_traceparent_and_statements_nest_beneath(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], world: World, auth: dict[str, str]
) -> None:
    client, exporter = traced
    exporter.clear()
    response = await client.post(
        world.appointments_path(DAY),
        json=world.body(480, contactPhoneNumber="+1 212 555 0100"),
        headers={**auth, "traceparent": TRACEPARENT},
    )
    assert response.status_code == 201

    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert trace_id_of(server) == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.attributes is not None
    assert server.attributes.get("http.route") == APPOINTMENTS
    statements = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(statements) >= 3  # BEGIN with the lock, the booked intervals, the insert, ...
    assert {trace_id_of(s) for s in statements} == {TRACE_ID}
    texts = " ".join(str((s.attributes or {}).get("db.statement", "")) for s in statements)
    assert "INSERT INTO appointment" in texts
    # The phone as sent or normalized: digits enough that no random id in a statement holds them.
    attributes = json.dumps([dict(s.attributes or {}) for s in spans], default=str)
    for digits in ("555 0100", "5550100"):
        assert digits not in attributes


async def test_log_lines_of_a_traced_request_carry_its_trace_id_next_to_the_request_id(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
    world: World,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = traced
    caplog.set_level(logging.INFO, logger="booking.access")
    await client.get(
        world.calendar_path(DAY) + f"/vacancies?serviceTypeId={world.service_type_id}",
        headers={**auth, "traceparent": TRACEPARENT, "X-Request-ID": "joined-42"},
    )
    (record,) = [r for r in caplog.records if r.name == "booking.access"]
    line = json.loads(JsonLogFormatter().format(record))
    assert line["request_id"] == "joined-42"
    assert line["trace_id"] == TRACE_ID


async def test_probes_are_not_traced(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    exporter.clear()
    assert (await client.get("/healthz")).status_code == 200
    assert exporter.get_finished_spans() == ()
