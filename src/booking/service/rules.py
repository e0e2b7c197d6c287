"""The booking rules: pure functions of the configuration, the command, the booked intervals
and the time, with no I/O. A booking is validated here, in two steps: `check_booking` (every
rule that does not depend on other bookings, run before a connection is taken) and
`check_vacant` (run holding the calendar-day's lock, on the intervals read under it). The
orchestration that runs them around the database is `booking.service.appointments`."""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from booking.domain import (
    CHECKED_IN_STATUSES,
    AppointmentStatus,
    CalendarDay,
    Channel,
    CheckInMode,
    FieldKind,
)
from booking.service import availability
from booking.service.availability import Interval, Verdict
from booking.service.catalog import (
    ApplicationConfig,
    BookingWindow,
    CalendarUnitConfig,
    Catalog,
    FieldTypeConfig,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.commands import BookAppointment, CheckIn, HoldSlot
from booking.service.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RuleViolation,
    several,
)
from booking.service.wallclock import instant_of, local_today
from booking.store.appointments import AppointmentRecord
from booking.store.holds import HoldRecord

MAX_TEXT_FIELD_LENGTH = 2000


# --- configuration lookups shared by every calendar route -------------------------------------


def find_service(catalog: Catalog, service_id: uuid.UUID) -> ServiceConfig:
    service = catalog.services.get(service_id)
    if service is None:
        raise NotFound("No such service.", code="service_not_found", field="serviceId")
    return service


def find_calendar_unit(service: ServiceConfig, cu_index: int) -> CalendarUnitConfig:
    unit = service.units.get(cu_index)
    if unit is None:
        raise NotFound(
            f"Service has no calendar unit {cu_index}.",
            code="calendar_unit_not_found",
            field="cuIndex",
        )
    return unit


def find_service_type(service: ServiceConfig, service_type_id: uuid.UUID) -> ServiceTypeConfig:
    service_type = service.types.get(service_type_id)
    if service_type is None:
        raise NotFound(
            "No such service type for this service.",
            code="service_type_not_found",
            field="serviceTypeId",
        )
    return service_type


def find_calendar(catalog: Catalog, day: CalendarDay) -> tuple[ServiceConfig, CalendarUnitConfig]:
    """The service and calendar unit of `day`, if they are the caller's organization's: checked
    before any lock is taken, so a stranger's calendar-day never makes anyone wait."""
    service = find_service(catalog, day.service_id)
    return service, find_calendar_unit(service, day.cu_index)


# --- the rules on the request itself ----------------------------------------------------------
#
# Each check appends the rules it finds broken to `broken` instead of raising, so that one answer
# names every independent broken rule (`errors.several`); a valid booking raises nothing.


def check_language(catalog: Catalog, language: str | None, broken: list[DomainError]) -> str:
    """The booking's language: the organization's default when absent or empty."""
    if not language:
        return catalog.default_language
    if language not in catalog.supported_languages:
        broken.append(
            RuleViolation(
                f"Language '{language}' is not supported; use one of "
                f"{', '.join(catalog.supported_languages)}.",
                code="language_not_supported",
                field="language",
            )
        )
    return language


