"""The test kit: what many test files share to talk to the API (book, hold, cancel, check in,
list vacancies, read a problem), to wait for what another task or process does (`eventually`),
and the store double through which fault tests break the database on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from booking.domain import CalendarDay
from booking.store.db import Database, LockedCalendarDay
from tests.builders import World
from tests.conftest import TODAY

TOMORROW = TODAY + timedelta(days=1)


async def book(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: int = 570, **body: Any
) -> httpx.Response:
    """POST a booking of `start` (tomorrow unless `on_date=` says otherwise)."""
    on_date = body.pop("on_date", TOMORROW)
    return await client.post(
        world.appointments_path(on_date), json=world.body(start, **body), headers=auth
    )


async def hold(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: int = 570, **body: Any
) -> httpx.Response:
    """POST a slot hold of `start` (tomorrow unless `on_date=` says otherwise)."""
    on_date = body.pop("on_date", TOMORROW)
    return await client.post(
        world.reservations_path(on_date), json=world.body(start, **body), headers=auth
    )


async def vacancies(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date = TOMORROW
) -> list[int]:
    response = await client.get(
        world.calendar_path(on_date) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    slots: list[int] = response.json()["slots"]
    return slots


async def cancel(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    case_id: str,
    on_date: date = TOMORROW,
    cu_index: int | None = None,
) -> httpx.Response:
    return await client.delete(
        f"{world.appointments_path(on_date, cu_index)}/{case_id}", headers=auth
    )


async def check_in(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    case_id: str,
    mode: str = "Agent",
    **headers: str,
) -> httpx.Response:
    """POST the check-in of an appointment booked today."""
    return await client.post(
        f"{world.appointments_path(TODAY)}/{case_id}/actions/checkIn",
        json={"mode": mode},
        headers=auth | headers,
    )


def assert_problem(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """`response` is a problem+json of this status and code (naming `field` when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"]
    assert problem["title"]
    assert problem["detail"]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    return problem


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30
) -> None:
    """Wait until `condition()` holds: for what another task or process does in its own time
    (a deliverer recording an attempt, a background refresh). Fails saying that `what` did not
    happen within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.05)


# --- the store double of the fault tests ------------------------------------------------------

# What a fault does instead of the statement it replaces: it gets the real connection, the
# statement and its arguments (to send it after all, say), and answers its result or raises.
Fault = Callable[[asyncpg.Connection, str, tuple[Any, ...]], Awaitable[Any]]


class _FaultyConnection:
    """A connection that sends every statement, except that one containing `marker` runs
    `fault` instead."""

    def __init__(self, conn: asyncpg.Connection, marker: str, fault: Fault) -> None:
        self._conn, self._marker, self._fault = conn, marker, fault

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return real

        async def send(sql: str, *args: Any) -> Any:
            if self._marker in sql:
                return await self._fault(self._conn, sql, args)
            return await real(sql, *args)

        return send


class FaultyDatabase(Database):
    """The app's database, except that in a calendar-day's transaction (one day's or a move's
    two) the statement containing `marker` runs `fault` instead. The seam: `Runtime.db`,
    swapped by `inject_fault`."""

    def __init__(self, real: Database, marker: str, fault: Fault) -> None:
        super().__init__(real.pool, real.size, real.wait_s)
        self._real, self._marker, self._fault = real, marker, fault

    # Every intent goes to the wrapped database, the test's rolled-back one included.
    async def ping(self) -> None:
        await self._real.ping()

    def read(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return self._real.read()

    def transaction(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return self._real.transaction()

    @asynccontextmanager
    async def calendar_day(self, day: CalendarDay) -> AsyncIterator[LockedCalendarDay]:
        async with self._real.calendar_day(day) as tx:
            tx.conn = _FaultyConnection(tx.conn, self._marker, self._fault)  # type: ignore[assignment]
            yield tx

    @asynccontextmanager
    async def calendar_days(
        self, source: CalendarDay, target: CalendarDay
    ) -> AsyncIterator[tuple[LockedCalendarDay, LockedCalendarDay]]:
        async with self._real.calendar_days(source, target) as (from_tx, to_tx):
            faulty = _FaultyConnection(from_tx.conn, self._marker, self._fault)
            from_tx.conn = to_tx.conn = faulty  # type: ignore[assignment]
            yield from_tx, to_tx


@asynccontextmanager
async def inject_fault(app: FastAPI, marker: str, fault: Fault) -> AsyncIterator[None]:
    """Within the block, the app's calendar-day writes run `fault` for the statement containing
    `marker` (e.g. "INSERT INTO appointment", "FROM appointment")."""
    runtime = app.state.runtime
    real = runtime.db
    runtime.db = FaultyDatabase(real, marker, fault)
    try:
        yield
    finally:
        runtime.db = real


class CountingConnection:
    def __init__(self, conn: asyncpg.Connection, sent: list[str]) -> None:
        self._conn, self._sent = conn, sent

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return real

        async def send(sql: str, *args: Any) -> Any:
            self._sent.append(sql)
            return await real(sql, *args)

        return send


class CountingDatabase(Database):
    """The app's database, recording every statement its connections send (one round trip
    each: asyncpg sends a statement and waits for its answer). On a real pool: a test using it
    is `committed`."""

    def __init__(self, real: Database) -> None:
        super().__init__(real.pool, real.size, real.wait_s)
        self.sent: list[str] = []

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with super()._connection() as conn:
            yield CountingConnection(conn, self.sent)  # type: ignore[misc]
