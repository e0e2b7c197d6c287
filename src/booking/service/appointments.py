"""The appointment use cases: book, cancel, read one, list a calendar-day. The API calls one of
these per request; each opens its own unit of work (`calendar_day.write` for the writes).

Round trips of a booking (configuration comes from the per-process cache; every rule that needs
no database is checked before a connection is taken): BEGIN with the lock and the move of the
calendar-day's stamp, read the occupied intervals, insert-with-ticket (one statement, which
also writes the afterBookAppointment event when that hook is on), COMMIT; plus one read of
the customer record when the request names one. With an Idempotency-Key, the claim's INSERT
comes after the BEGIN and the answer's UPDATE before the COMMIT.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import TypeVar

from booking.domain import CalendarDay
from booking.service import calendar_day, rules
from booking.service.calendar_day import OnceOnly
from booking.service.catalog import Catalog
from booking.service.commands import BookAppointment, CancelAppointment
from booking.service.errors import NotFound
from booking.service.webhooks import events
from booking.service.webhooks.before import BeforeHooks
from booking.store import appointments as store
from booking.store.appointments import AppointmentRecord
from booking.store.db import Database, LockedCalendarDay

Replayed = TypeVar("Replayed")


async def book(
    db: Database,
    catalog: Catalog,
    application_id: uuid.UUID,
    command: BookAppointment,
    now: datetime,
    once: OnceOnly[AppointmentRecord, Replayed] | None = None,
    hooks: BeforeHooks | None = None,
) -> AppointmentRecord | Replayed:
    """Book, or raise the rule it breaks (`NotFound`, `RuleViolation`, `Conflict`). With
    `hooks`, the organization's beforeBookAppointment sees (and may change or cancel) the
    booking first, before any lock is taken."""
    rules.find_calendar(catalog, command.day)  # the caller's, before any lock
    case_id = uuid.uuid4()
    if hooks is not None:
        command = await hooks.before_book(catalog, application_id, command, case_id, now)
    return await calendar_day.write(
        db,
        command.day,
        partial(rules.check_booking, catalog, command, now),
        partial(_insert, catalog, application_id, case_id, now),
        once,
    )


async def _insert(
    catalog: Catalog,
    application_id: uuid.UUID,
    case_id: uuid.UUID,
    now: datetime,
    tx: LockedCalendarDay,
    checked: rules.CheckedBooking,
) -> AppointmentRecord:
    customer_record_id = checked.command.customer_record_id
    customer_name = None
    if customer_record_id is not None:
        customer_name = await store.customer_display_name(
            tx.conn, customer_record_id, catalog.organization_id
        )
        if customer_name is None:
            raise NotFound(
                "No such customer record.",
                code="customer_record_not_found",
                field="customerRecordId",
            )
    rules.check_vacant(
        checked, rules.intervals_of(await store.booked_intervals(tx.conn, tx.day)), now
    )
    row = rules.new_appointment(checked, catalog.organization_id, application_id, case_id, now)
    name = checked.service_type.name
    announcing = events.of_booking(catalog, row, name, customer_name)
    return await store.insert_with_next_ticket(tx, row, name, customer_name, announcing)


async def cancel(
    db: Database,
    catalog: Catalog,
    command: CancelAppointment,
    now: datetime,
    once: OnceOnly[AppointmentRecord, Replayed] | None = None,
) -> AppointmentRecord | Replayed:
    """Set status Cancelled (never delete). Cancelling a cancelled appointment answers the same;
    a checked-in or past one cannot be cancelled."""
    rules.find_calendar(catalog, command.day)  # the caller's, before any lock
    return await calendar_day.write(
        db, command.day, _nothing_to_check, partial(_cancel, catalog, command.case_id, now), once
    )


def _nothing_to_check() -> None:
    return None


async def _cancel(
    catalog: Catalog, case_id: uuid.UUID, now: datetime, tx: LockedCalendarDay, _: None
) -> AppointmentRecord:
    record = await store.lock_for_cancel(tx, case_id, catalog.organization_id)
    if record is None:
        raise NotFound("No such appointment in this calendar.", code="appointment_not_found")
    if not rules.needs_cancelling(record, now):
        return record
    await store.mark_cancelled(tx, case_id, now)
    cancelled = store.cancelled(record, now)
    await events.announce(tx, catalog, events.AFTER_CANCEL, cancelled)
    return cancelled


async def of_calendar_day(
    db: Database, catalog: Catalog, day: CalendarDay, customer_record_id: uuid.UUID | None
) -> list[AppointmentRecord]:
    """The calendar-day's appointments, cancelled ones included."""
    rules.find_calendar(catalog, day)
    async with db.read() as conn:
        return await store.of_calendar_day(conn, day, customer_record_id)


async def get(db: Database, catalog: Catalog, case_id: uuid.UUID) -> AppointmentRecord:
    async with db.read() as conn:
        record = await store.in_organization(conn, case_id, catalog.organization_id)
    if record is None:
        raise NotFound("No such appointment.", code="appointment_not_found", field="caseId")
    return record
