"""The engine, its connections handed out first come first served, and the driver connections
the hot paths borrow from its pool."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from booking.settings import Settings


def to_async_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs people paste and use the asyncpg driver."""
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    engine = create_async_engine(
        to_async_url(url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_s,
        # No pre-ping: it costs three round trips per checkout. `_replace_if_closed` below
        # catches, for free, the connections a database restart or an idle timeout closed.
        pool_pre_ping=False,
        hide_parameters=True,  # bound values (phones, emails) never reach error messages or logs
        connect_args={
            "timeout": settings.database_connect_timeout_s,
            "command_timeout": settings.database_statement_timeout_ms / 1000 + 1
            if settings.database_statement_timeout_ms
            else None,
            "server_settings": {
                "statement_timeout": str(settings.database_statement_timeout_ms),
                "application_name": "booking-api",
            },
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """At checkout, a pooled connection whose server side has gone (database restarted, idle
    connection killed) is replaced by a new one before anyone uses it. asyncpg has already seen
    the socket close, so the check is a flag, not a round trip."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection of a connection checked out of the engine's pool, in autocommit.

    The hot paths (booking, cancelling, vacancies) send their few hand-written statements on it
    directly: SQLAlchemy's execution layer costs about 0.1 ms of CPU per statement, more than
    the statement itself, and its connection objects another 0.05 ms per request, so the raw
    pooled connection is borrowed instead. The pool, its size and timeouts, and the connections'
    settings and codecs (jsonb in and out as JSON text / Python objects) stay SQLAlchemy's. A
    connection that broke, or that an interruption left inside a transaction, is invalidated
    rather than handed to the next request."""
    pooled = await engine.raw_connection()
    driver = pooled.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    try:
        yield driver
    finally:
        # Returning (or invalidating) may close a socket, which SQLAlchemy's asyncio adapter
        # awaits: it must run inside greenlet_spawn, as AsyncConnection does.
        if driver.is_closed() or driver.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


# What an advisory-lock key may contain: it is written into the BEGIN statement as a literal.
_LOCK_KEY = re.compile(r"[A-Za-z0-9:._-]{1,200}")


@asynccontextmanager
async def driver_transaction(
    engine: AsyncEngine, *, lock_key: str | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """`driver_connection` inside a transaction: committed when the block ends, rolled back
    when it raises.

    With `lock_key`, the transaction starts holding the transaction-scoped advisory lock of
    that key (released at COMMIT or ROLLBACK), taken in the same round trip as BEGIN."""
    begin = "BEGIN"
    if lock_key is not None:
        if not _LOCK_KEY.fullmatch(lock_key):
            raise ValueError(f"unsafe advisory lock key: {lock_key!r}")
        begin = f"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('{lock_key}', 0))"
    async with driver_connection(engine) as driver:
        await driver.execute(begin)
        try:
            yield driver
        except BaseException:
            # A failed ROLLBACK leaves the connection closed or in a transaction: then
            # driver_connection invalidates it. The original error is the one to report.
            with contextlib.suppress(Exception):
                if not driver.is_closed():
                    await driver.execute("ROLLBACK")
            raise
        await driver.execute("COMMIT")


class Database:
    """The connections of the engine's pool, handed out in the order they were asked for.

    SQLAlchemy's async pool lets a request that arrives just as a connection is returned take
    it ahead of those already waiting, so under load a few requests wait far longer than the
    rest (the bench saw booking p99 at three times p50). Every request of the API therefore
    queues on a FIFO semaphore with as many places as the pool has connections, and only then
    checks one out: waiting is fair, and bounded by DATABASE_POOL_TIMEOUT_S (then 503)."""

    def __init__(self, engine: AsyncEngine, size: int, wait_s: float) -> None:
        self.engine = engine
        # One-statement reads need no BEGIN/ROLLBACK: two round trips saved per request.
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.wait_s = wait_s
        self._places = asyncio.Semaphore(size)

    @asynccontextmanager
    async def _place(self) -> AsyncIterator[None]:
        async with asyncio.timeout(self.wait_s):
            await self._places.acquire()
        try:
            yield
        finally:
            self._places.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A SQLAlchemy connection in autocommit, for reads."""
        async with self._place(), self.reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """`driver_connection`: the asyncpg connection, in autocommit."""
        async with self._place(), driver_connection(self.engine) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(
        self, *, lock_key: str | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """`driver_transaction`: the asyncpg connection, in a transaction."""
        async with self._place(), driver_transaction(self.engine, lock_key=lock_key) as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()
