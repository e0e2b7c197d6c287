"""The database of a server process: SQLAlchemy's engine for the reads and configuration, an
asyncpg pool for the hot paths (booking, cancelling, vacancies), and one first-come-first-served
queue in front of both."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from booking.settings import Settings
from booking.store.tenant_share import TenantShare


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


def to_driver_dsn(url: str) -> str:
    """The asyncpg form (`postgresql://...`) of a database URL."""
    async_url = to_async_url(url)
    prefix = "postgresql+asyncpg://"
    return "postgresql://" + async_url[len(prefix) :] if async_url.startswith(prefix) else url


async def _set_codecs(conn: asyncpg.Connection) -> None:
    """jsonb goes in as JSON text and comes out parsed, as on the SQLAlchemy side."""
    await conn.set_type_codec(
        "jsonb", encoder=str, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


async def create_driver_pool(settings: Settings, url: str, size: int) -> asyncpg.Pool:
    """The asyncpg pool of the hot paths, with the engine's connection settings. Connections
    are opened on first use (the server starts while the database is down) and, when a
    database restart closed them, replaced at acquire. Released connections are not reset
    with a query (asyncpg's default costs a round trip): the hot paths leave no session state,
    and a transaction left open by an interruption is rolled back by asyncpg itself."""

    async def no_reset(conn: asyncpg.Connection) -> None:
        return None

    timeout_ms = settings.database_statement_timeout_ms
    return await asyncpg.create_pool(
        to_driver_dsn(url),
        min_size=0,
        max_size=size,
        init=_set_codecs,
        reset=no_reset,
        timeout=settings.database_connect_timeout_s,
        command_timeout=timeout_ms / 1000 + 1 if timeout_ms else None,
        server_settings={
            "statement_timeout": str(timeout_ms),
            "application_name": "booking-api",
        },
    )


# What an advisory-lock key may contain: it is written into the BEGIN statement as a literal.
_LOCK_KEY = re.compile(r"[A-Za-z0-9:._-]{1,200}")


class Database:
    """The connections of a server process, handed out in the order they were asked for.

    Two pools: SQLAlchemy's (configuration, listings, the loader) and an asyncpg pool for the
    hot paths, whose few hand-written statements skip SQLAlchemy altogether: its execution
    layer costs about 0.1 ms of CPU per statement and its pool another 0.05 ms per request,
    more than the database spends on them. In front of both, one FIFO semaphore with
    DATABASE_POOL_SIZE places: at most that many connections are in use at once, and requests
    get them first come, first served (SQLAlchemy's own queue lets a late arrival overtake
    those waiting, which tripled the booking p99 under load). Waiting is bounded by
    DATABASE_POOL_TIMEOUT_S, then TimeoutError (503). One application holds at most
    DATABASE_TENANT_SHARE of the places at once (`tenant_share.py`): its excess requests wait
    behind each other, not in front of other applications'."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool: asyncpg.Pool,
        size: int,
        wait_s: float,
        tenant_share: float = 1.0,
    ) -> None:
        self.engine = engine
        # One-statement reads need no BEGIN/ROLLBACK: two round trips saved per request.
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.pool = pool
        self.wait_s = wait_s
        self._places = asyncio.Semaphore(size)
        self.tenant_share = TenantShare(size, tenant_share)

    @classmethod
    async def open(cls, settings: Settings, url: str) -> Database:
        size = settings.database_pool_size + settings.database_max_overflow
        engine = create_engine(settings, url)
        pool = await create_driver_pool(settings, url, size)
        return cls(
            engine, pool, size, settings.database_pool_timeout_s, settings.database_tenant_share
        )

    async def close(self) -> None:
        await self.pool.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def _place(self) -> AsyncIterator[None]:
        async with self.tenant_share.hold(self.wait_s):  # one application's share first
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
        """An asyncpg connection, in autocommit."""
        async with self._place(), self.pool.acquire() as conn:
            yield cast(asyncpg.Connection, conn)  # the pool's proxy forwards every call

    @asynccontextmanager
    async def transaction(
        self, *, lock_key: str | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """An asyncpg connection in a transaction: committed when the block ends, rolled back
        when it raises.

        With `lock_key`, the transaction starts holding the transaction-scoped advisory lock of
        that key (released at COMMIT or ROLLBACK), taken in the same round trip as BEGIN."""
        begin = "BEGIN"
        if lock_key is not None:
            if not _LOCK_KEY.fullmatch(lock_key):
                raise ValueError(f"unsafe advisory lock key: {lock_key!r}")
            begin = f"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('{lock_key}', 0))"
        async with self.driver() as conn:
            await conn.execute(begin)
            try:
                yield conn
            except BaseException:
                # If the ROLLBACK fails too, the connection is broken or still in the
                # transaction: the pool's release then closes it or rolls back. The original
                # error is the one to report.
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
