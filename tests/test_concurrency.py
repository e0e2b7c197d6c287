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
from booking.store.models import Appointment, SlotHold
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


async def test_twenty_bookings_with_one_hold_token_give_one_201(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    # Capacity 2: the slot has room for a second booking, so only the token's single use
    # refuses the other nineteen.
    world = await make_world(engine, capacity=2)
    headers = bearer(settings, world.client_id)
    held = await http.post(
        deployed_servers[0] + world.reservations_path(DAY), json=world.body(600), headers=headers
    )
    assert held.status_code == 201, held.text
    body = world.body(600, reservationToken=held.json()["reservationToken"])

    responses = await fire(http, deployed_servers, world, headers, [body] * 20)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    assert all(r.json()["code"] == "reservation_expired" for r in responses if r.status_code == 409)
    assert len(await stored(engine, world)) == 1


async def test_holds_and_bookings_of_one_slot_in_parallel_never_exceed_capacity(
    live_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=2)
    headers = bearer(settings, world.client_id)
    gate = asyncio.Event()

    async def one(i: int) -> httpx.Response:
        await gate.wait()
        path = world.reservations_path(DAY) if i % 2 else world.appointments_path(DAY)
        return await http.post(
            live_servers[i % 2] + path, json=world.body(600 + 10 * (i % 3)), headers=headers
        )

    tasks = [asyncio.create_task(one(i)) for i in range(24)]
    await asyncio.sleep(0.05)
    gate.set()
    responses = await asyncio.gather(*tasks)

    assert {r.status_code for r in responses} <= {201, 409}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(SlotHold.start_minute, SlotHold.duration_minutes).where(
                SlotHold.service_id == world.service_id
            )
        )
        held = [(start, duration, 0) for start, duration in rows]
    booked = await stored(engine, world)
    assert len(held) + len(booked) == sum(r.status_code == 201 for r in responses)
    assert_within_capacity(booked + held, 2)


async def test_reschedules_a_to_b_and_b_to_a_in_parallel_never_deadlock(
    deployed_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=1)
    headers = bearer(settings, world.client_id)
    day_a, day_b = DAY, DAY + timedelta(days=1)
    # Three appointments on A's morning and three on B's afternoon; each round moves every one
    # to the same start of the other day at once (A to B and B to A in parallel, on both
    # servers), then back.
    where: dict[str, tuple[date, int]] = {}
    for on_date, start in [(day_a, 480 + 60 * i) for i in range(3)] + [
        (day_b, 780 + 60 * i) for i in range(3)
    ]:
        response = await http.post(
            deployed_servers[0] + world.appointments_path(on_date),
            json=world.body(start),
            headers=headers,
        )
        assert response.status_code == 201, response.text
        where[response.json()["caseId"]] = (on_date, start)

    async def move(
        server: str, case_id: str, at: date, to: tuple[date, int], gate: asyncio.Event
    ) -> httpx.Response:
        await gate.wait()
        return await http.post(
            f"{server}{world.appointments_path(at)}/{case_id}/actions/reschedule",
            json={"date": str(to[0]), "cuIndex": 0, "startTime": to[1]},
            headers=headers,
        )

    for _ in range(8):
        moves = {
            case_id: (day_b if on_date == day_a else day_a, start)
            for case_id, (on_date, start) in where.items()
        }
        gate = asyncio.Event()
        tasks = [
            asyncio.create_task(move(deployed_servers[i % 2], case_id, where[case_id][0], to, gate))
            for i, (case_id, to) in enumerate(moves.items())
        ]
        await asyncio.sleep(0.02)
        gate.set()
        responses = await asyncio.gather(*tasks)
        assert [r.status_code for r in responses] == [200] * len(moves), [r.text for r in responses]
        where = moves

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Appointment.id, Appointment.on_date, Appointment.start_minute).where(
                Appointment.service_id == world.service_id
            )
        )
        assert {str(case_id): (on_date, start) for case_id, on_date, start in rows} == where


async def test_parallel_moves_and_bookings_onto_one_slot_give_it_to_one(
    live_servers: list[str], http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    world = await make_world(engine, capacity=1)
    headers = bearer(settings, world.client_id)
    later = DAY + timedelta(days=1)
    cases = []
    for start in (480, 540, 600, 660):
        response = await http.post(
            live_servers[0] + world.appointments_path(later),
            json=world.body(start),
            headers=headers,
        )
        cases.append(response.json()["caseId"])
    gate = asyncio.Event()

    async def one(i: int) -> httpx.Response:
        await gate.wait()
        server = live_servers[i % 2]
        if i % 2:  # a booking of the slot
            return await http.post(
                server + world.appointments_path(DAY), json=world.body(900), headers=headers
            )
        return await http.post(  # a move of another day's appointment onto it
            f"{server}{world.appointments_path(later)}/{cases[i // 2]}/actions/reschedule",
            json={"date": str(DAY), "cuIndex": 0, "startTime": 900},
            headers=headers,
        )

    tasks = [asyncio.create_task(one(i)) for i in range(8)]
    await asyncio.sleep(0.05)
    gate.set()
    responses = await asyncio.gather(*tasks)

    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] + statuses[201] == 1, [r.text for r in responses]
    assert statuses[409] == 7
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Appointment.on_date).where(Appointment.service_id == world.service_id)
        )
        assert Counter(on_date for (on_date,) in rows) == {DAY: 1, later: 3}
