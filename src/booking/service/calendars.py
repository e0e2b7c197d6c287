"""Reading calendars: vacancies, a service's calendars on a date, appointment listings."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.service import availability
from booking.service.appointments import (
    CANCELLED,
    AppointmentRecord,
    record_from_row,
    select_appointments,
)
from booking.service.availability import Interval
from booking.service.booking import (
    booked_intervals,
    find_calendar_unit,
    find_service,
    find_service_type,
    future_vacant_starts,
)
from booking.service.catalog import (
    CalendarUnitConfig,
    Catalog,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.errors import NotFound
from booking.service.wallclock import instant_of, local_today
from booking.store.models import Appointment


@dataclass(frozen=True, slots=True)
class Vacancies:
    service_type: ServiceTypeConfig
    slots: list[int]


async def vacancies(
    conn: asyncpg.Connection,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    cu_index: int,
    service_type_id: uuid.UUID,
    now: datetime,
) -> Vacancies:
    """Vacant starts that a booking made now would get: the booking rule's own model, minus
    past, non-existent (DST gap) and out-of-window times. Closed dates give no slots."""
    service = find_service(catalog, service_id)
    unit = find_calendar_unit(service, cu_index)
    service_type = find_service_type(service, service_type_id)
    if not is_bookable_date(service, on_date, local_today(now, unit.zone)):
        return Vacancies(service_type, [])
    booked = await booked_intervals(conn, service_id, cu_index, on_date)
    slots = future_vacant_starts(unit, on_date, booked, service_type.duration_minutes, now)
    return Vacancies(service_type, slots)


def is_bookable_date(service: ServiceConfig, on_date: date, today: date) -> bool:
    if on_date < today:
        return False
    window = service.booking_window_days
    return window is None or on_date <= today + timedelta(days=window)


@dataclass(frozen=True, slots=True)
class CalendarStats:
    appointment_count: int
    capacity_minutes: int
    minutes_booked: int
    booking_rate: float
    is_fully_booked: bool


@dataclass(frozen=True, slots=True)
class CalendarOnDate:
    service: ServiceConfig
    on_date: date
    cu_index: int
    capacity: int
    slot_minutes: int
    time_zone: str
    working_hours: tuple[Interval, ...]
    is_closed: bool
    is_past_date: bool
    is_in_booking_window: bool
    stats: CalendarStats


async def calendars_on_date(
    conn: AsyncConnection,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    now: datetime,
) -> list[CalendarOnDate]:
    """Every calendar unit of the service on that date, with stats: one query for all units."""
    service = find_service(catalog, service_id)
    a = Appointment
    booked: dict[int, list[Interval]] = defaultdict(list)
    for cu_index, start, duration in await conn.execute(
        select(a.cu_index, a.start_minute, a.duration_minutes).where(
            a.service_id == service_id, a.on_date == on_date, a.status != CANCELLED
        )
    ):
        booked[cu_index].append(Interval(start, start + duration))

    durations = sorted({t.duration_minutes for t in service.types.values()})
    result = []
    for cu_index in sorted(service.units):
        unit = service.units[cu_index]
        day = unit.day(on_date)
        intervals = booked[cu_index]
        minutes_booked = sum(i.minutes for i in intervals)
        capacity_minutes = day.capacity_minutes
        today = local_today(now, unit.zone)
        fully_booked = (
            bool(day.working)
            and bool(durations)
            and not _any_vacant_start(unit, on_date, intervals, durations)
        )
        result.append(
            CalendarOnDate(
                service=service,
                on_date=on_date,
                cu_index=cu_index,
                capacity=unit.capacity,
                slot_minutes=unit.slot_minutes,
                time_zone=unit.zone.key,
                working_hours=day.working,
                is_closed=not day.working,
                is_past_date=on_date < today,
                is_in_booking_window=is_bookable_date(service, on_date, today),
                stats=CalendarStats(
                    appointment_count=len(intervals),
                    capacity_minutes=capacity_minutes,
                    minutes_booked=minutes_booked,
                    booking_rate=round(minutes_booked / capacity_minutes, 4)
                    if capacity_minutes
                    else 0.0,
                    is_fully_booked=fully_booked,
                ),
            )
        )
    return result


def _any_vacant_start(
    unit: CalendarUnitConfig, on_date: date, booked: list[Interval], durations: list[int]
) -> bool:
    """Whether some service type still has a vacant start that exists on this date (a wall time
    in a spring-forward gap is no start). Time passing does not make a calendar fully booked, so
    past starts of today still count."""
    day = unit.day(on_date)
    return any(
        instant_of(on_date, start, unit.zone) is not None
        for duration in durations
        for start in availability.vacant_starts(day, booked, duration)
    )


async def list_appointments(
    conn: AsyncConnection,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    cu_index: int,
    customer_record_id: uuid.UUID | None = None,
) -> list[AppointmentRecord]:
    service = find_service(catalog, service_id)
    find_calendar_unit(service, cu_index)
    a = Appointment
    query = (
        select_appointments()
        .where(a.service_id == service_id, a.on_date == on_date, a.cu_index == cu_index)
        .order_by(a.start_minute, a.ticket_number)
    )
    if customer_record_id is not None:
        query = query.where(a.customer_record_id == customer_record_id)
    return [record_from_row(row) for row in await conn.execute(query)]


async def get_appointment(
    conn: AsyncConnection, catalog: Catalog, case_id: uuid.UUID
) -> AppointmentRecord:
    a = Appointment
    row = (
        await conn.execute(
            select_appointments().where(
                a.id == case_id, a.organization_id == catalog.organization_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("No such appointment.", code="appointment_not_found", field="caseId")
    return record_from_row(row)