def normalize_phone(raw: str, region: str, broken: list[DomainError]) -> str | None:
    """Parse with the organization's default region; answer E.164 (None when invalid)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        broken.append(
            RuleViolation(
                "Not a valid phone number.", code="invalid_phone_number", field="contactPhoneNumber"
            )
        )
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str, broken: list[DomainError]) -> str | None:
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as error:
        broken.append(
            RuleViolation(
                f"Not a valid email address: {error}", code="invalid_email", field="contactEmail"
            )
        )
        return None


_FIELD_RULES = {
    FieldKind.TEXT: f"a string of at most {MAX_TEXT_FIELD_LENGTH} characters",
    FieldKind.NUMBER: "a number",
    FieldKind.BOOLEAN: "true or false",
    FieldKind.DATE: "a date as YYYY-MM-DD",
}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def field_value_refusal(field_type: FieldTypeConfig, value: Any) -> RuleViolation | None:
    """Whether `value` is of `field_type`'s kind. None: it is."""
    kind = field_type.kind
    ok: bool
    if kind is FieldKind.TEXT:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT_FIELD_LENGTH
    elif kind is FieldKind.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is FieldKind.BOOLEAN:
        ok = isinstance(value, bool)
    elif kind is FieldKind.DATE:
        # fromisoformat alone also takes ISO week dates (2026-W01-1) and basic format.
        ok = isinstance(value, str) and _ISO_DATE.fullmatch(value) is not None
        if ok:
            try:
                date.fromisoformat(value)
            except ValueError:
                ok = False
    else:  # choice
        ok = isinstance(value, str) and value in field_type.options
    if ok:
        return None
    rule = _FIELD_RULES.get(kind) or f"one of {', '.join(field_type.options)}"
    return RuleViolation(
        f"Field '{field_type.name}' must be {rule}.",
        code="invalid_field_value",
        field=f"fields.{field_type.id}",
    )


def check_fields(
    catalog: Catalog, fields: dict[uuid.UUID, Any], broken: list[DomainError]
) -> dict[str, Any]:
    """The valid `fields` by field type id; each unknown field type, bad value and missing
    required field is a broken rule of its own."""
    checked: dict[str, Any] = {}
    for field_type_id, value in fields.items():
        field_type = catalog.field_types.get(field_type_id)
        if field_type is None:
            broken.append(
                NotFound(
                    f"No such field type: {field_type_id}.",
                    code="field_type_not_found",
                    field=f"fields.{field_type_id}",
                )
            )
        elif (refusal := field_value_refusal(field_type, value)) is not None:
            broken.append(refusal)
        else:
            checked[str(field_type_id)] = value
    for field_type in catalog.field_types.values():
        if field_type.required and field_type.id not in fields:
            broken.append(
                RuleViolation(
                    f"Field '{field_type.name}' is required.",
                    code="required_field_missing",
                    field=f"fields.{field_type.id}",
                )
            )
    return checked


def check_tags(
    catalog: Catalog, tag_ids: list[uuid.UUID], broken: list[DomainError]
) -> list[uuid.UUID]:
    """A tag listed twice is one broken rule; each unknown tag is one more."""
    if len(set(tag_ids)) != len(tag_ids):
        broken.append(
            RuleViolation("tagIds lists a tag twice.", code="duplicate_tag_ids", field="tagIds")
        )
    for tag_id in dict.fromkeys(tag_ids):  # a tag listed twice is unknown once
        if tag_id not in catalog.tags:
            broken.append(NotFound(f"No such tag: {tag_id}.", code="tag_not_found", field="tagIds"))
    return tag_ids


def date_refusal(service: ServiceConfig, on_date: date, today: date) -> RuleViolation | None:
    """The booking window, the one rule on dates: not before `today` (the calendar's), and at
    most the agents' window's days after it (bookings over this API are the agents'). None:
    bookable."""
    if on_date < today:
        return RuleViolation("The date is in the past.", code="date_in_past", field="date")
    window = service.agents_window.days_ahead
    if window is not None and (on_date - today).days > window:
        return RuleViolation(
            f"The service can be booked at most {window} days ahead.",
            code="outside_booking_window",
            field="date",
        )
    return None


def in_window(window: BookingWindow, on_date: date, now: datetime, zone: ZoneInfo) -> bool:
    """Whether some of `on_date` (local to `zone`) can be booked in `window` now: not before
    the date that the minimum notice reaches, at most `days_ahead` after today."""
    today = local_today(now, zone)
    earliest = local_today(now + timedelta(minutes=window.minimum_notice_minutes), zone)
    return earliest <= on_date and (
        window.days_ahead is None or (on_date - today).days <= window.days_ahead
    )


