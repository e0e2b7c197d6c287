"""The appointment use cases: book, cancel, check in, reschedule, read one, list a
calendar-day. The API calls one of these per request; each opens its own unit of work
(`calendar_day.write`, or `calendar_day.move` for a reschedule).

Round trips of a booking (configuration comes from the per-process cache; every rule that needs
no database is checked before a connection is taken): BEGIN with the lock and the move of the
calendar-day's stamp, read what overlaps the slot (appointments and live holds, one statement),
insert-with-ticket (one statement, which also writes the afterBookAppointment event when that
hook is on), COMMIT; plus one read of the customer record when the request names one, and one
UPDATE that consumes the hold when it names a reservation token. With an Idempotency-Key, the
claim's INSERT comes after the BEGIN and the answer's UPDATE before the COMMIT.

A check-in: BEGIN with the lock, lock the appointment, UPDATE (status, fields and tags), (write
the afterCheckIn event,) COMMIT; with beforeCheckIn on, one read of the appointment before, so
that the receiver is called without the lock.

A reschedule: BEGIN with both calendar-days' locks and the moves of both stamps, lock the
appointment, (consume the hold,) read the target's intervals, move (one UPDATE, with the new
date's ticket), COMMIT.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import TypeVar

from booking.domain import CalendarDay, Hook
from booking.service import calendar_day, occupancy, rules
from booking.service.availability import Interval
from booking.service.calendar_day import OnceOnly
from booking.service.catalog import Catalog
from booking.service.commands import (
    BookAppointment,
    CancelAppointment,
    CheckIn,
    RescheduleAppointment,
)
from booking.service.errors import DomainError, NotFound
from booking.service.webhooks import before, events
from booking.service.webhooks.before import BeforeHooks
from booking.store import appointments as store
from booking.store import holds
from booking.store.appointments import AppointmentRecord, Move
from booking.store.db import Database, LockedCalendarDay
from booking.store.holds import HoldRecord

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
    token = checked.command.reservation_token
    hold = None
    if token is not None:
        hold = await _take_hold(tx, token, application_id, case_id, checked.slot, now)
    await occupancy.check_vacant(tx, checked.slot, now)
    row = rules.new_appointment(
        checked, catalog.organization_id, application_id, case_id, now, hold
    )
    name = checked.slot.service_type.name
    announcing = events.of_booking(catalog, row, name, customer_name)
    return await store.insert_with_next_ticket(tx, row, name, customer_name, announcing)


async def _take_hold(
    tx: LockedCalendarDay,
    token: str,
    application_id: uuid.UUID,
    case_id: uuid.UUID,
    slot: rules.CheckedSlot,
    now: datetime,
) -> HoldRecord:
    """Consume the application's live hold `token` for `case_id`, in the locked calendar-day's
    transaction: the hold stops counting as the appointment starts to, at one commit. Refused
    when the hold has ended (with the nearest vacancies), is unknown, or keeps another place
    (a rollback then gives it back)."""
    hold = await holds.consume(tx, token, application_id, case_id, now)
    if hold is None:
        if await holds.lock(tx.conn, token, application_id) is None:
            raise rules.unknown_hold()
        raise rules.hold_gone(slot, await occupancy.occupied(tx, now), now)
    rules.check_hold_matches(hold, slot)
    return hold


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
    record = await _locked_appointment(tx, catalog, case_id)
    if not rules.needs_cancelling(record, now):
        return record
    await store.mark_cancelled(tx, case_id, now)
    cancelled = store.cancelled(record, now)
    await events.announce(tx, catalog, Hook.AFTER_CANCEL, cancelled)
    return cancelled


async def _locked_appointment(
    tx: LockedCalendarDay, catalog: Catalog, case_id: uuid.UUID
) -> AppointmentRecord:
    record = await store.lock_in_calendar_day(tx, case_id, catalog.organization_id)
    if record is None:
        raise NotFound("No such appointment in this calendar.", code="appointment_not_found")
    return record


async def check_in(
    db: Database,
    catalog: Catalog,
    command: CheckIn,
    now: datetime,
    once: OnceOnly[AppointmentRecord, Replayed] | None = None,
    hooks: BeforeHooks | None = None,
) -> AppointmentRecord | Replayed:
    """Move a planned appointment to the service's initial case status (Waiting or Pending)
    inside its check-in window. Checking in again answers the same, never a toggle. With
    `hooks`, the organization's beforeCheckIn sees (and may change the fields and tags of, or
    cancel) the check-in first, before any lock is taken."""
    rules.find_calendar(catalog, command.day)
    hooked = before.endpoint_of(catalog, command.day.service_id, Hook.BEFORE_CHECK_IN)
    if hooks is not None and hooked is not None:
        command = await _before_check_in(db, catalog, command, now, hooks)
    return await calendar_day.write(
        db,
        command.day,
        partial(rules.check_check_in, catalog, command),
        partial(_check_in, catalog, command, now),
        once,
    )


async def _before_check_in(
    db: Database, catalog: Catalog, command: CheckIn, now: datetime, hooks: BeforeHooks
) -> CheckIn:
    """`command` as beforeCheckIn changed it, asked of the appointment as the check-in would
    leave it (one read, without the lock: the hook is never called holding it). Not asked when
    the check-in would change nothing or be refused: no such appointment in the calendar-day,
    one checked in already (a repeat answers the same and calls no receiver), or a rule it
    breaks; the in-lock step then answers (or replays what an Idempotency-Key's first attempt
    answered). That step checks every rule again on the row as it is then: a check-in that
    another one beat to the lock is a repeat, and the receiver's answer to it is dropped."""
    async with db.read() as conn:
        record = await store.in_organization(conn, command.case_id, catalog.organization_id)
    if record is None:
        return command
    if CalendarDay(record.service_id, record.cu_index, record.on_date) != command.day:
        return command
    service = rules.find_service(catalog, command.day.service_id)
    try:
        status = rules.check_in_status(record, service, command.mode, now)
    except DomainError:
        return command
    if status is None:
        return command
    return await hooks.before_check_in(catalog, command, store.checked_in(record, status, now))


