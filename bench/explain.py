"""EXPLAIN (ANALYZE, BUFFERS) of the statements the app itself sends on the hot paths, for the
growth phase of `make bench`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from benchkit import Database, World


async def explain_hot_queries(db: Database, world: World, dense_date: date) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the app itself sends: the use cases run for
    real (a booking on the dense day, its vacancies, the intervals of a typical past day) on an
    app Database of one connection whose asyncpg query logger notes every statement; each is
    then explained in a transaction rolled back."""
    from booking.domain import CalendarDay, Channel
    from booking.service import appointments, calendars
    from booking.service.catalog import load_catalog
    from booking.service.commands import BookAppointment
    from booking.settings import Settings
    from booking.store import appointments as store
    from booking.store.db import Database as AppDatabase
    from booking.store.db import calendar_day_lock_key

    settings = Settings(jwt_dev_secret="unused-" * 5, database_pool_size=1)
    app_db = await AppDatabase.open(settings, db.url)
    recorded: list[tuple[str, tuple[Any, ...]]] = []

    def note(query: Any) -> None:
        recorded.append((query.query, tuple(query.args)))

    async def record(work: Any) -> list[tuple[str, tuple[Any, ...]]]:
        recorded.clear()
        await work()
        return [
            (sql, args)
            for sql, args in recorded
            if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))
        ]

    dense = CalendarDay(world.dense_service, 0, dense_date)
    past = CalendarDay(world.services[0][0], 0, world.first_date - timedelta(days=2))
    explained: dict[str, Any] = {}
    try:
        async with app_db.read() as conn:  # the one connection: every later statement is noted
            conn.add_query_logger(note)
            catalog = await load_catalog(conn, world.organization_id)
        assert catalog is not None
        now = datetime.now(UTC)
        vacant = await calendars.vacancies(app_db, catalog, dense, world.dense_type, now)
        vacancy_calls = await record(
            lambda: calendars.vacancies(app_db, catalog, dense, world.dense_type, now)
        )
        command = BookAppointment(
            day=dense,
            service_type_id=world.dense_type,
            start_minute=vacant.slots[len(vacant.slots) // 2],
            channel=Channel.PHONE,
            contact_phone="020 7946 0018",
            contact_email="bench@example.com",
        )
        # The lock is taken in the BEGIN of the calendar-day's unit of work; shown on its own.
        lock = (
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            (calendar_day_lock_key(dense),),
        )
        # One booking first, not recorded: asyncpg's introspection of the row's types on its
        # first use of the connection is not the booking's work.
        first = replace(command, start_minute=vacant.slots[len(vacant.slots) // 2 + 1])
        await appointments.book(app_db, catalog, world.application_id, first, now)
        booked: list[Any] = []

        async def book() -> None:
            booked.append(
                await appointments.book(app_db, catalog, world.application_id, command, now)
            )

        booking_calls = [lock] + await record(book)

        async def typical() -> None:
            async with app_db.read() as conn:
                await store.booked_intervals(conn, past, now)

        typical_calls = await record(typical)
        groups = {
            "booking (500-appointment day)": booking_calls,
            "vacancies read (500-appointment day)": vacancy_calls,
            f"booked intervals, typical day ({past.on_date}, 54 rows)": typical_calls,
        }
        async with app_db.read() as conn:
            conn.remove_query_logger(note)
            for group, calls in groups.items():
                transaction = conn.transaction()
                await transaction.start()
                try:
                    if group == "booking (500-appointment day)":
                        # The booking recorded was committed: explained as it ran, without it
                        # (its INSERT would otherwise meet its own row).
                        await conn.execute(
                            "DELETE FROM appointment WHERE id = $1", booked[0].case_id
                        )
                    explained[group] = [await explain(conn, sql, args) for sql, args in calls]
                finally:
                    await transaction.rollback()
    finally:
        await app_db.close()
    return explained


async def explain(conn: Any, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    plan = "\n".join(row[0] for row in rows)
    return {"sql": " ".join(sql.split()), "parameters": _jsonable(list(args)), "plan": plan}


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))