def check_date_and_start(
    service: ServiceConfig,
    unit: CalendarUnitConfig,
    day: availability.WorkingDay,
    duration: int,
    on_date: date,
    start: int,
    bypass_timeslot_check: bool,
    now: datetime,
    broken: list[DomainError],
) -> datetime | None:
    """The instant the appointment starts (None when its wall time does not exist), after the
    rules on `date` and `startTime` that need no other booking. Each of the two fields names at
    most one broken rule, the first in this order: the window (past, too far ahead), the wall
    time (it does not exist, it has passed, less than the minimum notice ahead), the calendar
    open that day, its working hours, its
    grid. A rule that another presupposes is skipped when that one is broken: a start on a past
    date has passed anyway, and a closed day has no hours to fit in."""
    notice = service.agents_window.minimum_notice_minutes
    today = local_today(now, unit.zone)
    refused_date = date_refusal(service, on_date, today)
    if refused_date is not None:
        broken.append(refused_date)

    starts_at = instant_of(on_date, start, unit.zone)
    refused_start: RuleViolation | None = None
    if starts_at is None:
        refused_start = RuleViolation(
            "That wall-clock time does not exist on this date (daylight-saving change).",
            code="nonexistent_local_time",
            field="startTime",
        )
    elif starts_at <= now and on_date >= today:
        refused_start = RuleViolation(
            "The start time has passed.", code="start_time_passed", field="startTime"
        )
    elif starts_at < now + timedelta(minutes=notice) and refused_date is None:
        refused_start = RuleViolation(
            f"The service must be booked at least {notice} minutes ahead.",
            code="short_notice",
            field="startTime",
        )
    if refused_start is not None:
        broken.append(refused_start)

    # Hours and the grid do not depend on other bookings: refuse early, before taking the lock.
    verdict = availability.check_start(
        day, [], start, duration, bypass_timeslot_check=bypass_timeslot_check
    )
    if verdict is Verdict.CLOSED and refused_date is None:
        broken.append(
            RuleViolation("The calendar is closed on this date.", code="closed_date", field="date")
        )
    elif verdict is Verdict.OUTSIDE_WORKING_HOURS and refused_start is None:
        broken.append(
            RuleViolation(
                f"An appointment of {duration} minutes at {start} does not fit inside the "
                "working hours of this date.",
                code="outside_working_hours",
                field="startTime",
            )
        )
    elif verdict is Verdict.OFF_GRID and refused_start is None:
        broken.append(
            RuleViolation(
                f"{start} is not on the {day.slot_minutes}-minute slot grid.",
                code="start_not_on_grid",
                field="startTime",
            )
        )
    return starts_at


def future_vacant_starts(
    unit: CalendarUnitConfig,
    on_date: date,
    booked: list[Interval],
    duration: int,
    now: datetime,
    notice_minutes: int,
) -> list[int]:
    """Vacant starts that are also bookable now: existing wall times, not yet passed, at least
    `notice_minutes` ahead."""
    vacant = availability.vacant_starts(unit.day(on_date), booked, duration)
    return bookable_now(unit, on_date, vacant, now, notice_minutes)


def bookable_now(
    unit: CalendarUnitConfig, on_date: date, vacant: list[int], now: datetime, notice_minutes: int
) -> list[int]:
    """The `vacant` starts that exist as wall times, have not passed and are at least
    `notice_minutes` ahead."""
    earliest = now + timedelta(minutes=notice_minutes)
    return [
        start
        for start in vacant
        if (instant := instant_of(on_date, start, unit.zone)) is not None
        and instant > now
        and instant >= earliest
    ]


def check_date_range(first_date: date, last_date: date, max_days: int) -> None:
    """`from` to `to` (both included) names at most `max_days` dates, in order."""
    if last_date < first_date:
        raise RuleViolation(
            "'to' must not be before 'from'.", code="invalid_date_range", field="to"
        )
    if (last_date - first_date).days >= max_days:
        raise RuleViolation(
            f"The range may span at most {max_days} days.",
            code="date_range_too_long",
            field="to",
        )


