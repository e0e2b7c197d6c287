"""The statements on appointments (and the ticket counter, customer names and calendar-day
stamps they need), each defined once with SQLAlchemy Core against the models and compiled at
import; column lists come from the table and from `AppointmentRecord`, never from a hand-kept
list. (The stamp is moved by the calendar-day's lock statement, `store.db.lock_calendar_day`.)

The writes of a calendar-day take a `LockedCalendarDay`, which only the calendar-day's
transaction hands out; the reads take any connection."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Text,
    any_,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from booking.domain import AppointmentStatus, CalendarDay, Channel
from booking.store import outbox
from booking.store.db import LockedCalendarDay
from booking.store.holds import LIVE
from booking.store.models import (
    Appointment,
    CalendarDayStamp,
    CustomerRecord,
    ServiceType,
    SlotHold,
    TicketCounter,
    WebhookEvent,
)
from booking.store.sql import compiled, constant


@dataclass(frozen=True, slots=True)
class AppointmentRecord:
    """An appointment as read: its row, with its service type's name and its customer's display
    name. The fields are the SELECT's columns, in order (see `_selected`)."""

    case_id: uuid.UUID
    service_id: uuid.UUID
    on_date: date
    cu_index: int
    start_minute: int
    duration_minutes: int
    no_show_probability: float
    starts_at: datetime
    time_zone: str
    ticket_prefix: str
    ticket_number: int
    service_type_id: uuid.UUID
    service_type_name: str
    status: AppointmentStatus
    status_date: datetime
    created_at: datetime
    closed_at: datetime | None
    cancelled_at: datetime | None
    customer_record_id: uuid.UUID | None
    customer_display_name: str | None
    channel: Channel
    language: str
    contact_phone: str | None
    contact_email: str | None
    prevent_self_check_in: bool
    bypassed_timeslot_check: bool
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]
    reservation_token: str | None
    reservation_expires_at: datetime | None
    rescheduled_from_date: date | None
    rescheduled_from_cu_index: int | None
    rescheduled_from_start: int | None


_table = Appointment.__table__
_JOINED: dict[str, ColumnElement[Any]] = {
    "case_id": _table.c.id,
    "service_type_name": ServiceType.__table__.c.name,
    "customer_display_name": CustomerRecord.__table__.c.display_name,
}


# The record's fields in order. A record is made by position, not by keyword: 33 keyword
# arguments cost twice what the frozen dataclass's own assignments do.
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(AppointmentRecord))
_STATUS_AT = _RECORD_FIELDS.index("status")
_CHANNEL_AT = _RECORD_FIELDS.index("channel")


def _selected() -> list[ColumnElement[Any]]:
    """The record's fields: the appointment's columns of the same names, and `_JOINED`."""
    return [
        (_JOINED[name] if name in _JOINED else _table.c[name]).label(name)
        for name in _RECORD_FIELDS
    ]


def select_appointments() -> Any:
    """The SELECT of `AppointmentRecord`s (add the WHERE): store.customers reads them too."""
    return (
        select(*_selected())
        .join(ServiceType, ServiceType.id == Appointment.service_type_id)
        .outerjoin(CustomerRecord, CustomerRecord.id == Appointment.customer_record_id)
    )


def record_from_row(row: asyncpg.Record) -> AppointmentRecord:
    """A row of `select_appointments`, whose columns are the record's fields in order."""
    values = list(row.values())
    values[_STATUS_AT] = AppointmentStatus(values[_STATUS_AT])
    values[_CHANNEL_AT] = Channel(values[_CHANNEL_AT])
    return AppointmentRecord(*values)


_not_cancelled = Appointment.status != constant(AppointmentStatus.CANCELLED)
_of_calendar_day = (
    Appointment.service_id == bindparam("service_id"),
    Appointment.on_date == bindparam("on_date"),
    Appointment.cu_index == bindparam("cu_index"),
)

