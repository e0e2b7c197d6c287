"""EXPLAIN (ANALYZE, BUFFERS) of the statements the app itself sends on the hot paths, for the
growth phase of `make bench`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from benchkit import Database, World
from calendar_lock import LOCK_CALENDAR_DAY, calendar_day_key


async def explain_hot_queries(db: Database, world: World, dense_date: date) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the app itself sends: they are recorded by
    running booking.book_appointment, calendars.vacancies and booking.booked_intervals on a
    connection that notes every statement, then explained in a transaction rolled back."""
    from booking.service import booking, calendars
    from booking.service.catalog import load_catalog
    from booking.settings import Settings
    from booking.store.db import Database as AppDatabase

    settings = Settings(jwt_dev_secret="unused", database_pool_size=2)
    app_db = await AppDatabase.open(settings, db.url)
    service_id = world.services[0][0]
    past_day = world.first_date - timedelta(days=2)
    explained: dict[str, Any] = {}
    try:
        async with app_db.read() as read:
            catalog = await load_catalog(read, world.organization_id)
        assert catalog is not None
        now = datetime.now(UTC)
        async with app_db.driver() as conn:

            async def record(fn: Any) -> list[tuple[str, tuple[Any, ...]]]:
                recorder = RecordingConnection(conn)
                transaction = conn.transaction()
                await transaction.start()
                try:
                    await fn(recorder)
                finally:
                    await transaction.rollback()
                return recorder.calls

            vacancy_calls = await record(
                lambda c: calendars.vacancies(
                    c, catalog, world.dense_service, dense_date, 0, world.dense_type, now
                )
            )
            vacant = await calendars.vacancies(
                conn, catalog, world.dense_service, dense_date, 0, world.dense_type, now
            )
            command = booking.BookAppointment(
                service_id=world.dense_service,
                on_date=dense_date,
                cu_index=0,
                service_type_id=world.dense_type,
                start_minute=vacant.slots[len(vacant.slots) // 2],
                channel="Phone",
                contact_phone="020 7946 0018",
                contact_email="bench@example.com",
            )
            checked = booking.check_booking(catalog, command, now)
            # The lock is taken in the BEGIN of booking.calendar_transaction; shown on its own.
            lock = (LOCK_CALENDAR_DAY, (calendar_day_key(world.dense_service, 0, dense_date),))
            booking_calls = [lock] + await record(
                lambda c: booking.book_appointment(c, catalog, world.application_id, checked, now)
            )
            typical_calls = await record(
                lambda c: booking.booked_intervals(c, service_id, 0, past_day)
            )
            groups = {
                "booking (500-appointment day)": booking_calls,
                "vacancies read (500-appointment day)": vacancy_calls,
                f"booked intervals, typical day ({past_day}, 54 rows)": typical_calls,
            }
            for group, calls in groups.items():
                transaction = conn.transaction()
                await transaction.start()
                try:
                    explained[group] = [await explain(conn, sql, args) for sql, args in calls]
                finally:
                    await transaction.rollback()
    finally:
        await app_db.close()
    return explained


class RecordingConnection:
    """Forwards the statements of an asyncpg connection and notes each (SQL, arguments)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetchval(sql, *args)


async def explain(conn: Any, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    plan = "\n".join(row[0] for row in rows)
    return {"sql": " ".join(sql.split()), "parameters": _jsonable(list(args)), "plan": plan}


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))
