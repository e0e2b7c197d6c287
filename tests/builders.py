"""Small typed builders for test data: each inserts one thing with sensible defaults and
returns its id. Only what a test says differs from the defaults."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.store.loader import ConfigDocument, apply_config
from booking.store.loader.document import WEEKDAYS, duplicates
from booking.store.models import (
    CalendarException,
    CalendarUnit,
    CustomerFieldType,
    CustomerRecord,
    ExceptionHours,
    FieldType,
    Organization,
    RegisteredApplication,
    Service,
    ServiceType,
    Tag,
    WorkingHours,
)

MANAGER = "Appointments Manager"
CUSTOMERS_MANAGER = "Customers Manager"
ALL_WEEK = (1, 2, 3, 4, 5, 6, 7)


async def organization(
    conn: AsyncConnection,
    *,
    time_zone: str = "Europe/London",
    default_language: str = "en",
    supported_languages: Sequence[str] = ("en", "fr", "he"),
    default_phone_region: str = "US",
    name: str = "Test Org",
) -> uuid.UUID:
    org_id = uuid.uuid4()
    await conn.execute(
        insert(Organization).values(
            id=org_id,
            name=name,
            time_zone=time_zone,
            default_language=default_language,
            supported_languages=list(supported_languages),
            default_phone_region=default_phone_region,
        )
    )
    return org_id


async def application(
    conn: AsyncConnection,
    organization_id: uuid.UUID,
    *,
    client_id: str | None = None,
    roles: Sequence[str] = (MANAGER,),
    enabled: bool = True,
    hold_default_seconds: int = 300,
    hold_max_seconds: int = 900,
) -> tuple[uuid.UUID, str]:
    """Returns (application id, OAuth client id)."""
    app_id = uuid.uuid4()
    client_id = client_id or f"client-{app_id.hex[:8]}"
    await conn.execute(
        insert(RegisteredApplication).values(
            id=app_id,
            organization_id=organization_id,
            client_id=client_id,
            name="Test partner",
            enabled=enabled,
            roles=list(roles),
            hold_default_seconds=hold_default_seconds,
            hold_max_seconds=hold_max_seconds,
        )
    )
    return app_id, client_id


async def service(
    conn: AsyncConnection,
    organization_id: uuid.UUID,
    *,
    name: str = "Passport renewal",
    requires_customer: bool = False,
    requires_phone: bool = False,
    requires_email: bool = False,
    ticket_prefix: str = "A",
    booking_window_days: int | None = 60,
    initial_case_status: str = "Waiting",
    check_in_minutes_before: int = 60,
    check_in_minutes_after: int = 15,
) -> uuid.UUID:
    service_id = uuid.uuid4()
    await conn.execute(
        insert(Service).values(
            id=service_id,
            organization_id=organization_id,
            name=name,
            requires_customer=requires_customer,
            requires_phone=requires_phone,
            requires_email=requires_email,
            ticket_prefix=ticket_prefix,
            booking_window_days=booking_window_days,
            initial_case_status=initial_case_status,
            check_in_minutes_before=check_in_minutes_before,
            check_in_minutes_after=check_in_minutes_after,
        )
    )
    return service_id


async def service_type(
    conn: AsyncConnection,
    service_id: uuid.UUID,
    *,
    duration: int = 30,
    channels: Sequence[str] = ("FaceToFace", "Video", "Phone"),
    name: str | None = None,
) -> uuid.UUID:
    type_id = uuid.uuid4()
    await conn.execute(
        insert(ServiceType).values(
            id=type_id,
            service_id=service_id,
            name=name or f"{duration}-minute visit",
            duration_minutes=duration,
            channels=list(channels),
        )
    )
    return type_id


async def calendar_unit(
    conn: AsyncConnection,
    service_id: uuid.UUID,
    *,
    cu_index: int = 0,
    slot_minutes: int = 10,
    capacity: int = 1,
    time_zone: str | None = None,
    hours: Iterable[tuple[int, int]] = ((480, 720), (780, 1020)),
    weekdays: Iterable[int] = ALL_WEEK,
) -> int:
    """A calendar unit open `hours` (default 08:00-12:00 and 13:00-17:00) on `weekdays`."""
    await conn.execute(
        insert(CalendarUnit).values(
            service_id=service_id,
            cu_index=cu_index,
            slot_minutes=slot_minutes,
            capacity=capacity,
            time_zone=time_zone,
        )
    )
    rows = [
        {
            "service_id": service_id,
            "cu_index": cu_index,
            "weekday": weekday,
            "start_minute": start,
            "end_minute": end,
        }
        for weekday in weekdays
        for start, end in hours
    ]
    if rows:
        await conn.execute(insert(WorkingHours), rows)
    return cu_index


async def exception(
    conn: AsyncConnection,
    service_id: uuid.UUID,
    on_date: date,
    *,
    cu_index: int = 0,
    hours: Iterable[tuple[int, int]] = (),
) -> None:
    """A date exception: closed when `hours` is empty, else open only those hours."""
    hours = list(hours)
    exception_id = (
        await conn.execute(
            insert(CalendarException)
            .values(service_id=service_id, cu_index=cu_index, on_date=on_date, closed=not hours)
            .returning(CalendarException.id)
        )
    ).scalar_one()
    for start, end in hours:
        await conn.execute(
            insert(ExceptionHours).values(
                exception_id=exception_id, start_minute=start, end_minute=end
            )
        )


async def customer(
    conn: AsyncConnection, organization_id: uuid.UUID, *, display_name: str = "Ada Lovelace"
) -> uuid.UUID:
    customer_id = uuid.uuid4()
    await conn.execute(
        insert(CustomerRecord).values(
            id=customer_id, organization_id=organization_id, display_name=display_name
        )
    )
    return customer_id


async def field_type(
    conn: AsyncConnection,
    organization_id: uuid.UUID,
    *,
    kind: str = "text",
    name: str | None = None,
    options: Sequence[str] = (),
    required: bool = False,
) -> uuid.UUID:
    field_type_id = uuid.uuid4()
    await conn.execute(
        insert(FieldType).values(
            id=field_type_id,
            organization_id=organization_id,
            name=name or f"{kind} field",
            kind=kind,
            options=list(options),
            required=required,
        )
    )
    return field_type_id


async def customer_field_type(
    conn: AsyncConnection,
    organization_id: uuid.UUID,
    slug: str,
    *,
    kind: str = "text",
    name: str | None = None,
    is_key: bool = False,
    is_required: bool = False,
    position: int = 0,
    options: Sequence[str] = (),
    color_code: str | None = None,
) -> uuid.UUID:
    """A field of the organization's customers table."""
    field_type_id = uuid.uuid4()
    await conn.execute(
        insert(CustomerFieldType).values(
            id=field_type_id,
            organization_id=organization_id,
            name=name or slug.replace("-", " ").capitalize(),
            slug=slug,
            kind=kind,
            is_key=is_key,
            is_required=is_required,
            position=position,
            options=list(options),
            color_code=color_code,
        )
    )
    return field_type_id