_hold_of_calendar_day = (
    SlotHold.service_id == bindparam("service_id"),
    SlotHold.on_date == bindparam("on_date"),
    SlotHold.cu_index == bindparam("cu_index"),
)

# What occupies a calendar-day: its appointments that are not cancelled and its holds that are
# live at `now`, in one statement (one round trip, one snapshot).
_BOOKED_INTERVALS = compiled(
    union_all(
        select(Appointment.start_minute, Appointment.duration_minutes).where(
            *_of_calendar_day, _not_cancelled
        ),
        select(SlotHold.start_minute, SlotHold.duration_minutes).where(
            *_hold_of_calendar_day, *LIVE
        ),
    ),
    "service_id",
    "on_date",
    "cu_index",
    "now",
)

# What occupies a calendar-day during [start_minute, end_minute): the only intervals whether
# one start is vacant depends on (one row or none, mostly, instead of the whole day's).
_OVERLAPPING_INTERVALS = compiled(
    union_all(
        select(Appointment.start_minute, Appointment.duration_minutes).where(
            *_of_calendar_day,
            _not_cancelled,
            Appointment.start_minute < bindparam("end_minute"),
            Appointment.start_minute + Appointment.duration_minutes > bindparam("start_minute"),
        ),
        select(SlotHold.start_minute, SlotHold.duration_minutes).where(
            *_hold_of_calendar_day,
            *LIVE,
            SlotHold.start_minute < bindparam("end_minute"),
            SlotHold.start_minute + SlotHold.duration_minutes > bindparam("start_minute"),
        ),
    ),
    "service_id",
    "on_date",
    "cu_index",
    "end_minute",
    "start_minute",
    "now",
)

# What occupies a service's calendar-days on a date, for the calendars' stats: the appointments
# and the holds live at `now` (held true), a hold with the no-show rate of the service type the
# booking it keeps the place for would have.
_BOOKED_OF_SERVICE = compiled(
    union_all(
        select(
            Appointment.cu_index,
            Appointment.start_minute,
            Appointment.duration_minutes,
            Appointment.no_show_probability,
            false().label("held"),
        ).where(
            Appointment.service_id == bindparam("service_id"),
            Appointment.on_date == bindparam("on_date"),
            _not_cancelled,
        ),
        select(
            SlotHold.cu_index,
            SlotHold.start_minute,
            SlotHold.duration_minutes,
            ServiceType.no_show_rate,
            true(),
        )
        .join(ServiceType, ServiceType.id == SlotHold.service_type_id)
        .where(
            SlotHold.service_id == bindparam("service_id"),
            SlotHold.on_date == bindparam("on_date"),
            *LIVE,
        ),
    ),
    "service_id",
    "on_date",
    "now",
)

# What occupies a service's calendar-days over a range of dates, for the range vacancies: per
# calendar-day of the units `cu_indexes`, the starts and ends of its appointments and of its holds
# live at `now`, aggregated into two arrays. One statement (one round trip, one snapshot) for a
# whole month of a service, and one row per calendar-day: decoding thousands of rows costs more
# than the arrays do.
_cu_index_in = any_(bindparam("cu_indexes", type_=ARRAY(Integer)))
_occupying = union_all(
    select(
        Appointment.on_date,
        Appointment.cu_index,
        Appointment.start_minute,
        (Appointment.start_minute + Appointment.duration_minutes).label("end_minute"),
    ).where(
        Appointment.service_id == bindparam("service_id"),
        Appointment.on_date.between(bindparam("first_date"), bindparam("last_date")),
        Appointment.cu_index == _cu_index_in,
        _not_cancelled,
    ),
    select(
        SlotHold.on_date,
        SlotHold.cu_index,
        SlotHold.start_minute,
        SlotHold.start_minute + SlotHold.duration_minutes,
    ).where(
        SlotHold.service_id == bindparam("service_id"),
        SlotHold.on_date.between(bindparam("first_date"), bindparam("last_date")),
        SlotHold.cu_index == _cu_index_in,
        *LIVE,
    ),
).subquery("occupying")
_BOOKED_OF_RANGE = compiled(
    select(
        _occupying.c.on_date,
        _occupying.c.cu_index,
        func.array_agg(_occupying.c.start_minute),
        func.array_agg(_occupying.c.end_minute),
    ).group_by(_occupying.c.on_date, _occupying.c.cu_index),
    "service_id",
    "first_date",
    "last_date",
    "cu_indexes",
    "now",
)

