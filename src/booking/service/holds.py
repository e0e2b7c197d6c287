"""The slot-hold use cases: hold a slot, release a hold, extend it once. Each is a write of the
hold's calendar-day (a hold occupies capacity) run by `calendar_day.write`.

Round trips of a hold: BEGIN with the lock, read what overlaps the slot (appointments and live
holds, one statement), insert the hold, COMMIT. A booking consumes a hold inside its own
transaction (`booking.service.appointments`)."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from booking.service import calendar_day, occupancy, rules
from booking.service.calendar_day import OnceOnly
from booking.service.catalog import ApplicationConfig, Catalog
from booking.service.commands import ExtendHold, HoldSlot, ReleaseHold
from booking.service.errors import Conflict
from booking.store import holds as store
from booking.store.db import Database, LockedCalendarDay
from booking.store.holds import HoldRecord

TOKEN_BYTES = 24  # 192 random bits: unguessable
# Expired holds are deleted this long after their expiry, so that meanwhile a late booking
# with the token hears "expired" rather than "unknown". Nothing depends on the deletion.
HOLD_RETENTION = timedelta(days=1)

Replayed = TypeVar("Replayed")


async def hold(
    db: Database,
    catalog: Catalog,
    application: ApplicationConfig,
    command: HoldSlot,
    now: datetime,
    once: OnceOnly[HoldRecord, Replayed] | None = None,
) -> HoldRecord | Replayed:
    """Hold a vacant slot for the application's hold length (or the request's, up to its
    maximum); `Conflict` with the nearest vacancies when it is not vacant. A retry with `once`
    answers the first hold instead of holding a second place."""
    rules.find_calendar(catalog, command.day)  # the caller's, before any lock
    return await calendar_day.write(
        db,
        command.day,
        partial(rules.check_hold, catalog, application, command, now),
        partial(_insert_hold, application.id, command, now),
        once,
    )


async def _insert_hold(
    application_id: uuid.UUID,
    command: HoldSlot,
    now: datetime,
    tx: LockedCalendarDay,
    checked: tuple[rules.CheckedSlot, timedelta],
) -> HoldRecord:
    slot, length = checked
    await occupancy.check_vacant(tx, slot, now)
    record = HoldRecord(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        application_id=application_id,
        service_id=tx.day.service_id,
        cu_index=tx.day.cu_index,
        on_date=tx.day.on_date,
        start_minute=command.start_minute,
        duration_minutes=slot.service_type.duration_minutes,
        service_type_id=slot.service_type.id,
        channel=command.channel,
        created_at=now,
        expires_at=now + length,
        extended=False,
        released_at=None,
        consumed_by=None,
    )
    await store.insert_hold(tx, record)
    return record


async def release(
    db: Database,
    catalog: Catalog,
    application: ApplicationConfig,
    command: ReleaseHold,
    now: datetime,
) -> None:
    """Free the held place now. Releasing a hold that has ended already changes nothing; one
    that a booking used is a `Conflict`."""
    rules.find_calendar(catalog, command.day)
    await calendar_day.write(
        db, command.day, _nothing_to_check, partial(_release, application.id, command, now)
    )


def _nothing_to_check() -> None:
    return None


async def _locked_hold(tx: LockedCalendarDay, application_id: uuid.UUID, token: str) -> HoldRecord:
    """The application's hold of the locked calendar-day, row-locked; `NotFound` otherwise."""
    record = await store.lock(tx.conn, token, application_id)
    day = tx.day
    if record is None or (record.service_id, record.cu_index, record.on_date) != (
        day.service_id,
        day.cu_index,
        day.on_date,
    ):
        raise rules.unknown_hold()
    return record


async def _release(
    application_id: uuid.UUID, command: ReleaseHold, now: datetime, tx: LockedCalendarDay, _: None
) -> None:
    record = await _locked_hold(tx, application_id, command.token)
    if record.consumed_by is not None:
        raise Conflict(
            "The reservation was used by a booking; cancel the appointment instead.",
            code="reservation_consumed",
            field="reservationToken",
        )
    if record.is_live(now):
        await store.release(tx, record.token, now)


async def extend(
    db: Database,
    catalog: Catalog,
    application: ApplicationConfig,
    command: ExtendHold,
    now: datetime,
) -> HoldRecord:
    """Extend a live hold, once, up to the application's maximum length."""
    rules.find_calendar(catalog, command.day)
    return await calendar_day.write(
        db, command.day, _nothing_to_check, partial(_extend, application, command, now)
    )


async def _extend(
    application: ApplicationConfig,
    command: ExtendHold,
    now: datetime,
    tx: LockedCalendarDay,
    _: None,
) -> HoldRecord:
    record = await _locked_hold(tx, application.id, command.token)
    expires_at = rules.extended_expiry(record, application, command.hold_seconds, now)
    await store.extend(tx, record.token, expires_at)
    return dataclasses.replace(record, expires_at=expires_at, extended=True)