@dataclass(frozen=True, slots=True)
class CheckedSlot:
    """A start on a calendar-day that passed every rule that needs neither customer data nor
    the other bookings: what a hold, a booking and a reschedule all check."""

    day: CalendarDay
    start_minute: int
    bypass_timeslot_check: bool
    service: ServiceConfig
    unit: CalendarUnitConfig
    service_type: ServiceTypeConfig
    working_day: availability.WorkingDay
    starts_at: datetime


def check_agents_booking_active(service: ServiceConfig) -> None:
    """Bookings over this API are the agents': nothing takes a place when their booking is
    switched off (refused at once, before any other rule)."""
    if not service.agents_window.active:
        raise RuleViolation(
            "Booking by agents (this API) is not active for this service.",
            code="agents_booking_inactive",
        )


def offered_type(
    catalog: Catalog,
    day: CalendarDay,
    service_type_id: uuid.UUID,
    channel: Channel,
    broken: list[DomainError],
) -> tuple[ServiceConfig, CalendarUnitConfig, ServiceTypeConfig]:
    """The calendar and the service type, which must offer `channel`. An unknown service,
    calendar unit or service type, and the agents' booking switched off, are refused at once
    (every other rule depends on them)."""
    service, unit = find_calendar(catalog, day)
    service_type = find_service_type(service, service_type_id)
    check_agents_booking_active(service)
    if channel not in service_type.channels:
        broken.append(
            RuleViolation(
                f"Service type '{service_type.name}' does not support channel "
                f"'{channel}'; it supports {', '.join(service_type.channels)}.",
                code="channel_not_supported",
                field="channel",
            )
        )
    return service, unit, service_type


def timed_slot(
    service: ServiceConfig,
    unit: CalendarUnitConfig,
    service_type: ServiceTypeConfig,
    day: CalendarDay,
    start_minute: int,
    bypass_timeslot_check: bool,
    now: datetime,
    broken: list[DomainError],
) -> CheckedSlot | None:
    """The slot, after the rules of time that do not depend on other bookings
    (`check_date_and_start`); None when its wall time does not exist. It is checked only
    when `broken` stayed empty."""
    working_day = unit.day(day.on_date)
    starts_at = check_date_and_start(
        service,
        unit,
        working_day,
        service_type.duration_minutes,
        day.on_date,
        start_minute,
        bypass_timeslot_check,
        now,
        broken,
    )
    if starts_at is None:
        return None
    return CheckedSlot(
        day=day,
        start_minute=start_minute,
        bypass_timeslot_check=bypass_timeslot_check,
        service=service,
        unit=unit,
        service_type=service_type,
        working_day=working_day,
        starts_at=starts_at,
    )


def checked_slot(slot: CheckedSlot | None, broken: list[DomainError]) -> CheckedSlot:
    """`slot` once every rule was checked: the one error naming each broken rule, if any."""
    if broken:
        raise several(broken)
    assert slot is not None  # a wall time that does not exist is a broken rule
    return slot


@dataclass(frozen=True, slots=True)
class CheckedBooking:
    """A booking request that passed every rule that does not depend on other bookings."""

    command: BookAppointment
    slot: CheckedSlot
    language: str
    phone: str | None
    email: str | None
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]


_REQUIRED_FIELD = {
    "customer": "customerRecordId",
    "phone": "contactPhoneNumber",
    "email": "contactEmail",
}


