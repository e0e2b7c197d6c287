"""Reading calendars: vacancies of a calendar-day, a service's calendars on a date."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from booking.domain import CalendarDay, CalendarIssueCode, Channel, CustomerFieldKind
from booking.service import availability, rules
from booking.service.availability import Interval
from booking.service.catalog import (
    CalendarUnitConfig,
    Catalog,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.commands import ListFirstVacancies, ListRangeVacancies
from booking.service.wallclock import LATEST_DATE, instant_of, local_today
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


# The range vacancies answer at most this many dates; the first vacancies look this far ahead.
MAX_RANGE_DAYS = 31
FIRST_VACANCIES_HORIZON_DAYS = 90
# The first vacancies read the horizon in chunks, the first this many dates long and each next
# one twice as long: 7 + 14 + 28 + 41 dates, at most four statements for 90 days.
FIRST_CHUNK_DAYS = 7


@dataclass(frozen=True, slots=True)
class UnitVacancies:
    """The vacant starts of one calendar unit on one date."""

    on_date: date
    cu_index: int
    slots: list[int]


@dataclass(frozen=True, slots=True)
class VacanciesOfDays:
    service_type: ServiceTypeConfig
    days: list[UnitVacancies]  # by date, then cuIndex


@dataclass(frozen=True, slots=True)
class _Searched:
    """What a search over dates and units looks at: the open calendar-days in the agents'
    window, by date then cuIndex."""

    service: ServiceConfig
    service_type: ServiceTypeConfig
    cu_indexes: list[int]
    open_days: list[tuple[date, CalendarUnitConfig]]


def _searched(
    catalog: Catalog,
    service_id: uuid.UUID,
    service_type_id: uuid.UUID,
    cu_indexes: tuple[int, ...],
    channel: Channel | None,
    first_date: date,
    last_date: date,
    now: datetime,
) -> _Searched:
    """The calendar-days from `first_date` to `last_date` a booking made now could take a place
    in: the unit open that date, the date in the agents' window (past dates, dates before the
    minimum notice reaches and dates beyond the window are not). None at all when the agents'
    booking is off or the service type does not offer `channel`: a booking would be refused."""
    service = rules.find_service(catalog, service_id)
    service_type = rules.find_service_type(service, service_type_id)
    units = [
        rules.find_calendar_unit(service, cu_index)
        for cu_index in sorted(set(cu_indexes) or service.units)
    ]
    window = service.agents_window
    searched = _Searched(service, service_type, [u.cu_index for u in units], [])
    if not window.active or (channel is not None and channel not in service_type.channels):
        return searched
    on_date = first_date
    while on_date <= last_date:
        for unit in units:
            if unit.day(on_date).working and rules.in_window(window, on_date, now, unit.zone):
                searched.open_days.append((on_date, unit))
        on_date += timedelta(days=1)
    return searched


def _vacant_now(
    searched: _Searched,
    on_date: date,
    unit: CalendarUnitConfig,
    booked: tuple[list[int], list[int]] | None,
    now: datetime,
) -> list[int]:
    starts, ends = booked or ([], [])
    vacant = availability.vacant_starts_of(
        unit.day(on_date), starts, ends, searched.service_type.duration_minutes
    )
    notice = searched.service.agents_window.minimum_notice_minutes
    return rules.bookable_now(unit, on_date, vacant, now, notice)


def _days_after(on_date: date, days: int) -> date:
    """`days` after `on_date`, or the last date a request can name if that is earlier."""
    latest = LATEST_DATE - timedelta(days=days)
    return on_date + timedelta(days=days) if on_date <= latest else LATEST_DATE


async def range_vacancies(
    db: Database, catalog: Catalog, query: ListRangeVacancies, now: datetime
) -> VacanciesOfDays:
    """The vacant starts of every open calendar-day of the range in the agents' window, each
    exactly what `vacancies` answers for it: one statement reads every interval of the range
    (appointments and live holds), none when no date of it is open."""
    rules.check_date_range(query.first_date, query.last_date, MAX_RANGE_DAYS)
    searched = _searched(
        catalog,
        query.service_id,
        query.service_type_id,
        query.cu_indexes,
        query.channel,
        query.first_date,
        query.last_date,
        now,
    )
    if not searched.open_days:
        return VacanciesOfDays(searched.service_type, [])
    async with db.read() as conn:
        booked = await store.booked_of_range(
            conn,
            searched.service.id,
            searched.open_days[0][0],
            searched.open_days[-1][0],
            searched.cu_indexes,
            now,
        )
    days = [
        UnitVacancies(
            on_date,
            unit.cu_index,
            _vacant_now(searched, on_date, unit, booked.get((on_date, unit.cu_index)), now),
        )
        for on_date, unit in searched.open_days
    ]
    return VacanciesOfDays(searched.service_type, days)


async def first_vacancies(
    db: Database, catalog: Catalog, query: ListFirstVacancies, now: datetime
) -> VacanciesOfDays:
    """The first `query.days` dates from `query.from_date` on (at most
    FIRST_VACANCIES_HORIZON_DAYS ahead) on which some unit has a vacant start, each unit's
    earliest one (its `slots` hold that one start; a unit with none that date is left out).
    The horizon is read in growing chunks until enough dates are found: at most four
    statements, on one connection."""
    last_date = _days_after(query.from_date, FIRST_VACANCIES_HORIZON_DAYS - 1)
    searched = _searched(
        catalog,
        query.service_id,
        query.service_type_id,
        query.cu_indexes,
        query.channel,
        query.from_date,
        last_date,
        now,
    )
    found: list[UnitVacancies] = []
    dates_found = 0
    open_days = searched.open_days
    chunk_days = FIRST_CHUNK_DAYS
    async with db.read() as conn:
        while open_days and dates_found < query.days:
            chunk_end = _days_after(open_days[0][0], chunk_days - 1)
            chunk = [(d, unit) for d, unit in open_days if d <= chunk_end]
            open_days = open_days[len(chunk) :]
            chunk_days *= 2
            booked = await store.booked_of_range(
                conn, searched.service.id, chunk[0][0], chunk[-1][0], searched.cu_indexes, now
            )
            for on_date, unit in chunk:
                if dates_found == query.days and found[-1].on_date != on_date:
                    break
                vacant = _vacant_now(
                    searched, on_date, unit, booked.get((on_date, unit.cu_index)), now
                )
                if vacant:
                    if not found or found[-1].on_date != on_date:
                        dates_found += 1
                    found.append(UnitVacancies(on_date, unit.cu_index, vacant[:1]))
    return VacanciesOfDays(searched.service_type, found)


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