async def tag(conn: AsyncConnection, organization_id: uuid.UUID, *, name: str = "VIP") -> uuid.UUID:
    tag_id = uuid.uuid4()
    await conn.execute(insert(Tag).values(id=tag_id, organization_id=organization_id, name=name))
    return tag_id


@dataclass
class World:
    """One organization with one application and one bookable service: what most tests need."""

    organization_id: uuid.UUID
    application_id: uuid.UUID
    client_id: str
    service_id: uuid.UUID
    service_type_id: uuid.UUID  # 30 minutes, every channel
    cu_index: int = 0
    extra: dict[str, uuid.UUID] = field(default_factory=dict)

    def calendar_path(self, on_date: date | str, cu_index: int | None = None) -> str:
        cu = self.cu_index if cu_index is None else cu_index
        return f"/{self.application_id}/calendars/{self.service_id}/{on_date}/{cu}"

    def appointments_path(self, on_date: date | str, cu_index: int | None = None) -> str:
        return self.calendar_path(on_date, cu_index) + "/appointments"

    def reservations_path(self, on_date: date | str, cu_index: int | None = None) -> str:
        return self.calendar_path(on_date, cu_index) + "/reservations"

    def body(self, start: int, **overrides: object) -> dict[str, object]:
        body: dict[str, object] = {
            "serviceTypeId": str(self.service_type_id),
            "startTime": start,
            "channel": "FaceToFace",
        }
        body.update(overrides)
        return body


async def world(
    conn: AsyncConnection,
    *,
    time_zone: str = "Europe/London",
    capacity: int = 1,
    slot_minutes: int = 10,
    duration: int = 30,
    hours: Iterable[tuple[int, int]] = ((480, 720), (780, 1020)),
    service_options: Mapping[str, object] | None = None,
    application_options: Mapping[str, object] | None = None,
    default_phone_region: str = "US",
) -> World:
    org_id = await organization(
        conn, time_zone=time_zone, default_phone_region=default_phone_region
    )
    app_id, client_id = await application(conn, org_id, **dict(application_options or {}))  # type: ignore[arg-type]
    service_id = await service(conn, org_id, **dict(service_options or {}))  # type: ignore[arg-type]
    type_id = await service_type(conn, service_id, duration=duration)
    await calendar_unit(conn, service_id, slot_minutes=slot_minutes, capacity=capacity, hours=hours)
    return World(org_id, app_id, client_id, service_id, type_id)


