"""The appointment use cases called directly, without HTTP, on the real database: each opens its
own unit of work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import pytest

from booking.domain import AppointmentStatus, CalendarDay, Channel
from booking.service import appointments
from booking.service.catalog import Catalog, load_catalog
from booking.service.commands import BookAppointment, CancelAppointment
from booking.service.errors import Conflict, NotFound, RuleViolation
from booking.store.appointments import AppointmentRecord
from booking.store.db import Database, LockedCalendarDay
from tests.builders import World
from tests.conftest import NOW, TODAY

TOMORROW = TODAY + timedelta(days=1)


async def catalog_of(db: Database, world: World) -> Catalog:
    async with db.read() as conn:
        catalog = await load_catalog(conn, world.organization_id)
    assert catalog is not None
    return catalog


def booking(world: World, start: int = 570) -> BookAppointment:
    return BookAppointment(
        day=CalendarDay(world.service_id, world.cu_index, TOMORROW),
        service_type_id=world.service_type_id,
        start_minute=start,
        channel=Channel.FACE_TO_FACE,
    )


async def test_book_then_cancel_then_cancel_again(db: Database, world: World) -> None:
    catalog = await catalog_of(db, world)
    booked = await appointments.book(db, catalog, world.application_id, booking(world), NOW)
    assert isinstance(booked, AppointmentRecord)
    assert (booked.status, booked.ticket_number, booked.start_minute) == (
        AppointmentStatus.PLANNED,
        1,
        570,
    )
    assert await appointments.get(db, catalog, booked.case_id) == booked

    cancel = CancelAppointment(booking(world).day, booked.case_id)
    cancelled = await appointments.cancel(db, catalog, cancel, NOW)
    assert isinstance(cancelled, AppointmentRecord)
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.cancelled_at == NOW
    assert await appointments.cancel(db, catalog, cancel, NOW) == cancelled
    listed = await appointments.of_calendar_day(db, catalog, booking(world).day, None)
    assert listed == [cancelled]


async def test_a_taken_slot_is_a_conflict_and_a_free_one_books(db: Database, world: World) -> None:
    catalog = await catalog_of(db, world)
    await appointments.book(db, catalog, world.application_id, booking(world, 570), NOW)
    with pytest.raises(Conflict):
        await appointments.book(db, catalog, world.application_id, booking(world, 580), NOW)
    later = await appointments.book(db, catalog, world.application_id, booking(world, 600), NOW)
    assert isinstance(later, AppointmentRecord)
    assert later.ticket_number == 2


async def test_cancelling_in_another_calendar_day_finds_nothing(db: Database, world: World) -> None:
    catalog = await catalog_of(db, world)
    booked = await appointments.book(db, catalog, world.application_id, booking(world), NOW)
    assert isinstance(booked, AppointmentRecord)
    elsewhere = CalendarDay(world.service_id, world.cu_index, TOMORROW + timedelta(days=1))
    with pytest.raises(NotFound) as missing:
        await appointments.cancel(db, catalog, CancelAppointment(elsewhere, booked.case_id), NOW)
    assert missing.value.code == "appointment_not_found"


@dataclass
class Remembered:
    """A `OnceOnly` that remembers in memory: the first write's record, replayed after."""

    stored: list[AppointmentRecord] = field(default_factory=list)
    claims: int = 0

    async def claim(self, conn: asyncpg.Connection) -> str | None:
        self.claims += 1
        return f"replay of {self.stored[0].case_id}" if self.stored else None

    async def store(self, conn: asyncpg.Connection, written: AppointmentRecord) -> None:
        self.stored.append(written)


async def test_with_once_the_checks_run_after_the_claim_so_a_retry_replays(
    db: Database, world: World
) -> None:
    catalog = await catalog_of(db, world)
    once = Remembered()
    first = await appointments.book(db, catalog, world.application_id, booking(world), NOW, once)
    assert isinstance(first, AppointmentRecord)
    assert once.stored == [first]
    # By now the start time has passed: the checks would refuse, but the claim answers first.
    too_late = NOW + timedelta(days=2)
    retry = await appointments.book(
        db, catalog, world.application_id, booking(world), too_late, once
    )
    assert retry == f"replay of {first.case_id}"
    with pytest.raises(RuleViolation):  # without `once`, the checks run (and refuse)
        await appointments.book(db, catalog, world.application_id, booking(world), too_late)


async def test_a_locked_calendar_day_comes_only_from_its_transaction(
    db: Database, world: World
) -> None:
    day = booking(world).day
    async with db.read() as conn:
        with pytest.raises(TypeError):
            LockedCalendarDay(conn, day, object())
    async with db.calendar_day(day) as tx:
        assert tx.day == day
        assert tx.conn.is_in_transaction()


async def test_a_stranger_service_is_not_found_at_the_service(db: Database, world: World) -> None:
    catalog = await catalog_of(db, world)
    day = CalendarDay(uuid.uuid4(), 0, TOMORROW)
    with pytest.raises(NotFound) as missing:
        await appointments.cancel(db, catalog, CancelAppointment(day, uuid.uuid4()), NOW)
    assert missing.value.code == "service_not_found"