_STAMPS_OF_SERVICE = compiled(
    select(CalendarDayStamp.cu_index, CalendarDayStamp.stamped_at).where(
        CalendarDayStamp.service_id == bindparam("service_id"),
        CalendarDayStamp.on_date == bindparam("on_date"),
    ),
    "service_id",
    "on_date",
)

_CUSTOMER_NAME = compiled(
    select(CustomerRecord.display_name).where(
        CustomerRecord.id == bindparam("id"),
        CustomerRecord.organization_id == bindparam("organization_id"),
    ),
    "id",
    "organization_id",
)

# Written at insert: every column but the ticket number (taken by the statement) and the
# timestamps of later changes.
INSERTED_COLUMNS = tuple(
    c.name for c in _table.c if c.name not in {"ticket_number", "cancelled_at", "closed_at"}
)

# The counter row stays locked until commit, and a rollback gives the number back: ticket
# numbers are unique and gapless.
_next_ticket = (
    pg_insert(TicketCounter)
    .values(
        service_id=bindparam("service_id"),
        on_date=bindparam("on_date"),
        last_number=literal_column("1"),
    )
    .on_conflict_do_update(
        index_elements=[TicketCounter.service_id, TicketCounter.on_date],
        set_={"last_number": TicketCounter.last_number + literal_column("1")},
    )
    .returning(TicketCounter.last_number)
    .cte("ticket")
)
_insert_appointment = (
    insert(Appointment)
    .values(
        {c: bindparam(c) for c in INSERTED_COLUMNS}
        | {"ticket_number": select(_next_ticket.c.last_number).scalar_subquery()}
    )
    .returning(Appointment.ticket_number)
)
_INSERT_WITH_NEXT_TICKET = compiled(_insert_appointment)

# The same, writing the new case's first outbound event too: its sequence is 1 and its body
# gets the ticket number the insert drew. The event's NOTIFY goes out at COMMIT.
_booked = _insert_appointment.cte("booked")
_first_event = (
    insert(WebhookEvent)
    .from_select(
        ["id", "organization_id", "case_id", "sequence", "hook", "payload"],
        select(
            bindparam("event_id", type_=UUID),
            bindparam("event_organization_id", type_=UUID),
            bindparam("event_case_id", type_=UUID),
            literal_column("1"),
            bindparam("event_hook", type_=Text),
            func.jsonb_set(
                func.jsonb_set(
                    bindparam("event_payload", type_=JSONB),
                    literal_column("'{ticket,number}'"),
                    func.to_jsonb(_booked.c.ticket_number),
                ),
                literal_column("'{eventSequence}'"),
                literal_column("'1'::jsonb"),
            ),
        ).select_from(_booked),
    )
    .cte("first_event")
)
_INSERT_WITH_NEXT_TICKET_AND_EVENT = compiled(
    select(
        _booked.c.ticket_number,
        func.pg_notify(literal_column(f"'{outbox.NOTIFY_CHANNEL}'"), literal_column("''")),
    )
    .select_from(_booked)
    .add_cte(_first_event)
)

_LOCK_IN_CALENDAR_DAY = compiled(
    select_appointments()
    .where(
        Appointment.id == bindparam("id"),
        Appointment.organization_id == bindparam("organization_id"),
        *_of_calendar_day,
    )
    .with_for_update(of=Appointment),
    "id",
    "organization_id",
    "service_id",
    "on_date",
    "cu_index",
)