def organization_config(
    *, service: Mapping[str, object] | None = None, service_type: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """A configuration file's organization as plain data (camelCase, as in the YAML), shaped
    like `world`: London, one application, one service with one 30-minute type and one unit
    open 08-12 and 13-17 every day. `service` and `service_type` add or replace their keys."""
    hours = [[480, 720], [780, 1020]]
    return {
        "id": str(uuid.uuid4()),
        "name": "Configured org",
        "timeZone": "Europe/London",
        "supportedLanguages": ["en"],
        "defaultLanguage": "en",
        "defaultPhoneRegion": "GB",
        "applications": [
            {
                "id": str(uuid.uuid4()),
                "clientId": f"client-{uuid.uuid4().hex[:8]}",
                "name": "Partner",
                "roles": [MANAGER],
            }
        ],
        "services": [
            {
                "id": str(uuid.uuid4()),
                "name": "Passport renewal",
                "ticketPrefix": "A",
                "serviceTypes": [
                    {
                        "id": str(uuid.uuid4()),
                        "name": "30-minute visit",
                        "durationMinutes": 30,
                        "channels": ["FaceToFace"],
                    }
                    | dict(service_type or {})
                ],
                "calendarUnits": [
                    {
                        "cuIndex": 0,
                        "slotMinutes": 10,
                        "workingHours": {day: hours for day in WEEKDAYS},
                    }
                ],
            }
            | dict(service or {})
        ],
    }


async def load(conn: AsyncConnection, *organizations: Mapping[str, Any]) -> None:
    """Apply organizations given as plain data through the configuration loader."""
    document = ConfigDocument.model_validate({"organizations": list(organizations)})
    assert not duplicates(document)
    await apply_config(conn, document)


def world_of(config: Mapping[str, Any]) -> World:
    """The `World` of an organization made by `organization_config`."""
    service = config["services"][0]
    application = config["applications"][0]
    return World(
        uuid.UUID(config["id"]),
        uuid.UUID(application["id"]),
        application["clientId"],
        uuid.UUID(service["id"]),
        uuid.UUID(service["serviceTypes"][0]["id"]),
    )


async def customers_table_id(conn: AsyncConnection, organization_id: uuid.UUID) -> uuid.UUID:
    """The organization's customers table (the schema gives each organization one)."""
    query = select(Organization.customers_table_id).where(Organization.id == organization_id)
    table_id: uuid.UUID = (await conn.execute(query)).scalar_one()
    return table_id


@dataclass
class People:
    """The customers table of a world: its field types' ids, by what they hold."""

    first_name: uuid.UUID  # text, required
    last_name: uuid.UUID  # text, required
    phone: uuid.UUID
    email: uuid.UUID
    national_id: uuid.UUID  # text, key
    member_number: uuid.UUID  # number, key
    vip: uuid.UUID  # boolean
    born: uuid.UUID  # date
    tier: uuid.UUID  # choice: Gold, Silver

    def fields(self, **values: object) -> dict[str, object]:
        """A create body's `fields`, by attribute name: fields(first_name="Ada")."""
        return {str(getattr(self, name)): value for name, value in values.items()}


async def people(conn: AsyncConnection, world: World) -> People:
    """Give the world's organization a customers table ("{{first-name}} {{last-name}}") and its
    application the Customers Manager role."""
    org = world.organization_id
    await conn.execute(
        update(Organization)
        .where(Organization.id == org)
        .values(customer_display_name="{{first-name}} {{last-name}}")
    )
    await conn.execute(
        update(RegisteredApplication)
        .where(RegisteredApplication.id == world.application_id)
        .values(roles=[MANAGER, CUSTOMERS_MANAGER])
    )
    specs: list[tuple[str, dict[str, object]]] = [
        ("first-name", {"is_required": True}),
        ("last-name", {"is_required": True}),
        ("phone", {"kind": "phone"}),
        ("email", {"kind": "email"}),
        ("national-id", {"is_key": True, "color_code": "orange"}),
        ("member-number", {"kind": "number", "is_key": True}),
        ("vip", {"kind": "boolean"}),
        ("born", {"kind": "date"}),
        ("tier", {"kind": "choice", "options": ("Gold", "Silver")}),
    ]
    ids = [
        await customer_field_type(conn, org, slug, position=p, **options)  # type: ignore[arg-type]
        for p, (slug, options) in enumerate(specs)
    ]
    return People(*ids)
