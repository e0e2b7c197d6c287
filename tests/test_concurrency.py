"""Never a double booking: real parallel HTTP requests at two real uvicorn processes that share
one real PostgreSQL (directly, through PgBouncer in transaction mode, and with the row-lock
variant of the calendar-day lock: `deployed_servers`). The database decides, not process
memory."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.service.availability import Interval, peak_overlap
from booking.settings import Settings
from booking.store.models import Appointment
from tests import builders
from tests.builders import World
from tests.conftest import bearer

# The servers run on the real clock: book a date safely in the future.
DAY = date.today() + timedelta(days=3)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        yield client


async def fire(
    http: httpx.AsyncClient,
    urls: list[str],
    world: World,
    headers: dict[str, str],
    bodies: list[dict[str, object]],
) -> list[httpx.Response]:
    """POST every body at once, alternating between the servers, released together."""
    gate = asyncio.Event()

    async def one(i: int, body: dict[str, object]) -> httpx.Response:
        await gate.wait()
        return await http.post(
            urls[i % len(urls)] + world.appointments_path(DAY), json=body, headers=headers
        )

    tasks = [asyncio.create_task(one(i, body)) for i, body in enumerate(bodies)]
    await asyncio.sleep(0.05)
    gate.set()
    return await asyncio.gather(*tasks)


async def stored(engine: AsyncEngine, world: World) -> list[tuple[int, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                Appointment.start_minute, Appointment.duration_minutes, Appointment.ticket_number
            )
            .where(Appointment.service_id == world.service_id)
            .order_by(Appointment.ticket_number)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def assert_within_capacity(rows: list[tuple[int, int, int]], capacity: int) -> None:
    booked = [Interval(start, start + duration) for start, duration, _ in rows]
    assert peak_overlap(booked, 0, 1440) <= capacity


def assert_tickets_gapless(rows: list[tuple[int, int, int]]) -> None:
    assert [ticket for _, _, ticket in rows] == list(range(1, len(rows) + 1))


async def make_world(engine: AsyncEngine, **options: object) -> World:
    async with engine.begin() as conn:
        return await builders.world(conn, **options)  # type: ignore[arg-type]


async def test_twenty_bookings_of_the_last_place_give_one_201_and_nineteen_409(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=1)
    responses = await fire(
        http, deployed_servers, world, bearer(settings, world.client_id), [world.body(600)] * 20
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    assert all(r.json()["code"] == "slot_not_vacant" for r in responses if r.status_code == 409)
    rows = await stored(engine, world)
    assert len(rows) == 1
    assert_tickets_gapless(rows)


async def test_capacity_two_gives_exactly_two_201(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=2)
    responses = await fire(
        http, deployed_servers, world, bearer(settings, world.client_id), [world.body(600)] * 20
    )

    assert Counter(r.status_code for r in responses) == {201: 2, 409: 18}
    rows = await stored(engine, world)
    assert_within_capacity(rows, 2)
    assert_tickets_gapless(rows)


async def test_overlapping_intervals_of_different_durations_never_exceed_capacity(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=2, duration=30)
    async with engine.begin() as conn:
        long_type = await builders.service_type(conn, world.service_id, duration=60)
        short_type = await builders.service_type(conn, world.service_id, duration=10)
    bodies: list[dict[str, object]] = []
    for i, start in enumerate(range(540, 660, 10)):
        for type_id in (world.service_type_id, long_type, short_type):
            bodies.append({**world.body(start), "serviceTypeId": str(type_id)})
        bodies.append(world.body(start + (i % 3) * 10))
    responses = await fire(http, deployed_servers, world, bearer(settings, world.client_id), bodies)

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    rows = await stored(engine, world)
    assert statuses[201] == len(rows) > 0
    assert_within_capacity(rows, 2)
    assert_tickets_gapless(rows)


async def test_concurrent_bookings_of_different_calendars_all_succeed_with_gapless_tickets(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=1)
    async with engine.begin() as conn:
        await builders.calendar_unit(conn, world.service_id, cu_index=1)
    headers = bearer(settings, world.client_id)
    gate = asyncio.Event()

    async def one(i: int) -> httpx.Response:
        await gate.wait()
        return await http.post(
            deployed_servers[i % 2] + world.appointments_path(DAY, i % 2),
            json=world.body(480 + 30 * (i // 2)),
            headers=headers,
        )

    tasks = [asyncio.create_task(one(i)) for i in range(16)]
    await asyncio.sleep(0.05)
    gate.set()
    responses = await asyncio.gather(*tasks)

    assert [r.status_code for r in responses] == [201] * 16
    tickets = sorted(r.json()["ticket"]["number"] for r in responses)
    assert tickets == list(range(1, 17))


async def test_retries_of_one_key_at_two_processes_book_once_and_all_replay_that_booking(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=1)
    headers = {**bearer(settings, world.client_id), "Idempotency-Key": "one-booking"}
    responses = await fire(http, deployed_servers, world, headers, [world.body(600)] * 12)

    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses]
    assert len({r.json()["caseId"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 11
    assert len(await stored(engine, world)) == 1
