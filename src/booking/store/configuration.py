"""The statements that read an organization's configuration (one per table, no ORM walk) and a
registered application, compiled once at import. `booking.service.catalog` turns the rows into
plain configuration values and caches them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy import BindParameter, bindparam, select

from booking.store.models import (
    CalendarException,
    CalendarUnit,
    CustomerFieldType,
    ExceptionHours,
    FieldType,
    Organization,
    RegisteredApplication,
    Service,
    ServiceCategory,
    ServiceType,
    Tag,
    WebhookEndpoint,
    WorkingHours,
)
from booking.store.sql import compiled

_organization_id: BindParameter[uuid.UUID] = bindparam("organization_id")
_of_organization_services = Service.organization_id == _organization_id

_APPLICATION = compiled(
    select(
        RegisteredApplication.id,
        RegisteredApplication.organization_id,
        RegisteredApplication.client_id,
        RegisteredApplication.name,
        RegisteredApplication.enabled,
        RegisteredApplication.roles,
        RegisteredApplication.hold_default_seconds,
        RegisteredApplication.hold_max_seconds,
    ).where(RegisteredApplication.id == bindparam("id")),
    "id",
)
_ORGANIZATION = compiled(
    select(Organization.__table__).where(Organization.id == _organization_id), "organization_id"
)
_SERVICES = compiled(select(Service.__table__).where(_of_organization_services), "organization_id")
_SERVICE_CATEGORIES = compiled(
    select(ServiceCategory.id, ServiceCategory.name).where(
        ServiceCategory.organization_id == _organization_id
    ),
    "organization_id",
)
_SERVICE_TYPES = compiled(
    select(ServiceType.__table__).join(Service).where(_of_organization_services),
    "organization_id",
)
_CALENDAR_UNITS = compiled(
    select(CalendarUnit.__table__).join(Service).where(_of_organization_services),
    "organization_id",
)
_WORKING_HOURS = compiled(
    select(WorkingHours.__table__)
    .join(Service, Service.id == WorkingHours.service_id)
    .where(_of_organization_services),
    "organization_id",
)
_EXCEPTIONS = compiled(
    select(
        CalendarException.service_id,
        CalendarException.cu_index,
        CalendarException.on_date,
        CalendarException.closed,
        ExceptionHours.start_minute,
        ExceptionHours.end_minute,
    )
    .join(Service, Service.id == CalendarException.service_id)
    .outerjoin(ExceptionHours, ExceptionHours.exception_id == CalendarException.id)
    .where(_of_organization_services),
    "organization_id",
)
_FIELD_TYPES = compiled(
    select(FieldType.__table__).where(FieldType.organization_id == _organization_id),
    "organization_id",
)
_CUSTOMER_FIELD_TYPES = compiled(
    select(CustomerFieldType.__table__)
    .where(CustomerFieldType.organization_id == _organization_id)
    .order_by(CustomerFieldType.position, CustomerFieldType.slug),
    "organization_id",
)
_TAGS = compiled(
    select(Tag.id, Tag.name).where(Tag.organization_id == _organization_id), "organization_id"
)

# The organization's webhook receiver: its secrets sign the before-hooks' calls.
_WEBHOOK_ENDPOINT = compiled(
    select(WebhookEndpoint.__table__).where(WebhookEndpoint.organization_id == _organization_id),
    "organization_id",
)


async def application(conn: asyncpg.Connection, application_id: uuid.UUID) -> asyncpg.Record | None:
    """(id, organization_id, client_id, name, enabled, roles, hold_default_seconds,
    hold_max_seconds), or None."""
    row: asyncpg.Record | None = await conn.fetchrow(_APPLICATION.sql, application_id)
    return row


@dataclass(frozen=True, slots=True)
class OrganizationRows:
    """An organization's configuration rows, each list with its table's columns."""

    organization: asyncpg.Record
    services: list[asyncpg.Record]
    service_categories: list[asyncpg.Record]
    service_types: list[asyncpg.Record]
    calendar_units: list[asyncpg.Record]
    working_hours: list[asyncpg.Record]
    # (service_id, cu_index, on_date, closed, start_minute, end_minute): one row per interval,
    # NULL hours for a closed date
    exceptions: list[asyncpg.Record]
    field_types: list[asyncpg.Record]
    tags: list[asyncpg.Record]
    customer_field_types: list[asyncpg.Record]  # in position order
    webhook_endpoint: asyncpg.Record | None


async def organization_rows(
    conn: asyncpg.Connection, organization_id: uuid.UUID
) -> OrganizationRows | None:
    organization = await conn.fetchrow(_ORGANIZATION.sql, organization_id)
    if organization is None:
        return None
    return OrganizationRows(
        organization=organization,
        services=await conn.fetch(_SERVICES.sql, organization_id),
        service_categories=await conn.fetch(_SERVICE_CATEGORIES.sql, organization_id),
        service_types=await conn.fetch(_SERVICE_TYPES.sql, organization_id),
        calendar_units=await conn.fetch(_CALENDAR_UNITS.sql, organization_id),
        working_hours=await conn.fetch(_WORKING_HOURS.sql, organization_id),
        exceptions=await conn.fetch(_EXCEPTIONS.sql, organization_id),
        field_types=await conn.fetch(_FIELD_TYPES.sql, organization_id),
        tags=await conn.fetch(_TAGS.sql, organization_id),
        customer_field_types=await conn.fetch(_CUSTOMER_FIELD_TYPES.sql, organization_id),
        webhook_endpoint=await conn.fetchrow(_WEBHOOK_ENDPOINT.sql, organization_id),
    )