_MARK_CANCELLED = compiled(
    update(Appointment)
    .where(Appointment.id == bindparam("id"))
    .values(
        status=constant(AppointmentStatus.CANCELLED),
        status_date=bindparam("at"),
        cancelled_at=bindparam("at"),
    ),
    "at",
    "id",
)

_MARK_CHECKED_IN = compiled(
    update(Appointment)
    .where(Appointment.id == bindparam("id"))
    .values(
        status=bindparam("status"),
        status_date=bindparam("status_date"),
        fields=bindparam("fields"),
        tag_ids=bindparam("tag_ids"),
    ),
    "status",
    "status_date",
    "fields",
    "tag_ids",
    "id",
)

_MOVED = {
    "on_date": bindparam("on_date"),
    "cu_index": bindparam("cu_index"),
    "start_minute": bindparam("start_minute"),
    "starts_at": bindparam("starts_at"),
    "time_zone": bindparam("time_zone"),
    "reservation_token": bindparam("reservation_token"),
    "reservation_expires_at": bindparam("reservation_expires_at"),
    "bypassed_timeslot_check": bindparam("bypassed_timeslot_check"),
    "rescheduled_from_date": Appointment.on_date,
    "rescheduled_from_cu_index": Appointment.cu_index,
    "rescheduled_from_start": Appointment.start_minute,
}
# Within its date an appointment keeps its ticket number; moved to another date it takes that
# date's next one (the old number stays unused: tickets stay unique per service and date).
_MOVE_WITHIN_DATE = compiled(
    update(Appointment)
    .where(Appointment.id == bindparam("id"))
    .values(_MOVED)
    .returning(Appointment.ticket_number)
)
_MOVE_TO_DATE = compiled(
    update(Appointment)
    .where(Appointment.id == bindparam("id"))
    .values(_MOVED | {"ticket_number": select(_next_ticket.c.last_number).scalar_subquery()})
    .returning(Appointment.ticket_number)
)

_in_order = (Appointment.start_minute, Appointment.ticket_number)
_OF_CALENDAR_DAY = compiled(
    select_appointments().where(*_of_calendar_day).order_by(*_in_order),
    "service_id",
    "on_date",
    "cu_index",
)
_OF_CALENDAR_DAY_AND_CUSTOMER = compiled(
    select_appointments()
    .where(*_of_calendar_day, Appointment.customer_record_id == bindparam("customer_record_id"))
    .order_by(*_in_order),
    "service_id",
    "on_date",
    "cu_index",
    "customer_record_id",
)

_IN_ORGANIZATION = compiled(
    select_appointments().where(
        Appointment.id == bindparam("id"),
        Appointment.organization_id == bindparam("organization_id"),
    ),
    "id",
    "organization_id",
)


# --- reads -----------------------------------------------------------------------------------


async def booked_intervals(
    conn: asyncpg.Connection, day: CalendarDay, now: datetime
) -> list[asyncpg.Record]:
    """(start_minute, duration_minutes) of every appointment and every hold live at `now`
    occupying `day`."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _BOOKED_INTERVALS.sql, day.service_id, day.on_date, day.cu_index, now
    )
    return rows


async def overlapping_intervals(
    conn: asyncpg.Connection, day: CalendarDay, start_minute: int, end_minute: int, now: datetime
) -> list[asyncpg.Record]:
    """(start_minute, duration_minutes) of every appointment and every hold live at `now`
    occupying `day` at some minute of [start_minute, end_minute)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _OVERLAPPING_INTERVALS.sql,
        day.service_id,
        day.on_date,
        day.cu_index,
        end_minute,
        start_minute,
        now,
    )
    return rows


async def booked_of_service(
    conn: asyncpg.Connection, service_id: uuid.UUID, on_date: date, now: datetime
) -> list[asyncpg.Record]:
    """(cu_index, start_minute, duration_minutes, no_show_probability, held) of every occupying
    appointment (held false) and every hold live at `now` (held true) of every calendar unit of
    the service on that date."""
    rows: list[asyncpg.Record] = await conn.fetch(_BOOKED_OF_SERVICE.sql, service_id, on_date, now)
    return rows