async def _check_in(
    catalog: Catalog,
    command: CheckIn,
    now: datetime,
    tx: LockedCalendarDay,
    checked: rules.CheckedCheckIn,
) -> AppointmentRecord:
    record = await _locked_appointment(tx, catalog, command.case_id)
    service = rules.find_service(catalog, tx.day.service_id)
    status = rules.check_in_status(record, service, command.mode, now)
    if status is None:
        return record
    checked_in = store.checked_in(record, status, now, checked.fields, checked.tag_ids)
    await store.mark_checked_in(tx, checked_in)
    await events.announce(tx, catalog, Hook.AFTER_CHECK_IN, checked_in)
    return checked_in


async def reschedule(
    db: Database,
    catalog: Catalog,
    application_id: uuid.UUID,
    command: RescheduleAppointment,
    now: datetime,
    once: OnceOnly[AppointmentRecord, Replayed] | None = None,
) -> AppointmentRecord | Replayed:
    """Move a planned appointment to another start, calendar unit or date of its service,
    keeping its case id and service type: the new place is claimed and the old one freed in
    one transaction holding both calendar-days' locks. On any refusal nothing changes."""
    rules.find_calendar(catalog, command.day)  # both the caller's, before any lock
    rules.find_calendar(catalog, command.to)
    return await calendar_day.move(
        db,
        command.day,
        command.to,
        _nothing_to_check,
        partial(_move, catalog, application_id, command, now),
        once,
    )


async def _move(
    catalog: Catalog,
    application_id: uuid.UUID,
    command: RescheduleAppointment,
    now: datetime,
    source: LockedCalendarDay,
    target: LockedCalendarDay,
    _: None,
) -> AppointmentRecord:
    record = await _locked_appointment(source, catalog, command.case_id)
    rules.check_movable(record, now)
    service, unit = rules.find_calendar(catalog, command.to)
    rules.check_agents_booking_active(service)
    service_type = rules.find_service_type(service, record.service_type_id)
    broken: list[DomainError] = []
    timed = rules.timed_slot(
        service,
        unit,
        service_type,
        command.to,
        command.start_minute,
        command.bypass_timeslot_check,
        now,
        broken,
    )
    slot = rules.checked_slot(timed, broken)
    hold = None
    if command.reservation_token is not None:
        hold = await _take_hold(
            target, command.reservation_token, application_id, record.case_id, slot, now
        )
    occupied = await occupancy.occupied(target, now)
    if command.to == command.day:  # the appointment's own place is no obstacle to its move
        occupied.remove(
            Interval(record.start_minute, record.start_minute + record.duration_minutes)
        )
    rules.check_vacant(slot, occupied, now)
    to = Move(
        cu_index=command.to.cu_index,
        on_date=command.to.on_date,
        start_minute=command.start_minute,
        starts_at=slot.starts_at,
        time_zone=unit.zone.key,
        reservation_token=None if hold is None else hold.token,
        reservation_expires_at=None if hold is None else hold.expires_at,
        bypassed_timeslot_check=command.bypass_timeslot_check,
    )
    moved = await store.move(source, target, record, to)
    await events.announce(target, catalog, Hook.AFTER_RESCHEDULE, moved, previous=record)
    return moved


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
