"""An appointment as the service layer hands it out, and the one query that reads them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from booking.store.models import Appointment, CustomerRecord, ServiceType

CANCELLED = "Cancelled"
PLANNED = "Planned"
CHECKED_IN = "CheckedIn"


@dataclass(frozen=True, slots=True)
class AppointmentRecord:
    case_id: uuid.UUID
    service_id: uuid.UUID
    on_date: date
    cu_index: int
    start_minute: int
    duration_minutes: int
    starts_at: datetime
    time_zone: str
    ticket_prefix: str
    ticket_number: int
    service_type_id: uuid.UUID
    service_type_name: str
    status: str
    status_date: datetime
    created_at: datetime
    closed_at: datetime | None
    cancelled_at: datetime | None
    customer_record_id: uuid.UUID | None
    customer_display_name: str | None
    channel: str
    language: str
    contact_phone: str | None
    contact_email: str | None
    prevent_self_check_in: bool
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]


def select_appointments() -> Select[*tuple[Any, ...]]:
    """Appointments with their service type's name and customer's display name (one statement)."""
    a = Appointment
    query: Select[*tuple[Any, ...]] = (
        select(
            a.id.label("case_id"),
            a.service_id,
            a.on_date,
            a.cu_index,
            a.start_minute,
            a.duration_minutes,
            a.starts_at,
            a.time_zone,
            a.ticket_prefix,
            a.ticket_number,
            a.service_type_id,
            ServiceType.name.label("service_type_name"),
            a.status,
            a.status_date,
            a.created_at,
            a.closed_at,
            a.cancelled_at,
            a.customer_record_id,
            CustomerRecord.display_name.label("customer_display_name"),
            a.channel,
            a.language,
            a.contact_phone,
            a.contact_email,
            a.prevent_self_check_in,
            a.fields,
            a.tag_ids,
        )
        .join(ServiceType, ServiceType.id == a.service_type_id)
        .outerjoin(CustomerRecord, CustomerRecord.id == a.customer_record_id)
    )
    return query


# The same SELECT as SQL text, for the statements sent on the asyncpg connection (cancelling):
# append a WHERE clause with $n parameters.
SELECT_APPOINTMENTS_SQL = str(select_appointments())  # no parameters, nothing dialect-specific


def record_from_row(row: Row[Any] | asyncpg.Record) -> AppointmentRecord:
    if isinstance(row, asyncpg.Record):
        return AppointmentRecord(**dict(row.items()))
    return AppointmentRecord(**row._asdict())
