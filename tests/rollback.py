"""Rollback isolation: a test's writes, its own and the app's, happen inside one transaction on
one connection, rolled back when the test ends, so the next test starts from empty tables
without a TRUNCATE.

The fixture opens the connection and its outer transaction (`rolled_back`). The builders and the
test's own queries reach it through a SQLAlchemy engine whose one pooled connection is it (their
`engine.begin()` becomes a SAVEPOINT, asyncpg's nested transaction); the app reaches it through
`RolledBackDatabase`, handed to `create_app(database=...)`, whose intents are SAVEPOINTs too.
Tests that need real commits (live servers, a second connection, the FIFO gate, a restarted
PostgreSQL) are marked `committed` and keep TRUNCATE: see `commits` in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from booking.domain import CalendarDay
from booking.settings import Settings
from booking.store.db import (
    _LOCKED,  # the double takes the calendar-day's lock itself, so it may make the handle
    Database,
    DatabaseUnavailable,
    LockedCalendarDay,
    _set_codecs,
    is_outage,
    lock_calendar_day,
    lock_calendar_days,
)

_BEGIN = "BEGIN; "


def in_savepoint(statement: str, savepoint: str) -> str:
    """A store's lock statement (`lock_calendar_day`, `lock_calendar_days`: locks and stamps in
    one round trip), opening a SAVEPOINT of the test's transaction instead of a transaction of
    its own."""
    assert statement.startswith(_BEGIN), statement
    return f"SAVEPOINT {savepoint}; " + statement.removeprefix(_BEGIN)


class RolledBackDatabase(Database):
    """The app's database on the test's one connection: every intent is a SAVEPOINT of the
    test's transaction (commit = RELEASE, rollback = ROLLBACK TO), taken one at a time (asyncpg
    forbids concurrent operations on one connection; a unit of work must not interleave with
    another's savepoint). A calendar-day's advisory lock is held until the test's rollback:
    harmless, advisory locks are re-entrant for their session. A driver outage raised in a block
    becomes `DatabaseUnavailable`, as from the real one."""

    def __init__(self, conn: asyncpg.Connection, settings: Settings) -> None:
        super().__init__(
            cast(asyncpg.Pool, None), 1, settings.database_pool_timeout_s, 1.0
        )  # no pool: every intent uses `conn`
        self.conn = conn
        self._turn = asyncio.Lock()
        self._names = itertools.count()

    async def close(self) -> None:
        """The fixture owns the connection and rolls it back."""

    @asynccontextmanager
    async def _savepoint(self, locking: str | None = None) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._turn.acquire()
        except TimeoutError as error:
            # As the real gate does; in a test, the sign of a unit of work waiting for another
            # that the same test holds open (mark such a test `committed`).
            raise DatabaseUnavailable("the test's connection is busy") from error
        try:
            name = f"app_{next(self._names)}"
            begin = f"SAVEPOINT {name}" if locking is None else in_savepoint(locking, name)
            try:
                await self.conn.execute(begin)
                try:
                    yield self.conn
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.conn.execute(
                            f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
                        )
                    raise
                await self.conn.execute(f"RELEASE SAVEPOINT {name}")
            except DatabaseUnavailable:
                raise
            except Exception as error:
                if is_outage(error):
                    raise DatabaseUnavailable(type(error).__name__) from error
                raise
        finally:
            self._turn.release()

    async def ping(self) -> None:
        async with self._savepoint() as conn:
            await conn.fetchval("SELECT 1")

    def read(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        # A savepoint even for a read: a failed statement must not abort the test's transaction.
        return self._savepoint()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return self._savepoint()

    @asynccontextmanager
    async def calendar_day(self, day: CalendarDay) -> AsyncIterator[LockedCalendarDay]:
        async with self._savepoint(lock_calendar_day(day)) as conn:
            yield LockedCalendarDay(conn, day, _LOCKED)

    @asynccontextmanager
    async def calendar_days(
        self, source: CalendarDay, target: CalendarDay
    ) -> AsyncIterator[tuple[LockedCalendarDay, LockedCalendarDay]]:
        async with self._savepoint(lock_calendar_days(source, target)) as conn:
            yield LockedCalendarDay(conn, source, _LOCKED), LockedCalendarDay(conn, target, _LOCKED)


@dataclass
class RolledBack:
    """One test's transaction, seen by SQLAlchemy (`engine`) and by the app (`database`)."""

    engine: AsyncEngine
    database: RolledBackDatabase


class RollbackConnection:
    """The test session's one connection for rolled-back tests, opened once (a connection and
    SQLAlchemy's first-connect queries cost more than a test's BEGIN and ROLLBACK), and again
    after a test left it closed."""

    def __init__(self, database_url: str) -> None:
        # The app's codecs (jsonb as Python values, by orjson) stay on the connection;
        # SQLAlchemy hands its JSON values to them untouched instead of installing its own.
        self.engine = create_async_engine(
            database_url,
            poolclass=StaticPool,
            json_serializer=_as_is,
            json_deserializer=_as_is,
        )
        self.engine.dialect.setup_asyncpg_json_codec = _keep_app_codecs  # type: ignore[attr-defined]
        self.engine.dialect.setup_asyncpg_jsonb_codec = _keep_app_codecs  # type: ignore[attr-defined]
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            await self.engine.dispose()
            async with self.engine.connect() as opened:
                raw = (await opened.get_raw_connection()).driver_connection
            assert raw is not None
            self._conn = cast(asyncpg.Connection, raw)
            await _set_codecs(self._conn)
        return self._conn

    @asynccontextmanager
    async def transaction(self, settings: Settings) -> AsyncIterator[RolledBack]:
        """A transaction on the connection, rolled back when the block ends."""
        conn = await self._connection()
        outer = conn.transaction()
        await outer.start()
        try:
            yield RolledBack(self.engine, RolledBackDatabase(conn, settings))
        finally:
            if not conn.is_closed():
                await outer.rollback()

    async def close(self) -> None:
        await self.engine.dispose()


def _as_is(value: Any) -> Any:
    return value


async def _keep_app_codecs(conn: Any) -> None:
    return None
