"""Reading calendars: vacancies of a calendar-day, a service's calendars on a date."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from booking.domain import CalendarDay
from booking.service import availability, rules
from booking.service.availability import Interval
from booking.service.catalog import (
    CalendarUnitConfig,
    Catalog,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.wallclock import instant_of, local_today
from booking.store import appointments as store
from booking.store.db import Database


@dataclass(frozen=True, slots=True)
class Vacancies:
    service_type: ServiceTypeConfig
    slots: list[int]


async def vacancies(
    db: Database,
    catalog: Catalog,
    day: CalendarDay,
    service_type_id: uuid.UUID,
    now: datetime,
) -> Vacancies:
    """Vacant starts that a booking made now would get: the booking rule's own model, minus
    past, non-existent (DST gap) and out-of-window times. Closed dates give no slots; a live
    hold occupies its place like an appointment."""
    service, unit = rules.find_calendar(catalog, day)
    service_type = rules.find_service_type(service, service_type_id)
    if rules.date_refusal(service, day.on_date, local_today(now, unit.zone)) is not None:
        return Vacancies(service_type, [])
    async with db.read() as conn:
        rows = await store.booked_intervals(conn, day, now)
    slots = rules.future_vacant_starts(
        unit, day.on_date, rules.intervals_of(rows), service_type.duration_minutes, now
    )
    return Vacancies(service_type, slots)


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
    db: Database,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    now: datetime,
) -> list[CalendarOnDate]:
    """Every calendar unit of the service on that date, with stats: one query for all units.
    Live holds occupy minutes (and can make a calendar fully booked) but are no appointments."""
    service = rules.find_service(catalog, service_id)
    async with db.read() as conn:
        rows = await store.booked_intervals_of_service(conn, service_id, on_date, now)
    booked: dict[int, list[Interval]] = defaultdict(list)
    appointment_counts: dict[int, int] = defaultdict(int)
    for cu_index, start, duration, held in rows:
        booked[cu_index].append(Interval(start, start + duration))
        appointment_counts[cu_index] += not held

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
                is_in_booking_window=rules.date_refusal(service, on_date, today) is None,
                stats=CalendarStats(
                    appointment_count=appointment_counts[cu_index],
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
