"""CORS: off by default; with CORS_ALLOWED_ORIGINS, browsers on those origins get their
preflights answered (before rate limits and routing) and may read the headers a client needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.settings import Settings
from tests.builders import World
from tests.conftest import NOW, TEST_SECRET, FakeClock, bearer

SHOP = "https://shop.example"
ELSEWHERE = "https://elsewhere.example"


def cors_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=tmp_path,
        database_url=None,
        rate_limit_application="100000/second",
        # One request a minute from an address outside an application: a preflight is none.
        rate_limit_client_address="1/minute",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def shop_client(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    settings = cors_settings(tmp_path, cors_allowed_origins=f"{SHOP}, https://other.example")
    app = create_app(settings, database_url, clock=FakeClock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_preflight_from_an_allowed_origin_allows_the_methods_and_partner_headers(
    shop_client: httpx.AsyncClient, world: World
) -> None:
    for method in ("GET", "POST", "PATCH", "DELETE"):
        answer = await shop_client.options(
            world.appointments_path("2026-12-02"), headers=preflight(SHOP, method)
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == SHOP
        assert method in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "idempotency-key", "if-none-match"):
            assert header in allowed
        assert "access-control-allow-credentials" not in answer.headers


async def test_preflights_are_not_rate_limited_nor_routed(
    shop_client: httpx.AsyncClient, world: World
) -> None:
    for path in ("/healthz", "/healthz", "/readyz", world.calendar_path("2026-12-02")):
        answer = await shop_client.options(path, headers=preflight(SHOP, "GET"))
        assert answer.status_code == 200, (path, answer.status_code)


async def test_an_allowed_origin_may_read_the_answer_and_its_client_headers(
    shop_client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    answer = await shop_client.post(
        world.appointments_path("2026-12-02"),
        json=world.body(600),
        headers={**bearer(settings, world.client_id), "Origin": SHOP, "Idempotency-Key": "k-1"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["access-control-allow-origin"] == SHOP
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert exposed >= {
        "location",
        "idempotent-replayed",
        "retry-after",
        "etag",
        "ratelimit",
        "ratelimit-policy",
        "x-request-id",
    }


async def test_a_rate_limited_answer_is_readable_by_an_allowed_origin(
    shop_client: httpx.AsyncClient,
) -> None:
    await shop_client.get("/healthz", headers={"Origin": SHOP})
    refused = await shop_client.get("/healthz", headers={"Origin": SHOP})
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == SHOP
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()


async def test_a_refused_origin_gets_no_cors_fields(
    shop_client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    answer = await shop_client.options(
        world.appointments_path("2026-12-02"), headers=preflight(ELSEWHERE)
    )
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    services = await shop_client.get(
        f"/{world.application_id}/services",
        headers={**bearer(settings, world.client_id), "Origin": ELSEWHERE},
    )
    assert services.status_code == 200
    assert "access-control-allow-origin" not in services.headers


async def test_cors_is_off_by_default(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.options(world.appointments_path("2026-12-02"), headers=preflight(SHOP))
    assert "access-control-allow-origin" not in answer.headers


def test_any_origin_with_credentials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="CORS_ALLOW_CREDENTIALS"):
        cors_settings(tmp_path, cors_allowed_origins="*", cors_allow_credentials=True)
    assert cors_settings(tmp_path, cors_allowed_origins="*").cors_allowed_origins == ["*"]


async def test_credentials_are_allowed_for_named_origins_when_asked(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> None:
    settings = cors_settings(tmp_path, cors_allowed_origins=SHOP, cors_allow_credentials=True)
    app = create_app(settings, database_url, clock=FakeClock(NOW))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.options("/healthz", headers=preflight(SHOP, "GET"))
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["access-control-allow-origin"] == SHOP
