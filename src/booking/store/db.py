"""The database of a server process: one asyncpg pool behind one first-come-first-served gate,
handed out by intent (a read, a transaction, a calendar-day's locked transaction). A driver
error that means "the database cannot serve now" leaves this module as `DatabaseUnavailable`,
the one error type of the store for an outage.

SQLAlchemy is kept for the models, Alembic and the loader (`create_engine`, used by the CLI);
at run time every statement goes through this pool: SQLAlchemy's execution layer cost about
0.1 ms of CPU per statement and its pool another 0.05 ms per request, more than the database
spent on them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from booking import metrics
from booking.domain import CalendarDay
from booking.settings import CalendarDayLock, DatabasePooler, Settings
from booking.store.tenant_share import TenantShare


class DatabaseUnavailable(Exception):
    """The database cannot serve now (down, restarting, too slow, no connection free in time):
    worth a retry later. The driver's error is its `__cause__`."""


# SQLSTATEs that mean "the database cannot serve now": connection exceptions (08...), statement or
# lock timeouts, shutdowns and crash restarts (57P01-57P03), too many connections.
_TRANSIENT_SQLSTATES = ("08", "57014", "55P03", "57P01", "57P02", "57P03", "53300")


def is_outage(exc: BaseException) -> bool:
    """Connection-level failures and timeouts, not constraint violations or bad SQL (bugs)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    # asyncpg's own state machine losing its footing: what a server killed mid-message (SIGKILL
    # of the postmaster) leaves behind. The connection is discarded; a retry gets a new one.
    if isinstance(exc, asyncpg.InternalClientError):
        return True
    # asyncpg's InterfaceError also means misuse (wrong argument count, a concurrent operation
    # on one connection): a bug. Only a closed connection (or pool) is an outage.
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATES)


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


def to_driver_dsn(url: str) -> str:
    """The asyncpg form (`postgresql://...`) of a database URL."""
    async_url = to_async_url(url)
    prefix = "postgresql+asyncpg://"
    return "postgresql://" + async_url[len(prefix) :] if async_url.startswith(prefix) else url


def _command_timeout(settings: Settings) -> float | None:
    timeout_ms = settings.database_statement_timeout_ms
    return timeout_ms / 1000 + 1 if timeout_ms else None


def _behind_pooler(settings: Settings) -> bool:
    return settings.database_pooler is DatabasePooler.TRANSACTION


def _server_settings(settings: Settings) -> dict[str, str]:
    """Startup parameters. A pooler refuses those it does not know (PgBouncer: every one not in
    `ignore_startup_parameters`), so behind one the statement timeout is set per transaction
    (`begin_statement`) and by the role (README, production checklist) instead."""
    if _behind_pooler(settings):
        return {"application_name": "booking-api"}
    return {
        "statement_timeout": str(settings.database_statement_timeout_ms),
        "application_name": "booking-api",
    }


def begin_statement(settings: Settings) -> str:
    """What opens a transaction. Behind a pooler it also sets the statement timeout for the
    transaction, in the same round trip (a simple query; the value is an int)."""
    if _behind_pooler(settings):
        return f"BEGIN; SET LOCAL statement_timeout = {int(settings.database_statement_timeout_ms)}"
    return "BEGIN"


def _statement_cache_size(settings: Settings) -> int:
    """Behind a transaction-mode pooler a named prepared statement stays on the server
    connection it was prepared on, which the next transaction may not get: asyncpg then uses
    unnamed statements (parsed again each time: one more round trip per statement with
    parameters). Direct, asyncpg's cache of 100 prepared statements."""
    return 0 if _behind_pooler(settings) else 100