async def booked_of_range(
    conn: asyncpg.Connection,
    service_id: uuid.UUID,
    first_date: date,
    last_date: date,
    cu_indexes: list[int],
    now: datetime,
) -> dict[tuple[date, int], tuple[list[int], list[int]]]:
    """By (date, cuIndex), the start and end minutes of every occupying appointment and every
    hold live at `now` of the service's units `cu_indexes` from `first_date` to `last_date`
    (inclusive), in one statement; a calendar-day with none is absent."""
    rows = await conn.fetch(
        _BOOKED_OF_RANGE.sql, service_id, first_date, last_date, cu_indexes, now
    )
    return {(on_date, cu_index): (starts, ends) for on_date, cu_index, starts, ends in rows}


async def stamps_of_service(
    conn: asyncpg.Connection, service_id: uuid.UUID, on_date: date
) -> dict[int, datetime]:
    """The stamp of each calendar unit of the service written on that date, by cuIndex."""
    rows = await conn.fetch(_STAMPS_OF_SERVICE.sql, service_id, on_date)
    return {cu_index: stamped_at for cu_index, stamped_at in rows}


async def customer_display_name(
    conn: asyncpg.Connection, customer_record_id: uuid.UUID, organization_id: uuid.UUID
) -> str | None:
    name: str | None = await conn.fetchval(_CUSTOMER_NAME.sql, customer_record_id, organization_id)
    return name


async def of_calendar_day(
    conn: asyncpg.Connection, day: CalendarDay, customer_record_id: uuid.UUID | None
) -> list[AppointmentRecord]:
    """The calendar-day's appointments (cancelled ones too) by start and ticket; only those of
    one customer record when it is given."""
    if customer_record_id is None:
        rows = await conn.fetch(_OF_CALENDAR_DAY.sql, day.service_id, day.on_date, day.cu_index)
    else:
        rows = await conn.fetch(
            _OF_CALENDAR_DAY_AND_CUSTOMER.sql,
            day.service_id,
            day.on_date,
            day.cu_index,
            customer_record_id,
        )
    return [record_from_row(row) for row in rows]


async def in_organization(
    conn: asyncpg.Connection, case_id: uuid.UUID, organization_id: uuid.UUID
) -> AppointmentRecord | None:
    row = await conn.fetchrow(_IN_ORGANIZATION.sql, case_id, organization_id)
    return None if row is None else record_from_row(row)


# --- writes of a locked calendar-day ----------------------------------------------------------


async def insert_with_next_ticket(
    tx: LockedCalendarDay,
    row: Mapping[str, Any],
    service_type_name: str,
    customer_display_name: str | None,
    announcing: outbox.Event | None = None,
) -> AppointmentRecord:
    """Take the next ticket number of (service, date) and insert the appointment `row` (a value
    for each of `INSERTED_COLUMNS`), and its first outbound event when `announcing` one (its
    body's ticket number is the one drawn): one statement. Answers the appointment as read."""
    if announcing is None:
        ticket_number: int = await tx.conn.fetchval(
            _INSERT_WITH_NEXT_TICKET.sql, *(row[name] for name in _INSERT_WITH_NEXT_TICKET.params)
        )
    else:
        values = {**row, **_event_values(announcing)}
        statement = _INSERT_WITH_NEXT_TICKET_AND_EVENT
        ticket_number = await tx.conn.fetchval(
            statement.sql, *(values[name] for name in statement.params)
        )
    return inserted(row, ticket_number, service_type_name, customer_display_name)


def _event_values(event: outbox.Event) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_organization_id": event.organization_id,
        "event_case_id": event.case_id,
        "event_hook": event.hook,
        "event_payload": event.payload,
    }


