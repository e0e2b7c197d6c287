"""Booking and cancelling: the one place where double booking is prevented.

How: every booking of a calendar unit on a date runs in one transaction that first takes a
transaction-scoped advisory lock keyed by (service, calendar unit, date). With that lock held it
reads the occupied intervals, decides vacancy with the pure availability model, takes the next
ticket number and inserts. A second booking of the same calendar and date waits on the lock, then
sees the first one's row; bookings of other calendars take other locks and never wait. The lock
lives in Postgres, so this holds for any number of server processes.

Round trips of a booking (configuration comes from the per-process catalog cache; every rule that
needs no database is checked before a connection is taken): BEGIN with the lock, read occupied
intervals, insert-with-ticket (one CTE statement), COMMIT; plus one read of the customer record
when the request names one. The statements are written once as SQL and sent on the asyncpg
connection, which prepares each once per connection.
"""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from booking.service import availability
from booking.service.appointments import (
    CANCELLED,
    CHECKED_IN,
    PLANNED,
    SELECT_APPOINTMENTS_SQL,
    AppointmentRecord,
    record_from_row,
)
from booking.service.availability import Interval, Verdict
from booking.service.catalog import (
    CalendarUnitConfig,
    Catalog,
    FieldTypeConfig,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.errors import Conflict, NotFound, RuleViolation
from booking.service.wallclock import instant_of, local_today
from booking.store.db import Database

MAX_TEXT_FIELD_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class BookAppointment:
    """A booking request, parsed and typed by the API layer."""

    service_id: uuid.UUID
    on_date: date
    cu_index: int
    service_type_id: uuid.UUID
    start_minute: int
    channel: str
    language: str | None = None
    customer_record_id: uuid.UUID | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    bypass_timeslot_check: bool = False
    prevent_self_check_in: bool = False
    fields: dict[uuid.UUID, Any] = field(default_factory=dict)
    tag_ids: list[uuid.UUID] = field(default_factory=list)


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


# --- the rules on the request itself ----------------------------------------------------------


def resolve_language(catalog: Catalog, language: str | None) -> str:
    if not language:
        return catalog.default_language
    if language not in catalog.supported_languages:
        raise RuleViolation(
            f"Language '{language}' is not supported; use one of "
            f"{', '.join(catalog.supported_languages)}.",
            code="language_not_supported",
            field="language",
        )
    return language


def normalize_phone(raw: str, region: str) -> str:
    """Parse with the organization's default region; answer E.164."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise RuleViolation(
            "Not a valid phone number.", code="invalid_phone_number", field="contactPhoneNumber"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise RuleViolation(
            f"Not a valid email address: {error}", code="invalid_email", field="contactEmail"
        ) from None


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_field_value(field_type: FieldTypeConfig, value: Any) -> Any:
    kind = field_type.kind
    ok: bool
    if kind == "text":
        ok = isinstance(value, str) and len(value) <= MAX_TEXT_FIELD_LENGTH
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "date":
        # fromisoformat alone also takes ISO week dates (2026-W01-1) and basic format.
        ok = isinstance(value, str) and _ISO_DATE.fullmatch(value) is not None
        if ok:
            try:
                date.fromisoformat(value)
            except ValueError:
                ok = False
    else:  # choice
        ok = isinstance(value, str) and value in field_type.options
    if not ok:
        rule = {
            "text": f"a string of at most {MAX_TEXT_FIELD_LENGTH} characters",
            "number": "a number",
            "boolean": "true or false",
            "date": "a date as YYYY-MM-DD",
            "choice": f"one of {', '.join(field_type.options)}",
        }[kind]
        raise RuleViolation(
            f"Field '{field_type.name}' must be {rule}.",
            code="invalid_field_value",
            field=f"fields.{field_type.id}",
        )
    return value


def check_fields(catalog: Catalog, fields: dict[uuid.UUID, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for field_type_id, value in fields.items():
        field_type = catalog.field_types.get(field_type_id)
        if field_type is None:
            raise NotFound(
                f"No such field type: {field_type_id}.",
                code="field_type_not_found",
                field=f"fields.{field_type_id}",
            )
        checked[str(field_type_id)] = _check_field_value(field_type, value)
    for field_type in catalog.field_types.values():
        if field_type.required and str(field_type.id) not in checked:
            raise RuleViolation(
                f"Field '{field_type.name}' is required.",
                code="required_field_missing",
                field=f"fields.{field_type.id}",
            )
    return checked


def check_tags(catalog: Catalog, tag_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(tag_ids)) != len(tag_ids):
        raise RuleViolation("tagIds lists a tag twice.", code="duplicate_tag_ids", field="tagIds")
    for tag_id in tag_ids:
        if tag_id not in catalog.tags:
            raise NotFound(f"No such tag: {tag_id}.", code="tag_not_found", field="tagIds")
    return tag_ids


def check_date_bookable(
    service: ServiceConfig, unit: CalendarUnitConfig, on_date: date, now: datetime
) -> None:
    today = local_today(now, unit.zone)
    if on_date < today:
        raise RuleViolation("The date is in the past.", code="date_in_past", field="date")
    window = service.booking_window_days
    if window is not None and on_date > today + timedelta(days=window):
        raise RuleViolation(
            f"The service can be booked at most {window} days ahead.",
            code="outside_booking_window",
            field="date",
        )


def bookable_instant(
    unit: CalendarUnitConfig, on_date: date, start: int, now: datetime
) -> datetime:
    starts_at = instant_of(on_date, start, unit.zone)
    if starts_at is None:
        raise RuleViolation(
            "That wall-clock time does not exist on this date (daylight-saving change).",
            code="nonexistent_local_time",
            field="startTime",
        )
    if starts_at <= now:
        raise RuleViolation(
            "The start time has passed.", code="start_time_passed", field="startTime"
        )
    return starts_at


def future_vacant_starts(
    unit: CalendarUnitConfig,
    on_date: date,
    booked: list[Interval],
    duration: int,
    now: datetime,
) -> list[int]:
    """Vacant starts that are also bookable now: existing wall times, not yet passed."""
    day = unit.day(on_date)
    return [
        start
        for start in availability.vacant_starts(day, booked, duration)
        if (instant := instant_of(on_date, start, unit.zone)) is not None and instant > now
    ]


# --- the database part --------------------------------------------------------------------------


# The hot path's statements, written once as SQL: building SQLAlchemy constructs and their cache
# keys on every booking cost more CPU than the database work itself.
_BOOKED_INTERVALS = """
    SELECT start_minute, duration_minutes
    FROM appointment
    WHERE service_id = $1 AND on_date = $2 AND cu_index = $3 AND status <> 'Cancelled'
"""

_CUSTOMER_NAME = "SELECT display_name FROM customer_record WHERE id = $1 AND organization_id = $2"


def calendar_transaction(
    db: Database, service_id: uuid.UUID, cu_index: int, on_date: date
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """The transaction every write of one calendar unit on one date runs in. It begins holding
    a transaction-scoped advisory lock of that calendar-day (BEGIN and the lock in one round
    trip), so writers of one calendar-day run one after the other until COMMIT; writers of other
    calendars take other locks and never wait.

    A hash collision between two calendars only makes them wait for each other; it never lets
    two bookings of the same calendar through together."""
    return db.transaction(lock_key=f"calendar:{service_id}:{cu_index}:{on_date.isoformat()}")


async def booked_intervals(
    conn: asyncpg.Connection, service_id: uuid.UUID, cu_index: int, on_date: date
) -> list[Interval]:
    rows = await conn.fetch(_BOOKED_INTERVALS, service_id, on_date, cu_index)
    return [Interval(start, start + duration) for start, duration in rows]


async def _customer_name(
    conn: asyncpg.Connection, catalog: Catalog, customer_record_id: uuid.UUID
) -> str:
    name: str | None = await conn.fetchval(
        _CUSTOMER_NAME, customer_record_id, catalog.organization_id
    )
    if name is None:
        raise NotFound(
            "No such customer record.", code="customer_record_not_found", field="customerRecordId"
        )
    return name


@dataclass(frozen=True, slots=True)
class CheckedBooking:
    """A booking request that passed every rule that does not depend on other bookings."""

    command: BookAppointment
    service: ServiceConfig
    unit: CalendarUnitConfig
    service_type: ServiceTypeConfig
    day: availability.CalendarDay
    starts_at: datetime
    language: str
    phone: str | None
    email: str | None
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]


def check_booking(catalog: Catalog, command: BookAppointment, now: datetime) -> CheckedBooking:
    """Every rule that needs no database: run before a connection is taken, so that the
    transaction (and the calendar's lock) lasts only as long as the database work."""
    service = find_service(catalog, command.service_id)
    unit = find_calendar_unit(service, command.cu_index)
    service_type = find_service_type(service, command.service_type_id)

    if command.channel not in service_type.channels:
        raise RuleViolation(
            f"Service type '{service_type.name}' does not support channel '{command.channel}'; "
            f"it supports {', '.join(service_type.channels)}.",
            code="channel_not_supported",
            field="channel",
        )
    language = resolve_language(catalog, command.language)

    if service.requires_customer and command.customer_record_id is None:
        raise RuleViolation(
            "This service requires a customer record.",
            code="customer_required",
            field="customerRecordId",
        )
    phone = command.contact_phone or None
    if phone is None and service.requires_phone:
        raise RuleViolation(
            "This service requires a phone number.",
            code="phone_required",
            field="contactPhoneNumber",
        )
    email = command.contact_email or None
    if email is None and service.requires_email:
        raise RuleViolation(
            "This service requires an email address.", code="email_required", field="contactEmail"
        )
    phone = normalize_phone(phone, catalog.default_phone_region) if phone else None
    email = normalize_email(email) if email else None
    fields = check_fields(catalog, command.fields)
    tag_ids = check_tags(catalog, command.tag_ids)

    check_date_bookable(service, unit, command.on_date, now)
    starts_at = bookable_instant(unit, command.on_date, command.start_minute, now)
    day = unit.day(command.on_date)
    duration = service_type.duration_minutes

    # Hours and the grid do not depend on other bookings: refuse early, before taking the lock.
    verdict = availability.check_start(
        day,
        [],
        command.start_minute,
        duration,
        bypass_timeslot_check=command.bypass_timeslot_check,
    )
    if verdict is Verdict.CLOSED:
        raise RuleViolation(
            "The calendar is closed on this date.", code="closed_date", field="date"
        )
    if verdict is Verdict.OUTSIDE_WORKING_HOURS:
        raise RuleViolation(
            f"An appointment of {duration} minutes at {command.start_minute} does not fit inside "
            "the working hours of this date.",
            code="outside_working_hours",
            field="startTime",
        )
    if verdict is Verdict.OFF_GRID:
        raise RuleViolation(
            f"{command.start_minute} is not on the {day.slot_minutes}-minute slot grid.",
            code="start_not_on_grid",
            field="startTime",
        )

    return CheckedBooking(
        command=command,
        service=service,
        unit=unit,
        service_type=service_type,
        day=day,
        starts_at=starts_at,
        language=language,
        phone=phone,
        email=email,
        fields=fields,
        tag_ids=tag_ids,
    )


async def book_appointment(
    conn: asyncpg.Connection,
    catalog: Catalog,
    application_id: uuid.UUID,
    checked: CheckedBooking,
    now: datetime,
) -> AppointmentRecord:
    """Check vacancy and insert the appointment. `conn` must be the `calendar_transaction` of
    the booking's calendar-day (so no other writer of it runs meanwhile); any exception leaves
    nothing behind once it rolls back."""
    command, service, unit = checked.command, checked.service, checked.unit
    service_type = checked.service_type
    duration = service_type.duration_minutes

    customer_name = None
    if command.customer_record_id is not None:
        customer_name = await _customer_name(conn, catalog, command.customer_record_id)

    booked = await booked_intervals(conn, service.id, unit.cu_index, command.on_date)
    verdict = availability.check_start(
        checked.day,
        booked,
        command.start_minute,
        duration,
        bypass_timeslot_check=command.bypass_timeslot_check,
    )
    if verdict is Verdict.FULL:
        vacant = future_vacant_starts(unit, command.on_date, booked, duration, now)
        raise Conflict(
            "The slot is not vacant.",
            code="slot_not_vacant",
            field="startTime",
            extra={"nearestVacancies": availability.nearest(vacant, command.start_minute)},
        )

    case_id = uuid.uuid4()
    values = {
        "id": case_id,
        "organization_id": catalog.organization_id,
        "service_id": service.id,
        "cu_index": unit.cu_index,
        "on_date": command.on_date,
        "start_minute": command.start_minute,
        "duration_minutes": duration,
        "starts_at": checked.starts_at,
        "time_zone": unit.zone.key,
        "service_type_id": service_type.id,
        "status": PLANNED,
        "status_date": now,
        "ticket_prefix": service.ticket_prefix,
        "customer_record_id": command.customer_record_id,
        "channel": command.channel,
        "language": checked.language,
        "contact_phone": checked.phone,
        "contact_email": checked.email,
        "prevent_self_check_in": command.prevent_self_check_in,
        "fields": orjson.dumps(checked.fields).decode(),  # jsonb goes in as JSON text
        "tag_ids": checked.tag_ids,
        "bypassed_timeslot_check": command.bypass_timeslot_check,
        "created_by_application_id": application_id,
        "created_at": now,
    }
    ticket_number = await _insert_with_next_ticket(conn, values)
    return AppointmentRecord(
        case_id=case_id,
        service_id=service.id,
        on_date=command.on_date,
        cu_index=unit.cu_index,
        start_minute=command.start_minute,
        duration_minutes=duration,
        starts_at=checked.starts_at,
        time_zone=unit.zone.key,
        ticket_prefix=service.ticket_prefix,
        ticket_number=ticket_number,
        service_type_id=service_type.id,
        service_type_name=service_type.name,
        status=PLANNED,
        status_date=now,
        created_at=now,
        closed_at=None,
        cancelled_at=None,
        customer_record_id=command.customer_record_id,
        customer_display_name=customer_name,
        channel=command.channel,
        language=checked.language,
        contact_phone=checked.phone,
        contact_email=checked.email,
        prevent_self_check_in=command.prevent_self_check_in,
        fields=checked.fields,
        tag_ids=checked.tag_ids,
    )


_APPOINTMENT_COLUMNS = (
    "id",
    "organization_id",
    "service_id",
    "cu_index",
    "on_date",
    "start_minute",
    "duration_minutes",
    "starts_at",
    "time_zone",
    "service_type_id",
    "status",
    "status_date",
    "ticket_prefix",
    "customer_record_id",
    "channel",
    "language",
    "contact_phone",
    "contact_email",
    "prevent_self_check_in",
    "fields",
    "tag_ids",
    "bypassed_timeslot_check",
    "created_by_application_id",
    "created_at",
)

# The counter row stays locked until commit, and a rollback gives the number back: ticket
# numbers are unique and gapless. VALUES (not SELECT) lets Postgres type every parameter from
# its column.
_INSERT_WITH_NEXT_TICKET = f"""
    WITH ticket AS (
        INSERT INTO ticket_counter (service_id, on_date, last_number)
        VALUES ($3, $5, 1)
        ON CONFLICT (service_id, on_date)
        DO UPDATE SET last_number = ticket_counter.last_number + 1
        RETURNING last_number
    )
    INSERT INTO appointment ({", ".join(_APPOINTMENT_COLUMNS)}, ticket_number)
    VALUES ({", ".join(f"${n}" for n in range(1, len(_APPOINTMENT_COLUMNS) + 1))},
            (SELECT last_number FROM ticket))
    RETURNING ticket_number
"""  # noqa: S608 (column names are constants)


async def _insert_with_next_ticket(conn: asyncpg.Connection, values: dict[str, Any]) -> int:
    """Take the next ticket number of (service, date) and insert the appointment: one
    statement."""
    number: int = await conn.fetchval(
        _INSERT_WITH_NEXT_TICKET, *(values[c] for c in _APPOINTMENT_COLUMNS)
    )
    return number


# --- cancelling ---------------------------------------------------------------------------------


_SELECT_FOR_CANCEL = f"""
    {SELECT_APPOINTMENTS_SQL}
    WHERE appointment.id = $1 AND appointment.organization_id = $2
      AND appointment.service_id = $3 AND appointment.on_date = $4 AND appointment.cu_index = $5
    FOR UPDATE OF appointment
"""

_CANCEL = "UPDATE appointment SET status = $2, status_date = $3, cancelled_at = $3 WHERE id = $1"


async def cancel_appointment(
    conn: asyncpg.Connection,
    catalog: Catalog,
    service_id: uuid.UUID,
    on_date: date,
    cu_index: int,
    case_id: uuid.UUID,
    now: datetime,
) -> AppointmentRecord:
    """Set status Cancelled (never delete). Cancelling a cancelled appointment answers the same;
    a checked-in or past one cannot be cancelled. `conn`: the calendar-day's
    `calendar_transaction`."""
    service = find_service(catalog, service_id)
    find_calendar_unit(service, cu_index)
    row = await conn.fetchrow(
        _SELECT_FOR_CANCEL, case_id, catalog.organization_id, service_id, on_date, cu_index
    )
    if row is None:
        raise NotFound("No such appointment in this calendar.", code="appointment_not_found")
    record = record_from_row(row)
    if record.status == CANCELLED:
        return record
    if record.status == CHECKED_IN:
        raise RuleViolation(
            "A checked-in appointment cannot be cancelled.", code="appointment_checked_in"
        )
    if record.status != PLANNED:
        raise RuleViolation(
            f"An appointment with status {record.status} cannot be cancelled.",
            code="appointment_closed",
        )
    if record.starts_at <= now:
        raise RuleViolation(
            "An appointment that has started cannot be cancelled.", code="appointment_in_past"
        )
    await conn.execute(_CANCEL, case_id, CANCELLED, now)
    return dataclasses.replace(record, status=CANCELLED, status_date=now, cancelled_at=now)
