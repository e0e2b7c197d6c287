"""Connections: handed out first come, first served, waiting bounded, transactions that begin
holding a calendar lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from booking.api.app import create_app
from booking.domain import CalendarDay
from booking.service.catalog import ConfigCache
from booking.settings import Settings
from booking.store.db import Database, DatabaseUnavailable, calendar_day_lock_key
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer, run_alembic

DAY = TODAY + timedelta(days=1)


async def open_db(settings: Settings, database_url: str, size: int, wait_s: float) -> Database:
    limits = {"database_pool_size": size, "database_pool_timeout_s": wait_s}
    return await Database.open(settings.model_copy(update=limits), database_url)


@pytest.fixture
async def one_connection(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    """A database whose pools hold a single connection, like a busy pool."""
    db = await open_db(settings, database_url, size=1, wait_s=5)
    yield db
    await db.close()


@pytest.fixture
async def four_connections(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    db = await open_db(settings, database_url, size=4, wait_s=5)
    yield db
    await db.close()


async def test_a_latecomer_does_not_overtake_a_request_already_waiting(
    one_connection: Database,
) -> None:
    db = one_connection
    order: list[str] = []

    async def waiter() -> None:
        async with db.read() as conn:
            order.append("waiter")
            await conn.fetchval("SELECT 1")

    holder = db.read()
    await holder.__aenter__()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)  # the waiter is queued for the only connection
    await holder.__aexit__(None, None, None)  # gives it back, waking the waiter ...
    async with db.read():  # ... but this request asks before the waiter has run
        order.append("latecomer")
    await waiting
    assert order == ["waiter", "latecomer"]


async def test_waiters_are_served_in_the_order_they_asked(one_connection: Database) -> None:
    db = one_connection
    order: list[int] = []

    async def ask(n: int) -> None:
        async with db.transaction() as conn:
            order.append(await conn.fetchval("SELECT $1::int", n))

    tasks = []
    for n in range(12):
        tasks.append(asyncio.create_task(ask(n)))
        await asyncio.sleep(0)  # each asks in turn
    await asyncio.gather(*tasks)
    assert order == list(range(12))


async def test_waiting_longer_than_the_pool_timeout_raises_database_unavailable(
    one_connection: Database,
) -> None:
    db = one_connection
    db.wait_s = 0.2
    async with db.read():
        with pytest.raises(DatabaseUnavailable):
            async with db.read():
                pass
    async with db.read() as conn:  # the place was given back
        assert await conn.fetchval("SELECT 1") == 1


@pytest.mark.committed  # holds every place of the app's FIFO gate
async def test_an_exhausted_pool_answers_503_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    db: Database = app.state.runtime.db
    db.wait_s = 0.2
    held = [db.read() for _ in range(app.state.runtime.settings.database_pool_size)]
    for place in held:
        await place.__aenter__()
    try:
        response = await client.post(
            world.appointments_path(DAY), json=world.body(570), headers=auth
        )
    finally:
        for place in held:
            await place.__aexit__(None, None, None)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "database_unavailable"
    assert "retry-after" in response.headers
    retry = await client.post(world.appointments_path(DAY), json=world.body(570), headers=auth)
    assert retry.status_code == 201, retry.text


async def test_a_calendar_day_transaction_holds_its_lock_until_it_ends(
    four_connections: Database,
) -> None:
    db = four_connections
    day = CalendarDay(uuid.uuid4(), 0, TODAY)
    probe = f"SELECT pg_try_advisory_lock(hashtextextended('{calendar_day_lock_key(day)}', 0))"
    async with db.read() as other:
        async with db.calendar_day(day):
            assert await other.fetchval(probe) is False  # held by the transaction
        assert await other.fetchval(probe) is True  # released at COMMIT
        await other.execute("SELECT pg_advisory_unlock_all()")
        with pytest.raises(RuntimeError):
            async with db.calendar_day(day):
                raise RuntimeError("fails inside")
        assert await other.fetchval(probe) is True  # released at ROLLBACK
        await other.execute("SELECT pg_advisory_unlock_all()")


async def test_other_calendar_days_take_other_locks(four_connections: Database) -> None:
    db = four_connections
    day = CalendarDay(uuid.uuid4(), 0, TODAY)
    others = [
        CalendarDay(uuid.uuid4(), 0, TODAY),
        CalendarDay(day.service_id, 1, TODAY),
        CalendarDay(day.service_id, 0, DAY),
    ]
    async with db.calendar_day(day):
        for other in others:
            async with asyncio.timeout(2), db.calendar_day(other):
                pass


async def test_the_configuration_cache_waits_for_a_place_like_every_request(
    one_connection: Database, world: World
) -> None:
    db = one_connection
    db.wait_s = 0.2
    cache = ConfigCache(db, ttl_s=0)
    async with db.read():  # the only place is taken
        with pytest.raises(DatabaseUnavailable):
            await cache.catalog(world.organization_id)
    assert (await cache.catalog(world.organization_id)).organization_id == world.organization_id


async def test_a_process_holds_at_most_database_pool_size_connections(
    settings: Settings, make_database: Any, clock: FakeClock
) -> None:
    """Mixed traffic (bookings, cancels, vacancies, listings, configuration loads) of one app on
    a database of its own: the server counts this process's connections."""
    url: str = make_database("pool_count")
    run_alembic(url, ("upgrade", "head"))
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        world = await builders.world(conn)
    size = 3
    limited = settings.model_copy(update={"database_pool_size": size})
    app = create_app(limited, url, clock=clock)
    auth = bearer(limited, world.client_id)
    counts: list[int] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                params = {"serviceTypeId": str(world.service_type_id)}
                for days in range(1, 4):
                    on_date = TODAY + timedelta(days=days)
                    path = world.appointments_path(on_date)
                    vacancies = f"{world.calendar_path(on_date)}/vacancies"
                    answers = await asyncio.gather(
                        *(
                            client.post(path, json=world.body(480 + 30 * n), headers=auth)
                            for n in range(8)
                        ),
                        *(client.get(vacancies, params=params, headers=auth) for _ in range(8)),
                        *(client.get(path, headers=auth) for _ in range(4)),
                    )
                    assert {a.status_code for a in answers} == {200, 201}
                    async with engine.connect() as conn:
                        counted = await conn.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE datname = current_database() "
                                "AND application_name = 'booking-api'"
                            )
                        )
                        counts.append(counted.scalar_one())
    finally:
        await engine.dispose()
    assert 0 < max(counts) <= size, counts
