"""Key fields stay unique under concurrent creates: real parallel HTTP requests at two real
uvicorn processes sharing one PostgreSQL. The key's primary key decides, not process memory."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.models import CustomerKey, CustomerRecord
from tests import builders
from tests.builders import CUSTOMERS_MANAGER
from tests.conftest import bearer


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        yield client


async def test_twenty_parallel_creates_with_one_key_value_give_one_201_and_nineteen_409(
    live_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn)
        people = await builders.people(conn, world)
    headers = bearer(settings, world.client_id, [CUSTOMERS_MANAGER])
    gate = asyncio.Event()

    async def one(i: int) -> httpx.Response:
        body = {"fields": people.fields(first_name=f"Twin {i}", last_name="X", national_id="NID-1")}
        await gate.wait()
        return await http.post(
            f"{live_servers[i % 2]}/{world.application_id}/customers", json=body, headers=headers
        )

    tasks = [asyncio.create_task(one(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    responses = await asyncio.gather(*tasks)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    assert all(r.json()["code"] == "duplicate_key_field" for r in responses if r.status_code == 409)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(CustomerRecord)) == 1
        assert await conn.scalar(select(func.count()).select_from(CustomerKey)) == 1