def check_booking(catalog: Catalog, command: BookAppointment, now: datetime) -> CheckedBooking:
    """Every rule that needs no database: run before a connection is taken, so that the
    transaction (and the calendar's lock) lasts only as long as the database work.

    An unknown service, calendar unit or service type is refused at once (every other rule
    depends on them). The other rules are independent of each other: all are checked, and
    every broken one is in the one error raised (`errors.several`), in this order."""
    broken: list[DomainError] = []
    service, unit, service_type = offered_type(
        catalog, command.day, command.service_type_id, command.channel, broken
    )
    language = check_language(catalog, command.language, broken)

    phone = command.contact_phone or None
    email = command.contact_email or None
    required = (
        (service.requires_customer, command.customer_record_id, "a customer record", "customer"),
        (service.requires_phone, phone, "a phone number", "phone"),
        (service.requires_email, email, "an email address", "email"),
    )
    for needed, given, what, code in required:
        if needed and given is None:
            broken.append(
                RuleViolation(
                    f"This service requires {what}.",
                    code=f"{code}_required",
                    field=_REQUIRED_FIELD[code],
                )
            )
    phone = normalize_phone(phone, catalog.default_phone_region, broken) if phone else None
    email = normalize_email(email, broken) if email else None
    fields = check_fields(catalog, command.fields, broken)
    tag_ids = check_tags(catalog, command.tag_ids, broken)
    slot = timed_slot(
        service,
        unit,
        service_type,
        command.day,
        command.start_minute,
        command.bypass_timeslot_check,
        now,
        broken,
    )
    return CheckedBooking(
        command=command,
        slot=checked_slot(slot, broken),
        language=language,
        phone=phone,
        email=email,
        fields=fields,
        tag_ids=tag_ids,
    )


def intervals_of(rows: list[Any]) -> list[Interval]:
    """Intervals from (start_minute, duration_minutes) rows."""
    return [Interval(start, start + duration) for start, duration in rows]


def nearest_vacancies(slot: CheckedSlot, booked: list[Interval], now: datetime) -> list[int]:
    """Up to three starts near the requested one that a booking made now would get."""
    vacant = future_vacant_starts(
        slot.unit,
        slot.day.on_date,
        booked,
        slot.service_type.duration_minutes,
        now,
        slot.service.agents_window.minimum_notice_minutes,
    )
    return availability.nearest(vacant, slot.start_minute)


def check_vacant(slot: CheckedSlot, booked: list[Interval], now: datetime) -> None:
    """The rule that depends on other bookings (and live holds), judged on the intervals read
    holding the calendar-day's lock: 409 with the nearest vacant starts when the slot is
    taken."""
    if not is_vacant(slot, booked):
        raise slot_taken(slot, booked, now)


def is_vacant(slot: CheckedSlot, booked: list[Interval]) -> bool:
    """Whether the slot is vacant among `booked`: the calendar-day's intervals, or only those
    overlapping the slot (the others cannot make it full)."""
    verdict = availability.check_start(
        slot.working_day,
        booked,
        slot.start_minute,
        slot.service_type.duration_minutes,
        bypass_timeslot_check=slot.bypass_timeslot_check,
    )
    return verdict is not Verdict.FULL


def slot_taken(slot: CheckedSlot, booked: list[Interval], now: datetime) -> Conflict:
    """The refusal of a slot that is not vacant, with the nearest vacant starts among `booked`
    (the calendar-day's intervals, all of them)."""
    return Conflict(
        "The slot is not vacant.",
        code="slot_not_vacant",
        field="startTime",
        extra={"nearestVacancies": nearest_vacancies(slot, booked, now)},
    )


def new_appointment(
    checked: CheckedBooking,
    organization_id: uuid.UUID,
    application_id: uuid.UUID,
    case_id: uuid.UUID,
    now: datetime,
    hold: HoldRecord | None = None,
) -> dict[str, Any]:
    """The row of a new appointment, by column (see `store.appointments.INSERTED_COLUMNS`),
    taking the place of `hold` when it consumed one."""
    command, slot = checked.command, checked.slot
    service, unit = slot.service, slot.unit
    return {
        "id": case_id,
        "organization_id": organization_id,
        "service_id": service.id,
        "cu_index": unit.cu_index,
        "on_date": command.day.on_date,
        "start_minute": command.start_minute,
        "duration_minutes": slot.service_type.duration_minutes,
        "no_show_probability": slot.service_type.no_show_rate,
        "starts_at": slot.starts_at,
        "time_zone": unit.zone.key,
        "service_type_id": slot.service_type.id,
        "status": AppointmentStatus.PLANNED,
        "status_date": now,
        "ticket_prefix": service.ticket_prefix,
        "customer_record_id": command.customer_record_id,
        "channel": command.channel,
        "language": checked.language,
        "contact_phone": checked.phone,
        "contact_email": checked.email,
        "prevent_self_check_in": command.prevent_self_check_in,
        "fields": checked.fields,
        "tag_ids": checked.tag_ids,
        "bypassed_timeslot_check": command.bypass_timeslot_check,
        "created_by_application_id": application_id,
        "created_at": now,
        "reservation_token": None if hold is None else hold.token,
        "reservation_expires_at": None if hold is None else hold.expires_at,
        "rescheduled_from_date": None,
        "rescheduled_from_cu_index": None,
        "rescheduled_from_start": None,
    }


