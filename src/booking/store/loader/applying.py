"""Applying a configuration document to the database: every entity created or updated by the
id the file gives it (calendar units by service id and cuIndex) with INSERT ... ON CONFLICT DO
UPDATE, so loading the same file twice changes nothing the second time. A calendar unit's working
hours and date exceptions are replaced by the file's; entities the file does not mention are left
alone; an id that already belongs to another organization (or a service type of another service)
is refused, never moved. A constraint the database enforces becomes a ConfigFileError naming the
key path. A load that changes an organization's part of the file moves its configuration version
(`organization.configured_at`), which every calendar's `calendarTimestamp` is at least.
"""

from __future__ import annotations

import hashlib
import pathlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Executable, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.service.customer_rules import display_name_of, key_values
from booking.store.loader.document import (
    ApplicationSpec,
    CalendarUnitSpec,
    ConfigDocument,
    ConfigFileError,
    OrganizationSpec,
    ServiceSpec,
    customers_table,
    record_values,
)
from booking.store.loader.reading import read_config_file
from booking.store.models import (
    Base,
    CalendarException,
    CalendarUnit,
    CustomerFieldType,
    CustomerKey,
    CustomerRecord,
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


@dataclass(frozen=True)
class LoadSummary:
    """What a load created or updated: a count per entity kind, plus the applications as
    (id, client_id, name, roles) and the services as (id, name), in file order."""

    organizations: int
    applications: list[tuple[uuid.UUID, str, str, tuple[str, ...]]]
    service_categories: int
    services: list[tuple[uuid.UUID, str]]
    service_types: int
    calendar_units: int
    customer_records: int
    customer_field_types: int
    field_types: int
    tags: int

    def counts(self) -> dict[str, int]:
        return {
            "organizations": self.organizations,
            "applications": len(self.applications),
            "serviceCategories": self.service_categories,
            "services": len(self.services),
            "serviceTypes": self.service_types,
            "calendarUnits": self.calendar_units,
            "customerRecords": self.customer_records,
            "customerFieldTypes": self.customer_field_types,
            "fieldTypes": self.field_types,
            "tags": self.tags,
        }

    def __str__(self) -> str:
        return ", ".join(f"{kind}={count}" for kind, count in self.counts().items())


async def _execute(
    conn: AsyncConnection,
    statement: Executable,
    path: str,
    rows: list[dict[str, Any]] | None = None,
) -> CursorResult[Any]:
    """Run one statement; a constraint the database enforces becomes a ConfigFileError."""
    try:
        return await conn.execute(statement, rows)
    except (IntegrityError, DataError) as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise ConfigFileError(f"{path}: the database refused it: {reason}") from error


async def _upsert(
    conn: AsyncConnection,
    model: type[Base],
    values: dict[str, Any],
    path: str,
    *,
    owner: str | None = None,
) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column of `values`.

    With `owner` (the parent column, e.g. organization_id), an existing row of another parent is
    not updated but refused: ids are global, and moving an entity between organizations (or a
    service type between services) would leave its appointments pointing at the wrong parent.
    """
    table = model.__table__
    key = [column.name for column in table.primary_key]
    row = insert(model).values(values)
    upsert = row.on_conflict_do_update(
        index_elements=key,
        set_={name: row.excluded[name] for name in values if name not in key},
        where=(table.c[owner] == row.excluded[owner]) if owner else None,
    ).returning(*(table.c[name] for name in key))
    if (await _execute(conn, upsert, path)).first() is not None or owner is None:
        return
    current = await conn.scalar(select(table.c[owner]).where(table.c.id == values["id"]))
    parent = owner.removesuffix("_id").replace("_", " ")
    raise ConfigFileError(
        f"{path}.id: {values['id']} already belongs to another {parent} ({current}); ids are "
        f"global, so give this one a new id"
    )


async def _check_client_id_free(
    conn: AsyncConnection, application: ApplicationSpec, path: str
) -> None:
    other = (
        await conn.execute(
            select(RegisteredApplication.id, RegisteredApplication.organization_id).where(
                RegisteredApplication.client_id == application.client_id,
                RegisteredApplication.id != application.id,
            )
        )
    ).first()
    if other is not None:
        raise ConfigFileError(
            f"{path}.clientId: {application.client_id!r} is already the client id of "
            f"application {other.id} (organization {other.organization_id})"
        )


async def _replace_hours(
    conn: AsyncConnection, service_id: uuid.UUID, unit: CalendarUnitSpec, path: str
) -> None:
    """The unit's working hours and date exceptions become exactly the file's."""
    await _execute(
        conn,
        delete(WorkingHours).where(
            WorkingHours.service_id == service_id, WorkingHours.cu_index == unit.cu_index
        ),
        path,
    )
    await _execute(  # exception_hours go with them (ON DELETE CASCADE)
        conn,
        delete(CalendarException).where(
            CalendarException.service_id == service_id,
            CalendarException.cu_index == unit.cu_index,
        ),
        path,
    )
    rows = [
        {
            "service_id": service_id,
            "cu_index": unit.cu_index,
            "weekday": weekday,
            "start_minute": start,
            "end_minute": end,
        }
        for weekday, intervals in unit.working_hours.by_weekday().items()
        for start, end in intervals
    ]
    if rows:
        await _execute(conn, insert(WorkingHours), f"{path}.workingHours", rows)
    for e, exception in enumerate(unit.exceptions):
        exception_at = f"{path}.exceptions[{e}]"
        exception_id = (
            await _execute(
                conn,
                insert(CalendarException)
                .values(
                    service_id=service_id,
                    cu_index=unit.cu_index,
                    on_date=exception.date,
                    closed=exception.closed,
                )
                .returning(CalendarException.id),
                exception_at,
            )
        ).scalar_one()
        hours = [
            {"exception_id": exception_id, "start_minute": start, "end_minute": end}
            for start, end in exception.hours
        ]
        if hours:
            await _execute(conn, insert(ExceptionHours), f"{exception_at}.hours", hours)


async def _apply_service(
    conn: AsyncConnection, organization_id: uuid.UUID, service: ServiceSpec, path: str
) -> None:
    await _upsert(
        conn,
        Service,
        {
            "id": service.id,
            "organization_id": organization_id,
            "name": service.name,
            "service_category_id": service.service_category_id,
            "requires_customer": service.requires_customer,
            "requires_phone": service.requires_phone,
            "requires_email": service.requires_email,
            "ticket_prefix": service.ticket_prefix,
            "agents_booking_active": service.agents_booking_active,
            "booking_window_days": service.booking_window_days,
            "minimum_notice_minutes": service.minimum_notice_minutes,
            "self_booking_active": service.self_booking_active,
            "self_booking_window_days": service.self_booking_window_days,
            "self_minimum_notice_minutes": service.self_minimum_notice_minutes,
            "allow_anonymous_agent_booking": service.allow_anonymous_agent_booking,
            "inbox_id": service.inbox.id if service.inbox is not None else None,
            "inbox_name": service.inbox.name if service.inbox is not None else None,
            "initial_case_status": service.initial_case_status,
            "check_in_minutes_before": service.check_in_minutes_before,
            "check_in_minutes_after": service.check_in_minutes_after,
            "webhooks": list(service.webhooks),
        },
        path,
        owner="organization_id",
    )
    for t, service_type in enumerate(service.service_types):
        await _upsert(
            conn,
            ServiceType,
            {
                "id": service_type.id,
                "service_id": service.id,
                "name": service_type.name,
                "duration_minutes": service_type.duration_minutes,
                "channels": list(service_type.channels),
                "no_show_rate": float(service_type.no_show_rate),
                "color_code": service_type.color_code,
            },
            f"{path}.serviceTypes[{t}]",
            owner="service_id",
        )
    for c, unit in enumerate(service.calendar_units):
        unit_at = f"{path}.calendarUnits[{c}]"
        await _upsert(
            conn,
            CalendarUnit,
            {
                "service_id": service.id,
                "cu_index": unit.cu_index,
                "slot_minutes": unit.slot_minutes,
                "capacity": unit.capacity,
                "time_zone": unit.time_zone,
            },
            unit_at,
        )
        await _replace_hours(conn, service.id, unit, unit_at)


async def _apply_customers(conn: AsyncConnection, org: OrganizationSpec, path: str) -> None:
    """The customers table's field types, then the records: each record's values and key rows
    become the file's (a key value two records share is refused by the key's primary key)."""
    table = customers_table(org)
    for c, field_type in enumerate(org.customers.field_types):
        config = table.field_types[field_type.id]
        await _upsert(
            conn,
            CustomerFieldType,
            {
                "id": config.id,
                "organization_id": org.id,
                "name": config.name,
                "slug": config.slug,
                "kind": config.kind,
                "is_key": config.is_key,
                "is_required": config.is_required,
                "position": config.position,
                "options": list(config.options),
                "color_code": config.color_code,
            },
            f"{path}.customers.fieldTypes[{c}]",
            owner="organization_id",
        )
    for r, record in enumerate(org.customer_records):
        record_at = f"{path}.customerRecords[{r}]"
        # parse_config refused the file if a record breaks a rule (customer_record_problems)
        values = record_values(table, org.default_phone_region, record, [])
        display_name = record.display_name
        if display_name is None:
            display_name = display_name_of(table, values)
        await _upsert(
            conn,
            CustomerRecord,
            {
                "id": record.id,
                "organization_id": org.id,
                "display_name": display_name,
                "fields": values,
            },
            record_at,
            owner="organization_id",
        )
        await _execute(
            conn, delete(CustomerKey).where(CustomerKey.record_id == record.id), record_at
        )
        keys = [
            {"field_type_id": field_type_id, "value_digest": digest, "record_id": record.id}
            for field_type_id, digest in key_values(table, values).items()
        ]
        if keys:
            await _execute(conn, insert(CustomerKey), f"{record_at}.fields", keys)


async def _apply_organization(conn: AsyncConnection, org: OrganizationSpec, path: str) -> None:
    await _upsert(
        conn,
        Organization,
        {
            "id": org.id,
            "name": org.name,
            "time_zone": org.time_zone,
            "default_language": org.default_language,
            "supported_languages": list(org.supported_languages),
            "default_phone_region": org.default_phone_region,
            "customers_table_id": customers_table(org).id,
            "customer_display_name": org.customers.display_name,
        },
        path,
    )
    for a, application in enumerate(org.applications):
        application_at = f"{path}.applications[{a}]"
        await _check_client_id_free(conn, application, application_at)
        await _upsert(
            conn,
            RegisteredApplication,
            {
                "id": application.id,
                "organization_id": org.id,
                "client_id": application.client_id,
                "name": application.name,
                "enabled": application.enabled,
                "roles": list(application.roles),
                "hold_default_seconds": application.hold_default_seconds,
                "hold_max_seconds": application.hold_max_seconds,
            },
            application_at,
            owner="organization_id",
        )
    for c, category in enumerate(org.service_categories):
        await _upsert(
            conn,
            ServiceCategory,
            {"id": category.id, "organization_id": org.id, "name": category.name},
            f"{path}.serviceCategories[{c}]",
            owner="organization_id",
        )
    for s, service in enumerate(org.services):
        await _apply_service(conn, org.id, service, f"{path}.services[{s}]")
    await _apply_customers(conn, org, path)
    for f, field_type in enumerate(org.field_types):
        await _upsert(
            conn,
            FieldType,
            {
                "id": field_type.id,
                "organization_id": org.id,
                "name": field_type.name,
                "kind": field_type.kind,
                "options": list(field_type.options),
                "required": field_type.required,
            },
            f"{path}.fieldTypes[{f}]",
            owner="organization_id",
        )
    for g, tag in enumerate(org.tags):
        await _upsert(
            conn,
            Tag,
            {"id": tag.id, "organization_id": org.id, "name": tag.name},
            f"{path}.tags[{g}]",
            owner="organization_id",
        )
    if org.webhooks is not None:  # absent: left as it is, like every entity not mentioned
        await _upsert(
            conn,
            WebhookEndpoint,
            {
                "organization_id": org.id,
                "enabled": org.webhooks.enabled,
                "base_url": org.webhooks.base_url,
                "authorization_scheme": org.webhooks.authorization,
                "secrets": list(org.webhooks.secrets),
                "before_hook_timeout_ms": org.webhooks.before_hook_timeout_ms,
                "on_before_hook_failure": org.webhooks.on_before_hook_failure,
            },
            f"{path}.webhooks",
        )
    await _mark_configured(conn, org)


async def _mark_configured(conn: AsyncConnection, org: OrganizationSpec) -> None:
    """Move the organization's configuration version (every calendar's timestamp is at least
    it) when its part of the file differs from the one loaded last: reloading the same file
    changes nothing, any other load of it counts as a change."""
    digest = hashlib.sha256(org.model_dump_json().encode()).hexdigest()
    await conn.execute(
        update(Organization)
        .where(
            Organization.id == org.id,
            Organization.configuration_digest.is_distinct_from(digest),
        )
        .values(configured_at=func.clock_timestamp(), configuration_digest=digest)
    )


async def apply_config(conn: AsyncConnection, document: ConfigDocument) -> LoadSummary:
    """Create or update everything in `document`, inside the caller's transaction (never
    committed here). It runs in a savepoint: on a ConfigFileError none of its writes remain and
    the caller's transaction is still usable."""
    async with conn.begin_nested():
        for o, org in enumerate(document.organizations):
            await _apply_organization(conn, org, f"organizations[{o}]")
    orgs = document.organizations
    return LoadSummary(
        organizations=len(orgs),
        applications=[
            (a.id, a.client_id, a.name, tuple(map(str, a.roles)))
            for o in orgs
            for a in o.applications
        ],
        service_categories=sum(len(o.service_categories) for o in orgs),
        services=[(s.id, s.name) for o in orgs for s in o.services],
        service_types=sum(len(s.service_types) for o in orgs for s in o.services),
        calendar_units=sum(len(s.calendar_units) for o in orgs for s in o.services),
        customer_records=sum(len(o.customer_records) for o in orgs),
        customer_field_types=sum(len(o.customers.field_types) for o in orgs),
        field_types=sum(len(o.field_types) for o in orgs),
        tags=sum(len(o.tags) for o in orgs),
    )


async def load_file(engine: AsyncEngine, path: pathlib.Path) -> LoadSummary:
    """Read, parse and apply `path` in one transaction: a bad file changes nothing."""
    document = await read_config_file(path)
    async with engine.begin() as conn:
        return await apply_config(conn, document)