def engine_connect_args(settings: Settings) -> dict[str, Any]:
    """What SQLAlchemy's asyncpg dialect needs behind a transaction-mode pooler (the loader's
    and the migrations' engines): its statements unnamed, as the pool's are. Otherwise asyncpg
    numbers them from 1 in every process, and the names one process leaves on a server
    connection collide with the next process's ("prepared statement already exists")."""
    if not _behind_pooler(settings):
        return {}
    return {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    """SQLAlchemy's engine, for the loader and the CLI (never the server's request path)."""
    engine = create_async_engine(
        to_async_url(url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_s,
        pool_pre_ping=False,
        hide_parameters=True,  # bound values (phones, emails) never reach error messages or logs
        connect_args={
            "timeout": settings.database_connect_timeout_s,
            "command_timeout": _command_timeout(settings),
            "server_settings": _server_settings(settings),
            **engine_connect_args(settings),
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _json_text(value: object) -> str:
    return orjson.dumps(value, default=uuid_text).decode()


def uuid_text(value: object) -> str:
    """asyncpg's own UUID type (ids read from the database) is not orjson's uuid.UUID."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def _set_codecs(conn: asyncpg.Connection) -> None:
    """jsonb goes in and comes out as Python values, encoded by orjson."""
    await conn.set_type_codec(
        "jsonb", encoder=_json_text, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


async def create_pool(settings: Settings, url: str) -> asyncpg.Pool:
    """The process's pool. Connections are opened on first use (the server starts while the
    database is down) and, when a database restart closed them, replaced at acquire (asyncpg
    has seen the socket close: a flag, no round trip). Released connections are not reset with
    a query (asyncpg's default costs a round trip): no statement leaves session state, and a
    transaction left open by an interruption is rolled back by asyncpg itself."""

    async def no_reset(conn: asyncpg.Connection) -> None:
        return None

    return await asyncpg.create_pool(
        to_driver_dsn(url),
        min_size=0,
        max_size=settings.database_pool_size,
        init=_set_codecs,
        reset=no_reset,
        timeout=settings.database_connect_timeout_s,
        command_timeout=_command_timeout(settings),
        server_settings=_server_settings(settings),
        statement_cache_size=_statement_cache_size(settings),
    )


# One round trip (after `begin_statement`): for each calendar-day its transaction-scoped
# advisory lock (released at COMMIT or ROLLBACK), and the move of its stamp (`calendar_day_stamp`,
# the calendars' `calendarTimestamp`), which commits or rolls back with the write. Sent as a simple
# query (several statements), so the values are literals; they are a UUID, an int and a date
# only, which cannot carry a quote. The stamp is the database's clock, and always moves forward.
ADVISORY_LOCK_CALENDAR_DAY = "SELECT pg_advisory_xact_lock(hashtextextended('{key}', 0))"
MOVE_CALENDAR_DAY_STAMP = (
    "INSERT INTO calendar_day_stamp (service_id, cu_index, on_date, stamped_at) "
    "VALUES ('{service_id}', {cu_index}, '{on_date}', clock_timestamp()) "
    "ON CONFLICT (service_id, cu_index, on_date) DO UPDATE SET stamped_at = "
    "GREATEST(clock_timestamp(), calendar_day_stamp.stamped_at + interval '1 microsecond')"
)


def calendar_day_lock_key(day: CalendarDay) -> str:
    return f"calendar:{day.service_id}:{day.cu_index}:{day.on_date.isoformat()}"


def _lock_and_stamp(day: CalendarDay, lock: CalendarDayLock) -> str:
    stamp = MOVE_CALENDAR_DAY_STAMP.format(
        service_id=day.service_id, cu_index=int(day.cu_index), on_date=day.on_date.isoformat()
    )
    if lock is CalendarDayLock.ROW:
        return stamp
    return ADVISORY_LOCK_CALENDAR_DAY.format(key=calendar_day_lock_key(day)) + "; " + stamp


def lock_calendar_day(
    day: CalendarDay, begin: str = "BEGIN", lock: CalendarDayLock = CalendarDayLock.ADVISORY
) -> str:
    """The statement that begins a transaction holding `day`'s lock and moving its stamp.

    `CalendarDayLock.ROW` takes no advisory lock: the stamp's upsert locks the day's
    `calendar_day_stamp` row until COMMIT (`ON CONFLICT DO UPDATE` locks the row it updates; a
    concurrent first insert of the day waits on the unique index, then updates), which
    serializes the same writers with a lock that lives with the data (docs/scaling.md)."""
    return f"{begin}; {_lock_and_stamp(day, lock)}"


def lock_calendar_days(
    *days: CalendarDay, begin: str = "BEGIN", lock: CalendarDayLock = CalendarDayLock.ADVISORY
) -> str:
    """The statement that begins a transaction holding the locks of `days` and moving their
    stamps, the locks taken one after the other in the order of their keys: every transaction
    that needs two calendar-days takes them in the same order, so two of them never wait for
    each other crosswise. (Two keys whose 64-bit hashes collide would break that order;
    Postgres would then end one transaction as a deadlock instead of waiting forever. The row
    variant locks the stamp rows in the same order.)"""
    by_key = {calendar_day_lock_key(day): day for day in days}
    return f"{begin}; " + "; ".join(_lock_and_stamp(by_key[key], lock) for key in sorted(by_key))


_LOCKED = object()  # only `Database.calendar_day` holds it: no one else makes a LockedCalendarDay


class LockedCalendarDay:
    """A transaction that holds the lock of `day`. The statements that write a
    calendar-day take this handle, not a connection, so a write without the lock does not
    type-check. Only `Database.calendar_day` creates one."""

    __slots__ = ("conn", "day")

    def __init__(self, conn: asyncpg.Connection, day: CalendarDay, token: object) -> None:
        if token is not _LOCKED:
            raise TypeError("a LockedCalendarDay comes from Database.calendar_day only")
        self.conn = conn
        self.day = day


class Database:
    """The connections of a server process, handed out in the order they were asked for.

    One asyncpg pool of DATABASE_POOL_SIZE connections, and in front of it one FIFO semaphore
    with as many places: requests get connections first come, first served (a pool's own queue
    lets a late arrival overtake those waiting, which tripled the booking p99 under load).
    Waiting is bounded by DATABASE_POOL_TIMEOUT_S, then `DatabaseUnavailable` (503). Everything
    that talks to the database at run time, the configuration cache included, comes through
    here. One application holds at most DATABASE_TENANT_SHARE of the places at once
    (`tenant_share.py`): its excess requests wait behind each other, not in front of other
    applications'."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        size: int,
        wait_s: float,
        tenant_share: float = 1.0,
        *,
        begin: str = "BEGIN",
        lock: CalendarDayLock = CalendarDayLock.ADVISORY,
    ) -> None:
        self.pool = pool
        self.size = size
        self.wait_s = wait_s
        self.begin = begin  # `begin_statement`
        self.lock = lock
        self._places = asyncio.Semaphore(size)
        self.tenant_share = TenantShare(size, tenant_share)

    @classmethod
    async def open(cls, settings: Settings, url: str) -> Database:
        pool = await create_pool(settings, url)
        return cls(
            pool,
            settings.database_pool_size,
            settings.database_pool_timeout_s,
            settings.database_tenant_share,
            begin=begin_statement(settings),
            lock=settings.calendar_day_lock,
        )

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in autocommit; an outage raised in the block becomes
        `DatabaseUnavailable`. The calling application's share is taken first."""
        try:
            share = await self.tenant_share.take(self.wait_s)
        except TimeoutError as error:
            raise DatabaseUnavailable("no database connection free in time") from error
        try:
            await self._take_place()
            try:
                with metrics.DB_CONNECTIONS_IN_USE.track_inprogress():
                    async with self.pool.acquire() as conn:
                        yield cast(asyncpg.Connection, conn)  # the pool's proxy forwards every call
            except DatabaseUnavailable:
                raise
            except Exception as error:
                if is_outage(error):
                    raise DatabaseUnavailable(type(error).__name__) from error
                raise
            finally:
                self._places.release()
        finally:
            self.tenant_share.give_back(share)

    async def _take_place(self) -> None:
        """One of the process's places, first come first served, waited for at most `wait_s`.
        A free place is taken without a timer or the waiting gauge: on the path of every
        request, and nothing to wait for."""
        if not self._places.locked():
            await self._places.acquire()
            metrics.DB_CONNECTION_WAIT.observe(0.0)
            return
        try:
            with (
                metrics.DB_CONNECTIONS_WAITING.track_inprogress(),
                metrics.DB_CONNECTION_WAIT.time(),
            ):
                async with asyncio.timeout(self.wait_s):
                    await self._places.acquire()
        except TimeoutError as error:
            raise DatabaseUnavailable("no database connection free in time") from error

    async def ping(self) -> None:
        """One round trip: the database answers (or `DatabaseUnavailable`)."""
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    def read(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection for reads, in autocommit (a one-statement read needs no BEGIN)."""
        return self._connection()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection in a transaction: committed when the block ends, rolled back when it
        raises."""
        return self._in_transaction()

    @asynccontextmanager
    async def _in_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as conn, _transaction(conn, self.begin):
            yield conn

    @asynccontextmanager
    async def calendar_day(self, day: CalendarDay) -> AsyncIterator[LockedCalendarDay]:
        """A transaction that begins holding `day`'s lock (advisory, or its stamp row's with
        CALENDAR_DAY_LOCK=row) and moving its stamp (BEGIN, the lock and the stamp in one round
        trip): every write of a calendar-day moves the stamp, even one that turns out to
        change nothing (a replayed retry, cancelling a cancelled appointment): a spurious move
        costs a poller one full read, a missed one would hide a change. Writers of one
        calendar-day run one after the other until COMMIT; writers of other calendar-days take
        other locks and never wait. A hash collision between two calendar-days only makes them
        wait for each other."""
        async with (
            self._connection() as conn,
            _transaction(conn, lock_calendar_day(day, self.begin, self.lock)),
        ):
            yield LockedCalendarDay(conn, day, _LOCKED)

    @asynccontextmanager
    async def calendar_days(
        self, source: CalendarDay, target: CalendarDay
    ) -> AsyncIterator[tuple[LockedCalendarDay, LockedCalendarDay]]:
        """One transaction that begins holding the locks of both calendar-days (in a fixed
        order) and moving both stamps, BEGIN, the locks and the stamps in one round trip, for
        a write that moves something from `source` to `target`; the same day twice takes its
        lock and moves its stamp once."""
        begin = lock_calendar_days(source, target, begin=self.begin, lock=self.lock)
        async with self._connection() as conn, _transaction(conn, begin):
            yield LockedCalendarDay(conn, source, _LOCKED), LockedCalendarDay(conn, target, _LOCKED)


@asynccontextmanager
async def _transaction(conn: asyncpg.Connection, begin: str) -> AsyncIterator[None]:
    await conn.execute(begin)
    try:
        yield
    except BaseException:
        # If the ROLLBACK fails too, the connection is broken or still in the transaction: the
        # pool's release then closes it or rolls back. The original error is the one to report.
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
