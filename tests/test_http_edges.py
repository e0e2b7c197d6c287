"""The edges of HTTP handling: no Location built from the Host header, allowed hosts, a request
id on every 500, and a readiness probe that cannot be turned into database load."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.settings import Settings
from tests.builders import World
from tests.conftest import FakeClock


async def test_a_trailing_slash_is_a_404_problem_without_a_redirect_built_from_host(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    for path in ("/healthz/", f"/{world.application_id}/services/"):
        response = await client.get(path, headers={**auth, "Host": "evil.example"})
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "route_not_found"
        assert "location" not in response.headers
        assert "evil.example" not in response.text


@pytest.fixture
async def strict_host_client(
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    strict = settings.model_copy(update={"allowed_hosts": ["api.example.org", "*.example.net"]})
    app = create_app(strict, database_url, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.org", 200),
        ("API.example.org:8443", 200),
        ("eu.example.net", 200),
        ("example.net", 400),
        ("api.example.org.evil.example", 400),
        ("evil.example", 400),
        ("", 400),
    ],
)
async def test_only_the_allowed_hosts_are_served(
    strict_host_client: httpx.AsyncClient, host: str, status: int
) -> None:
    response = await strict_host_client.get("/healthz", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "host_not_allowed"
        assert response.headers["x-request-id"]


@pytest.fixture
async def app_with_a_bug(app: FastAPI) -> FastAPI:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken, methods=["GET"])
    return app


async def test_an_unexpected_error_is_a_500_problem_carrying_the_request_id(
    app_with_a_bug: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app_with_a_bug, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/broken", headers={"X-Request-ID": "trace-the-bug"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-the-bug"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "a bug" not in response.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged
    assert logged[0].exc_info is not None  # the traceback is in the log, not in the answer


@pytest.fixture
async def unlimited_app(
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[FastAPI]:
    """No per-address limit: what bounds the probes' cost is the readiness cache alone."""
    app = create_app(
        settings.model_copy(update={"rate_limit_client_address": ""}), database_url, clock=clock
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_readyz_answers_from_a_check_at_most_a_second_old(unlimited_app: FastAPI) -> None:
    app = unlimited_app
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    db = app.state.runtime.db
    checks: list[None] = []
    ping = db.ping

    async def counted_ping() -> None:
        checks.append(None)
        await ping()

    db.ping = counted_ping
    try:
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
        assert {a.status_code for a in answers} == {200}
        assert len(checks) == 1  # fifty probes, one query
        await asyncio.sleep(1.05)
        assert (await client.get("/readyz")).status_code == 200
        assert len(checks) == 2
    finally:
        db.ping = ping
        await client.aclose()
