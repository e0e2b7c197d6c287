"""What the API asks of the service layer: one typed value per use case, parsed by the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from booking.domain import CalendarDay, Channel


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