def inserted(
    row: Mapping[str, Any],
    ticket_number: int,
    service_type_name: str,
    customer_display_name: str | None,
) -> AppointmentRecord:
    """The appointment `row` as `insert_with_next_ticket` leaves it, with `ticket_number`."""
    values = {
        **row,
        "case_id": row["id"],
        "ticket_number": ticket_number,
        "service_type_name": service_type_name,
        "customer_display_name": customer_display_name,
        "closed_at": None,
        "cancelled_at": None,
    }
    return AppointmentRecord(*[values[name] for name in _RECORD_FIELDS])


async def lock_in_calendar_day(
    tx: LockedCalendarDay, case_id: uuid.UUID, organization_id: uuid.UUID
) -> AppointmentRecord | None:
    """The appointment of the locked calendar-day, row-locked until the transaction ends."""
    day = tx.day
    row = await tx.conn.fetchrow(
        _LOCK_IN_CALENDAR_DAY.sql,
        case_id,
        organization_id,
        day.service_id,
        day.on_date,
        day.cu_index,
    )
    return None if row is None else record_from_row(row)


async def mark_cancelled(tx: LockedCalendarDay, case_id: uuid.UUID, at: datetime) -> None:
    await tx.conn.execute(_MARK_CANCELLED.sql, at, case_id)


def cancelled(record: AppointmentRecord, at: datetime) -> AppointmentRecord:
    """`record` as `mark_cancelled` left its row."""
    return dataclasses.replace(
        record, status=AppointmentStatus.CANCELLED, status_date=at, cancelled_at=at
    )


def checked_in(
    record: AppointmentRecord,
    status: AppointmentStatus,
    at: datetime,
    fields: dict[str, Any] | None = None,
    tag_ids: list[uuid.UUID] | None = None,
) -> AppointmentRecord:
    """`record` checked in to `status` at `at`, with `fields` and `tag_ids` when given (None:
    its own): what `mark_checked_in` writes."""
    return dataclasses.replace(
        record,
        status=status,
        status_date=at,
        fields=record.fields if fields is None else fields,
        tag_ids=record.tag_ids if tag_ids is None else tag_ids,
    )


async def mark_checked_in(tx: LockedCalendarDay, checked_in: AppointmentRecord) -> None:
    """Write what a check-in changes (`checked_in`'s status, its date, fields and tags) in one
    UPDATE."""
    await tx.conn.execute(
        _MARK_CHECKED_IN.sql,
        checked_in.status,
        checked_in.status_date,
        checked_in.fields,
        checked_in.tag_ids,
        checked_in.case_id,
    )


@dataclass(frozen=True, slots=True)
class Move:
    """Where a reschedule puts an appointment, the hold the move consumed (if any), and
    whether the new place was taken past the capacity check."""

    cu_index: int
    on_date: date
    start_minute: int
    starts_at: datetime
    time_zone: str
    reservation_token: str | None
    reservation_expires_at: datetime | None
    bypassed_timeslot_check: bool


async def move(
    source: LockedCalendarDay,
    target: LockedCalendarDay,
    record: AppointmentRecord,
    to: Move,
) -> AppointmentRecord:
    """Move the appointment `record` of the locked `source` to `to` in the locked `target`
    (one statement; both calendar-days' locks are held by the same transaction). Answers the
    record as its row is now."""
    assert source.conn is target.conn
    assert (target.day.service_id, target.day.cu_index, target.day.on_date) == (
        record.service_id,
        to.cu_index,
        to.on_date,
    )
    statement = _MOVE_WITHIN_DATE if to.on_date == record.on_date else _MOVE_TO_DATE
    values = dataclasses.asdict(to) | {"id": record.case_id, "service_id": record.service_id}
    ticket_number: int = await target.conn.fetchval(
        statement.sql, *(values[name] for name in statement.params)
    )
    return dataclasses.replace(
        record,
        **dataclasses.asdict(to),
        ticket_number=ticket_number,
        rescheduled_from_date=record.on_date,
        rescheduled_from_cu_index=record.cu_index,
        rescheduled_from_start=record.start_minute,
    )
