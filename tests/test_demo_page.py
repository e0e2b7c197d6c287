"""DEMO_PAGE: the reference booking page at /demo/ and its dev-mode token endpoint, only when
turned on, and only in dev mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.api.routes.demo import DEMO_TOKEN_TTL_S
from booking.settings import Settings
from tests.builders import World
from tests.conftest import NOW, TEST_SECRET, FakeClock


@pytest.fixture
async def demo_client(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        jwt_dev_secret=TEST_SECRET, config_cache_ttl_s=0, data_dir=tmp_path, demo_page=True
    )
    app = create_app(settings, database_url, clock=FakeClock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_the_page_is_served_at_demo(demo_client: httpx.AsyncClient) -> None:
    page = await demo_client.get("/demo/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert 'src="booking.js"' in page.text
    script = await demo_client.get("/demo/booking.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


async def test_the_token_endpoint_mints_a_short_lived_manager_token_that_the_api_accepts(
    demo_client: httpx.AsyncClient, world: World
) -> None:
    answer = await demo_client.post(
        "/demo/token", json={"applicationId": str(world.application_id)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["expiresIn"] == DEMO_TOKEN_TTL_S <= 900
    token = answer.json()["token"]
    services = await demo_client.get(
        f"/{world.application_id}/services", headers={"Authorization": f"Bearer {token}"}
    )
    assert services.status_code == 200
    assert [s["id"] for s in services.json()] == [str(world.service_id)]


async def test_an_unknown_application_gets_no_token(
    demo_client: httpx.AsyncClient, world: World
) -> None:
    answer = await demo_client.post(
        "/demo/token", json={"applicationId": "00000000-0000-4000-8000-000000000000"}
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "application_not_found"


async def test_without_demo_page_there_is_neither_page_nor_token(
    client: httpx.AsyncClient, world: World
) -> None:
    assert (await client.get("/demo/")).status_code == 404
    token = await client.post("/demo/token", json={"applicationId": str(world.application_id)})
    assert token.status_code == 404


def test_the_demo_page_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DEMO_PAGE"):
        Settings(
            data_dir=tmp_path,
            demo_page=True,
            jwt_mode="production",
            jwt_public_key="-----BEGIN PUBLIC KEY-----",
            jwt_issuer="https://id.example",
            jwt_audience="booking",
        )
