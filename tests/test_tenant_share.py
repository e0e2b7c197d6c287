"""One application holds at most DATABASE_TENANT_SHARE of a process's database connections at
once: a flood from one tenant queues behind itself, and the others' bookings go on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.domain import CalendarDay
from booking.settings import Settings
from booking.store.tenant_share import TenantShare, current_tenant
from tests import builders
from tests.conftest import TODAY, FakeClock, bearer

# --- the share, without a database ---------------------------------------------------------------


async def _hold_until(
    share: TenantShare,
    tenant: uuid.UUID | None,
    release: asyncio.Event,
    holding: Counter[uuid.UUID | None] | None = None,
) -> None:
    current_tenant.set(tenant)  # each task runs in its own copy of the context
    async with share.hold(wait_s=5):
        if holding is not None:
            holding[tenant] += 1
        await release.wait()


async def test_a_tenant_holds_at_most_its_share_while_another_still_gets_places() -> None:
    share = TenantShare(places=10, share=0.3)
    flooder, other = uuid.uuid4(), uuid.uuid4()
    release = asyncio.Event()
    holding: Counter[uuid.UUID | None] = Counter()
    flood = [asyncio.create_task(_hold_until(share, flooder, release, holding)) for _ in range(8)]
    others = [asyncio.create_task(_hold_until(share, other, release, holding)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert holding[flooder] == 3  # the five others wait for these three
    assert holding[other] == 3  # at once, although the flood came first
    release.set()
    await asyncio.gather(*flood, *others)
    assert holding[flooder] == 8


async def test_work_without_a_tenant_is_not_limited_by_the_share() -> None:
    share = TenantShare(places=10, share=0.1)
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold_until(share, None, release)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert all(not t.done() for t in tasks)
    assert share.tenants_in_flight() == 0
    release.set()
    await asyncio.gather(*tasks)


async def test_a_tenant_waiting_past_the_timeout_gets_timeout_error() -> None:
    share = TenantShare(places=2, share=0.5)
    tenant = uuid.uuid4()
    release = asyncio.Event()
    holder = asyncio.create_task(_hold_until(share, tenant, release))
    await asyncio.sleep(0.01)
    current_tenant.set(tenant)
    with pytest.raises(TimeoutError):
        async with share.hold(wait_s=0.05):
            pass
    release.set()
    await holder
    assert share.tenants_in_flight() == 0


async def test_memory_is_bounded_by_the_requests_in_flight_not_by_the_tenants_seen() -> None:
    share = TenantShare(places=10, share=0.5)
    for _ in range(10_000):
        current_tenant.set(uuid.uuid4())
        async with share.hold(wait_s=1):
            assert share.tenants_in_flight() == 1
    assert share.tenants_in_flight() == 0


# --- a flood from one application through the API ------------------------------------------------

FLOOD = 30
PROBES = 5
LOCK_HELD_S = 1.0


@pytest.fixture
async def fair_app(
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[FastAPI]:
    """Ten connections, half of them at most for one application; no rate limit, so the flood
    reaches the database."""
    fair = settings.model_copy(
        update={
            "database_pool_size": 10,
            "database_tenant_share": 0.5,
            "database_pool_timeout_s": 30.0,
            "rate_limit_application": "",
            "rate_limit_client_address": "",
        }
    )
    app = create_app(fair, database_url, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


async def test_a_flood_from_one_application_leaves_the_others_bookings_fast(
    fair_app: FastAPI, settings: Settings, engine: AsyncEngine
) -> None:
    """The flooder's calendar-day is locked for a second (as a slow writer would): each of its
    bookings holds a connection while it waits for that lock. Without the share the flood takes
    every connection and the other application waits the whole second; with it, the other
    application books in milliseconds."""
    async with engine.begin() as conn:
        flooder = await builders.world(conn)
        other = await builders.world(conn, capacity=PROBES)
    db = fair_app.state.runtime.db
    locked = asyncio.Event()

    async def hold_the_flooders_day() -> None:
        async with db.calendar_day(CalendarDay(flooder.service_id, 0, TODAY)):
            locked.set()
            await asyncio.sleep(LOCK_HELD_S)

    flood_auth = bearer(settings, flooder.client_id)
    other_auth = bearer(settings, other.client_id)
    transport = httpx.ASGITransport(app=fair_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:

        async def flood_one(i: int) -> int:
            body = flooder.body(480 + 10 * (i % 20))
            response = await client.post(
                flooder.appointments_path(TODAY), json=body, headers=flood_auth
            )
            return response.status_code

        holder = asyncio.create_task(hold_the_flooders_day())
        await locked.wait()
        flood = [asyncio.create_task(flood_one(i)) for i in range(FLOOD)]
        await asyncio.sleep(0.1)  # the flood has taken what it may and waits for the lock
        latencies = []
        for i in range(PROBES):
            started = time.perf_counter()
            response = await client.post(
                other.appointments_path(TODAY), json=other.body(600 + 10 * i), headers=other_auth
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
        flood_waiting = sum(not task.done() for task in flood)
        await holder
        statuses = await asyncio.gather(*flood)
    assert max(latencies) < LOCK_HELD_S / 4, latencies
    assert flood_waiting == FLOOD  # the probes ran while the whole flood was held up
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
