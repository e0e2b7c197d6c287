"""Reading calendars: vacancies of a calendar-day, a service's calendars on a date."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from booking.domain import CalendarDay, CalendarIssueCode, CustomerFieldKind
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
    window = service.agents_window
    if (
        not window.active
        or rules.date_refusal(service, day.on_date, local_today(now, unit.zone)) is not None
    ):
        return Vacancies(service_type, [])
    async with db.read() as conn:
        rows = await store.booked_intervals(conn, day, now)
    slots = rules.future_vacant_starts(
        unit,
        day.on_date,
        rules.intervals_of(rows),
        service_type.duration_minutes,
        now,
        window.minimum_notice_minutes,
    )
    return Vacancies(service_type, slots)


@dataclass(frozen=True, slots=True)
class CalendarStats:
    appointment_count: int
    # Working minutes x capacity: what could be booked (see the README's decisions).
    capacity_minutes: int
    minutes_booked: int
    booking_rate: float
    # The booked minutes weighted by 1 - each appointment's no-show probability.
    comp_minutes_booked: float
    comp_booking_rate: float
    is_fully_booked: bool


@dataclass(frozen=True, slots=True)
class CalendarIssue:
    code: CalendarIssueCode
    text: str


@dataclass(frozen=True, slots=True)
class CalendarOnDate:
    service: ServiceConfig
    on_date: date
    cu_index: int
    # The calendar-day's version: its last write, or the configuration's if that is newer.
    timestamp: datetime
    capacity: int
    slot_minutes: int
    time_zone: str
    working_hours: tuple[Interval, ...]
    is_closed: bool
    is_past_date: bool
    is_in_agents_window: bool
    is_in_self_window: bool
    stats: CalendarStats
    issues: tuple[CalendarIssue, ...]
    customers: CustomersOfCalendar


@dataclass(frozen=True, slots=True)
class CustomersOfCalendar:
    """Where a booking's customer comes from: the organization's customers table and its
    phone and email field types (None when it has none of that kind)."""

    data_table_id: uuid.UUID
    phone_field_type_id: uuid.UUID | None
    email_field_type_id: uuid.UUID | None


def customers_of(catalog: Catalog) -> CustomersOfCalendar:
    table = catalog.customers
    phone = table.first_of_kind(CustomerFieldKind.PHONE)
    email = table.first_of_kind(CustomerFieldKind.EMAIL)
    return CustomersOfCalendar(
        data_table_id=table.id,
        phone_field_type_id=phone.id if phone is not None else None,
        email_field_type_id=email.id if email is not None else None,
    )


async def calendars_on_date(
    db: Database,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    now: datetime,
) -> list[CalendarOnDate]:
    """Every calendar unit of the service on that date, with stats and timestamps: two
    statements for all units, on one connection. Live holds occupy minutes (and can make a
    calendar fully booked) but are no appointments."""
    service = rules.find_service(catalog, service_id)
    async with db.read() as conn:
        # Stamps first: a write that commits between the two reads is then answered with the
        # stamp from before it, so the next read shows a new stamp (never a change under an
        # old one).
        stamps = await store.stamps_of_service(conn, service_id, on_date)
        rows = await store.booked_of_service(conn, service_id, on_date, now)
    booked: dict[int, list[Interval]] = defaultdict(list)
    comp_minutes: dict[int, list[float]] = defaultdict(list)
    appointment_counts: dict[int, int] = defaultdict(int)
    for cu_index, start, duration, no_show_probability, held in rows:
        booked[cu_index].append(Interval(start, start + duration))
        comp_minutes[cu_index].append(duration * (1 - no_show_probability))
        appointment_counts[cu_index] += not held

    durations = sorted({t.duration_minutes for t in service.types.values()})
    customers = customers_of(catalog)
    result = []
    for cu_index in sorted(service.units):
        unit = service.units[cu_index]
        day = unit.day(on_date)
        intervals = booked[cu_index]
        minutes_booked = sum(i.minutes for i in intervals)
        comp_minutes_booked = math.fsum(comp_minutes[cu_index])
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
                timestamp=max(stamps.get(cu_index, catalog.configured_at), catalog.configured_at),
                capacity=unit.capacity,
                slot_minutes=unit.slot_minutes,
                time_zone=unit.zone.key,
                working_hours=day.working,
                is_closed=not day.working,
                is_past_date=on_date < today,
                is_in_agents_window=rules.in_window(service.agents_window, on_date, now, unit.zone),
                is_in_self_window=rules.in_window(service.self_window, on_date, now, unit.zone),
                stats=CalendarStats(
                    appointment_count=appointment_counts[cu_index],
                    capacity_minutes=capacity_minutes,
                    minutes_booked=minutes_booked,
                    booking_rate=minutes_booked / capacity_minutes if capacity_minutes else 0.0,
                    comp_minutes_booked=comp_minutes_booked,
                    comp_booking_rate=comp_minutes_booked / capacity_minutes
                    if capacity_minutes
                    else 0.0,
                    is_fully_booked=fully_booked,
                ),
                issues=calendar_issues(service, unit, on_date),
                customers=customers,
            )
        )
    return result


def calendar_issues(
    service: ServiceConfig, unit: CalendarUnitConfig, on_date: date
) -> tuple[CalendarIssue, ...]:
    """The configuration problems that keep this calendar from being booked as meant: a unit
    open on no weekday at all, a service without service types, and a date with working hours
    that no service type fits in (a closed date is no problem: it was configured so)."""
    issues = []
    if not any(unit.weekly.values()):
        issues.append(
            CalendarIssue(
                CalendarIssueCode.NO_WORKING_HOURS,
                "The calendar unit has no working hours on any weekday.",
            )
        )
    if not service.types:
        issues.append(
            CalendarIssue(CalendarIssueCode.NO_SERVICE_TYPES, "The service has no service types.")
        )
    working = unit.day(on_date).working
    longest = max((i.minutes for i in working), default=0)
    if (
        working
        and service.types
        and all(t.duration_minutes > longest for t in service.types.values())
    ):
        issues.append(
            CalendarIssue(
                CalendarIssueCode.NO_SERVICE_TYPE_FITS,
                f"No service type fits in a working interval of this date (the longest is "
                f"{longest} minutes).",
            )
        )
    return tuple(issues)


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
