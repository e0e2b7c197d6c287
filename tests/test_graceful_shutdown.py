"""SIGTERM under load: the server stops accepting, answers every request it took, leaves
nothing half-written, releases the database and exits 0; a request still running after
SHUTDOWN_GRACE_S is cut off, and its transaction rolled back."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.settings import Settings
from booking.store.models import Appointment, IdempotencyRecord, TicketCounter
from tests import builders
from tests.builders import World
from tests.conftest import bearer
from tests.serving import serve

DAY = date.today() + timedelta(days=3)  # the server runs on the real clock
IN_FLIGHT = 6
LOADERS = 4  # with IN_FLIGHT, the DATABASE_POOL_SIZE (10): none waits out the pool timeout
# A connection still in the kernel's accept queue when the listening socket closes is reset
# (or closed before its request is read): refused, never seen by the application.
NOT_ACCEPTED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


async def hold_bookings(conn: AsyncConnection) -> None:
    """Bookings read, then wait at their INSERT until this transaction ends."""
    await conn.execute(text("LOCK TABLE appointment IN EXCLUSIVE MODE"))


async def wait_until_blocked(engine: AsyncEngine, count: int) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'booking-api' AND wait_event_type = 'Lock'"
    )
    for _ in range(300):
        async with engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} bookings reached the lock")


async def refused_once_stopping(http: httpx.AsyncClient, url: str) -> httpx.ConnectError | None:
    """The refusal of a new connection to the stopping server at `url`, tried for 10 s (None:
    it kept accepting)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await http.get(url + "/healthz")
        except httpx.ConnectError as error:
            return error
        await asyncio.sleep(0.05)
    return None


async def stored(engine: AsyncEngine, world: World) -> tuple[set[str], list[int], int, int]:
    """Appointment ids, their tickets, the ticket counter, unanswered idempotency claims."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Appointment.id, Appointment.ticket_number)
                .where(Appointment.service_id == world.service_id)
                .order_by(Appointment.ticket_number)
            )
        ).all()
        counter = (
            await conn.execute(
                select(func.coalesce(func.max(TicketCounter.last_number), 0)).where(
                    TicketCounter.service_id == world.service_id
                )
            )
        ).scalar_one()
        unanswered = (
            await conn.execute(select(func.count()).where(IdempotencyRecord.status_code.is_(None)))
        ).scalar_one()
    return {str(r.id) for r in rows}, [r.ticket_number for r in rows], counter, unanswered


async def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(
    database_url: str, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, slot_minutes=5, duration=5)
    headers = bearer(settings, world.client_id)
    path = world.appointments_path(DAY)
    starts = itertools.count(480, 5)
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request

    # Ten bookings of one application wait at the lock at once: it may hold every connection.
    with serve(database_url, tmp_path, SHUTDOWN_GRACE_S="20", DATABASE_TENANT_SHARE="1") as server:
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:

            async def book(key: str) -> httpx.Response:
                body = world.body(next(starts))
                return await http.post(
                    server.url + path, json=body, headers={**headers, "Idempotency-Key": key}
                )

            async def keep_booking(n: int) -> list[httpx.Response | Exception]:
                """Load that goes on through the shutdown until the server refuses it."""
                outcomes: list[httpx.Response | Exception] = []
                for i in itertools.count():
                    try:
                        outcomes.append(await book(f"load-{n}-{i}"))
                    except NOT_ACCEPTED as error:
                        outcomes.append(error)
                        if isinstance(error, httpx.ConnectError):
                            return outcomes
                return outcomes

            async with engine.connect() as lock:
                await lock.begin()
                await hold_bookings(lock)
                in_flight = [asyncio.create_task(book(f"held-{i}")) for i in range(IN_FLIGHT)]
                load = [asyncio.create_task(keep_booking(n)) for n in range(LOADERS)]
                await wait_until_blocked(engine, IN_FLIGHT + LOADERS)
                server.process.send_signal(signal.SIGTERM)
                # It stops accepting (once its main loop has seen the signal); the held ones
                # still wait.
                refused = await refused_once_stopping(http, server.url)
                assert server.process.poll() is None
                assert refused is not None, "the server still accepts after SIGTERM"
                await lock.rollback()

            held = await asyncio.gather(*in_flight)
            outcomes = [o for task in load for o in await task]
        exit_code = await asyncio.to_thread(server.process.wait, 30)

    assert exit_code == 0
    assert [r.status_code for r in held] == [201] * IN_FLIGHT
    answered = [o for o in outcomes if isinstance(o, httpx.Response)]
    assert answered
    assert {r.status_code for r in answered} == {201}
    case_ids, tickets, counter, unanswered = await stored(engine, world)
    # Every booking the server wrote was answered, and nothing else was written.
    assert case_ids == {r.json()["caseId"] for r in [*held, *answered]}
    assert tickets == list(range(1, len(tickets) + 1))
    assert counter == len(tickets)
    assert unanswered == 0


async def test_a_request_still_running_after_the_grace_period_is_cut_off_and_rolled_back(
    database_url: str, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn)
    headers = bearer(settings, world.client_id)

    env = {"SHUTDOWN_GRACE_S": "1", "DATABASE_STATEMENT_TIMEOUT_MS": "20000"}
    with serve(database_url, tmp_path, **env) as server:
        async with httpx.AsyncClient(timeout=30) as http, engine.connect() as lock:
            await lock.begin()
            await hold_bookings(lock)
            held = asyncio.create_task(
                http.post(
                    server.url + world.appointments_path(DAY),
                    json=world.body(600),
                    headers=headers,
                )
            )
            await wait_until_blocked(engine, 1)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(server.process.wait, 30)
            stopped_after = time.monotonic() - started
            await lock.rollback()
            outcome = await asyncio.gather(held, return_exceptions=True)

    assert exit_code == 0
    assert stopped_after < 5  # the grace period decided, not the lock or the statement timeout
    assert not (isinstance(outcome[0], httpx.Response) and outcome[0].status_code == 201)
    case_ids, _, counter, _ = await stored(engine, world)
    assert case_ids == set()
    assert counter == 0
