"""`/metrics`: Prometheus text behind a bearer token; requests by route template, method and
status with latencies; the database gate's connections; booking outcomes; and, with several
worker processes, one sum over all of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from booking.api.app import create_app
from booking.api.metrics import MetricsMiddleware
from booking.settings import Settings
from tests.builders import World
from tests.conftest import TODAY, FakeClock
from tests.serving import serve

METRICS_TOKEN = "metrics-token-0123456789abcdef"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
DAY = TODAY + timedelta(days=1)
VACANCIES = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/vacancies"
APPOINTMENTS = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text page (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    return response.text


@pytest.fixture
def metered_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


@pytest.fixture
async def metered_app(
    metered_settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[FastAPI]:
    app = create_app(metered_settings, database_url, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def metered(metered_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metered_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_metrics_are_not_served_without_a_metrics_token_setting(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 404


def test_a_metrics_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token="guessable")


async def test_metrics_answer_only_the_metrics_token(metered: httpx.AsyncClient) -> None:
    missing = await metered.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["code"] == "token_missing"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await metered.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "token_invalid"

    page = await metered.get("/metrics", headers=SCRAPE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE booking_http_requests_total counter" in page.text


async def test_requests_are_counted_by_route_template_method_and_status(
    metered: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    before = await scrape(metered)
    vacancies = world.calendar_path(DAY) + f"/vacancies?serviceTypeId={world.service_type_id}"
    for _ in range(2):
        assert (await metered.get(vacancies, headers=auth)).status_code == 200
    assert (await metered.get(vacancies)).status_code == 401
    assert (await metered.get("/no/such/path")).status_code == 404
    after = await scrape(metered)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    ok = {"route": VACANCIES, "method": "GET"}
    assert delta("booking_http_requests_total", **ok, status="200") == 2
    assert delta("booking_http_requests_total", **ok, status="401") == 1
    assert delta("booking_http_requests_total", route="unmatched", status="404") == 1
    assert delta("booking_http_request_duration_seconds_count", **ok) == 3
    assert delta("booking_http_request_duration_seconds_sum", **ok) > 0
    assert delta("booking_http_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    # The concrete path never becomes a label: one series per route, whatever the ids.
    assert str(world.service_id) not in after


async def test_bookings_conflicts_and_idempotent_replays_are_counted(
    metered: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    before = await scrape(metered)
    path = world.appointments_path(DAY)
    keyed = {**auth, "Idempotency-Key": "metrics-replay"}
    assert (await metered.post(path, json=world.body(480), headers=auth)).status_code == 201
    assert (await metered.post(path, json=world.body(480), headers=auth)).status_code == 409
    assert (await metered.post(path, json=world.body(540), headers=keyed)).status_code == 201
    replay = await metered.post(path, json=world.body(540), headers=keyed)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    after = await scrape(metered)

    def delta(name: str) -> float:
        return sample(after, name) - sample(before, name)

    assert delta("booking_bookings_total") == 2
    assert delta("booking_booking_conflicts_total") == 1
    assert delta("booking_idempotent_replays_total") == 1
    created = {"route": APPOINTMENTS, "method": "POST", "status": "201"}
    assert (
        sample(after, "booking_http_requests_total", **created)
        - sample(before, "booking_http_requests_total", **created)
        == 3
    )


async def test_a_429_from_any_layer_counts_as_rate_limited() -> None:
    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 429, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=MetricsMiddleware(limited, token=None))
    before = REGISTRY.get_sample_value("booking_rate_limited_total") or 0
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/anything")).status_code == 429
    assert REGISTRY.get_sample_value("booking_rate_limited_total") == before + 1


async def test_connections_in_use_waiting_and_the_wait_are_measured(
    metered_settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> None:
    one_place = metered_settings.model_copy(update={"database_pool_size": 1})
    app = create_app(one_place, database_url, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = await scrape(client)
            async with (
                app.state.runtime.db.read()
            ):  # the only place is taken: /readyz must wait for it
                waiting = asyncio.create_task(client.get("/readyz"))
                for _ in range(100):
                    if REGISTRY.get_sample_value("booking_db_connections_waiting") == 1:
                        break
                    await asyncio.sleep(0.01)
                during = await scrape(client)
                await asyncio.sleep(0.2)
            assert (await waiting).status_code == 200
            after = await scrape(client)

    assert sample(during, "booking_db_connections_in_use") == 1
    assert sample(during, "booking_db_connections_waiting") == 1
    assert sample(after, "booking_db_connections_in_use") == 0
    assert sample(after, "booking_db_connections_waiting") == 0
    waits = "booking_db_connection_wait_seconds"
    assert sample(after, waits + "_count") - sample(before, waits + "_count") == 2
    assert sample(after, waits + "_sum") - sample(before, waits + "_sum") >= 0.2


def test_with_two_workers_every_scrape_adds_up_both_processes(
    database_url: str, tmp_path: Path
) -> None:
    """The server sets up prometheus-client's multiprocess mode itself: whichever worker
    answers a scrape, it counts the requests that both answered."""
    with serve(database_url, tmp_path, WORKERS="2", METRICS_TOKEN=METRICS_TOKEN) as server:
        before = sample(
            httpx.get(server.url + "/metrics", headers=SCRAPE).text,
            "booking_http_requests_total",
            route="/healthz",
        )
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(server.url + "/healthz").status_code == 200

        def counted() -> float:
            page = httpx.get(server.url + "/metrics", headers=SCRAPE).text
            return sample(page, "booking_http_requests_total", route="/healthz") - before

        # A worker counts a request once it has sent the answer: the last one may be counted
        # a moment after the client has it (and asks the other worker for a scrape).
        deadline = time.monotonic() + 10
        while counted() < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        totals = {counted() for _ in range(10)}
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0

    assert totals == {40}