def needs_cancelling(record: AppointmentRecord, now: datetime) -> bool:
    """Whether `record` is to be cancelled now: False when it already is (cancelling again
    answers the same); a checked-in, closed or started appointment cannot be."""
    if record.status is AppointmentStatus.CANCELLED:
        return False
    if record.status in CHECKED_IN_STATUSES:
        raise RuleViolation(
            "A checked-in appointment cannot be cancelled.", code="appointment_checked_in"
        )
    if record.status is not AppointmentStatus.PLANNED:
        raise RuleViolation(
            f"An appointment with status {record.status} cannot be cancelled.",
            code="appointment_closed",
        )
    if record.starts_at <= now:
        raise RuleViolation(
            "An appointment that has started cannot be cancelled.", code="appointment_in_past"
        )
    return True


# --- slot holds ---------------------------------------------------------------------------------


def hold_length(
    application: ApplicationConfig, hold_seconds: int | None, broken: list[DomainError]
) -> timedelta:
    """How long a new hold lasts: the request's length or the application's default, at most
    the application's maximum (a longer one is a broken rule)."""
    seconds = application.hold_default_seconds if hold_seconds is None else hold_seconds
    if seconds > application.hold_max_seconds:
        broken.append(
            RuleViolation(
                f"A hold lasts at most {application.hold_max_seconds} seconds.",
                code="hold_too_long",
                field="holdSeconds",
            )
        )
    return timedelta(seconds=seconds)


def check_hold(
    catalog: Catalog, application: ApplicationConfig, command: HoldSlot, now: datetime
) -> tuple[CheckedSlot, timedelta]:
    """Every booking rule that needs no customer data (the channel, the window, the start, the
    hours, the grid), and the hold's length: each broken one in the one error raised, as
    `check_booking` does."""
    broken: list[DomainError] = []
    service, unit, service_type = offered_type(
        catalog, command.day, command.service_type_id, command.channel, broken
    )
    slot = timed_slot(
        service, unit, service_type, command.day, command.start_minute, False, now, broken
    )
    length = hold_length(application, command.hold_seconds, broken)
    return checked_slot(slot, broken), length


def extended_expiry(
    hold: HoldRecord, application: ApplicationConfig, hold_seconds: int | None, now: datetime
) -> datetime:
    """The expiry of a hold's one extension: `hold_seconds` from now, or as late as the
    application's maximum allows (counted from the hold's creation); never earlier than it
    was."""
    if not hold.is_live(now):
        raise Conflict(
            "The reservation has expired, was released or was used by a booking.",
            code="reservation_expired",
            field="reservationToken",
        )
    if hold.extended:
        raise Conflict(
            "A reservation can be extended once.",
            code="reservation_already_extended",
            field="reservationToken",
        )
    latest = hold.created_at + timedelta(seconds=application.hold_max_seconds)
    expiry = latest if hold_seconds is None else now + timedelta(seconds=hold_seconds)
    if expiry > latest:
        raise RuleViolation(
            f"A hold lasts at most {application.hold_max_seconds} seconds in all; it can be "
            f"extended until {latest.isoformat()}.",
            code="hold_too_long",
            field="holdSeconds",
        )
    return max(expiry, hold.expires_at)


