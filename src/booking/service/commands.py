"""What the API asks of the service layer: one typed value per use case, parsed by the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from booking.domain import CalendarDay, Channel, CheckInMode


@dataclass(frozen=True, slots=True)
class BookAppointment:
    day: CalendarDay
    service_type_id: uuid.UUID
    start_minute: int
    channel: Channel
    language: str | None = None
    customer_record_id: uuid.UUID | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    bypass_timeslot_check: bool = False
    prevent_self_check_in: bool = False
    fields: dict[uuid.UUID, Any] = field(default_factory=dict)
    tag_ids: list[uuid.UUID] = field(default_factory=list)
    reservation_token: str | None = None  # the hold whose place the booking takes


@dataclass(frozen=True, slots=True)
class ListRangeVacancies:
    """The vacant starts of a service type on every date from `first_date` to `last_date`
    (inclusive) in the calendar units `cu_indexes` (none: every unit), for `channel` (None:
    any channel the service type offers)."""

    service_id: uuid.UUID
    service_type_id: uuid.UUID
    first_date: date
    last_date: date
    cu_indexes: tuple[int, ...] = ()
    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class ListFirstVacancies:
    """The first `days` dates from `from_date` on that have a vacant start, with the earliest
    start of each calendar unit on them."""

    service_id: uuid.UUID
    service_type_id: uuid.UUID
    from_date: date
    days: int
    cu_indexes: tuple[int, ...] = ()
    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class CancelAppointment:
    day: CalendarDay
    case_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CreateCustomer:
    fields: list[tuple[uuid.UUID, Any]]  # (field type id, value), in the request's order


@dataclass(frozen=True, slots=True)
class UpdateCustomer:
    """Set (or, with None, clear) these fields; the others stay as they are."""

    record_id: uuid.UUID
    fields: list[tuple[uuid.UUID, Any]]


@dataclass(frozen=True, slots=True)
class FindByRecordId:
    record_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class FindByKeyField:
    field_slug: str
    field_value: str


@dataclass(frozen=True, slots=True)
class HoldSlot:
    day: CalendarDay
    service_type_id: uuid.UUID
    start_minute: int
    channel: Channel
    hold_seconds: int | None = None  # None: the application's default


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    day: CalendarDay
    token: str


@dataclass(frozen=True, slots=True)
class ExtendHold:
    day: CalendarDay
    token: str
    hold_seconds: int | None = None  # None: as long as the application's maximum allows


@dataclass(frozen=True, slots=True)
class RescheduleAppointment:
    day: CalendarDay  # where the appointment is now
    case_id: uuid.UUID
    to: CalendarDay  # the same service: only the date and the calendar unit may differ
    start_minute: int
    reservation_token: str | None = None
    bypass_timeslot_check: bool = False


@dataclass(frozen=True, slots=True)
class CheckIn:
    day: CalendarDay
    case_id: uuid.UUID
    mode: CheckInMode
    # What replaces the appointment's fields and tags as it is checked in: set only by the
    # organization's beforeCheckIn (the API sends none). None: the appointment's own.
    fields: dict[uuid.UUID, Any] | None = None
    tag_ids: list[uuid.UUID] | None = None