def check_hold_matches(hold: HoldRecord, slot: CheckedSlot) -> None:
    """A booking takes the place its hold keeps: the same calendar, start and service type."""
    held = (hold.service_id, hold.cu_index, hold.on_date, hold.start_minute, hold.service_type_id)
    asked = (
        slot.day.service_id,
        slot.day.cu_index,
        slot.day.on_date,
        slot.start_minute,
        slot.service_type.id,
    )
    if held != asked:
        raise Conflict(
            "The reservation holds another calendar, start time or service type.",
            code="reservation_mismatch",
            field="reservationToken",
        )


def hold_gone(slot: CheckedSlot, booked: list[Interval], now: datetime) -> Conflict:
    """The refusal of a booking whose hold is no longer live."""
    return Conflict(
        "The reservation has expired, was released or was used by a booking.",
        code="reservation_expired",
        field="reservationToken",
        extra={"nearestVacancies": nearest_vacancies(slot, booked, now)},
    )


def unknown_hold() -> NotFound:
    """A token this application never got (another application's holds are unknown to it)."""
    return NotFound("No such reservation.", code="reservation_not_found", field="reservationToken")


# --- check-in and reschedule -------------------------------------------------------------------


def check_in_status(
    record: AppointmentRecord, service: ServiceConfig, mode: CheckInMode, now: datetime
) -> AppointmentStatus | None:
    """The status a check-in gives `record` now (the service's initial case status), or None
    when it is checked in already: a repeat answers the same, never checks out."""
    if mode is CheckInMode.KIOSK and record.prevent_self_check_in:
        raise Forbidden(
            "This appointment does not allow self check-in; an agent can check it in.",
            code="self_check_in_not_allowed",
            field="mode",
        )
    if record.status in CHECKED_IN_STATUSES:
        return None
    if record.status is AppointmentStatus.CANCELLED:
        raise RuleViolation(
            "A cancelled appointment cannot be checked in.", code="appointment_cancelled"
        )
    if record.status is not AppointmentStatus.PLANNED:
        raise RuleViolation(
            f"An appointment with status {record.status} cannot be checked in.",
            code="appointment_closed",
        )
    opens = record.starts_at - timedelta(minutes=service.check_in_minutes_before)
    closes = record.starts_at + timedelta(minutes=service.check_in_minutes_after)
    if not opens <= now <= closes:
        raise RuleViolation(
            f"Check-in is open from {service.check_in_minutes_before} minutes before the start "
            f"until {service.check_in_minutes_after} minutes after it.",
            code="outside_check_in_window",
        )
    return service.initial_case_status


@dataclass(frozen=True, slots=True)
class CheckedCheckIn:
    """The fields and tags a check-in replaces the appointment's with (beforeCheckIn's),
    checked by the rules a booking's are; None: the appointment's own."""

    fields: dict[str, Any] | None
    tag_ids: list[uuid.UUID] | None


def check_check_in(catalog: Catalog, command: CheckIn) -> CheckedCheckIn:
    """Every rule on what a check-in changes that needs no database (each broken one in the
    one error raised); the rules on the appointment itself (`check_in_status`) need its row."""
    broken: list[DomainError] = []
    fields = None if command.fields is None else check_fields(catalog, command.fields, broken)
    tag_ids = None if command.tag_ids is None else check_tags(catalog, command.tag_ids, broken)
    if broken:
        raise several(broken)
    return CheckedCheckIn(fields, tag_ids)


def check_movable(record: AppointmentRecord, now: datetime) -> None:
    """Only a planned appointment that has not started can be rescheduled."""
    if record.status in CHECKED_IN_STATUSES:
        raise RuleViolation(
            "A checked-in appointment cannot be rescheduled.", code="appointment_checked_in"
        )
    if record.status is AppointmentStatus.CANCELLED:
        raise RuleViolation(
            "A cancelled appointment cannot be rescheduled.", code="appointment_cancelled"
        )
    if record.status is not AppointmentStatus.PLANNED:
        raise RuleViolation(
            f"An appointment with status {record.status} cannot be rescheduled.",
            code="appointment_closed",
        )
    if record.starts_at <= now:
        raise RuleViolation(
            "An appointment that has started cannot be rescheduled.", code="appointment_in_past"
        )
