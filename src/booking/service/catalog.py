"""An organization's configuration as plain data, cached per process for a short TTL.

Configuration (services, service types, calendar units, hours, field types, tags) changes rarely
and is read by every request, so each process keeps a snapshot per organization for
CONFIG_CACHE_TTL_S seconds (default 5) instead of re-reading it on every booking. A change loaded
with `booking-api load` is therefore seen by every process within that TTL. Appointments are never
cached: vacancy is always decided by the database, inside the booking transaction.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.service.availability import CalendarDay, Interval, merge_intervals
from booking.store.models import (
    CalendarException,
    CalendarUnit,
    CustomerFieldType,
    ExceptionHours,
    FieldType,
    Organization,
    RegisteredApplication,
    Service,
    ServiceType,
    Tag,
    WorkingHours,
)


@dataclass(frozen=True, slots=True)
class ApplicationConfig:
    id: uuid.UUID
    organization_id: uuid.UUID
    client_id: str
    name: str
    enabled: bool
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class ServiceTypeConfig:
    id: uuid.UUID
    name: str
    duration_minutes: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CalendarUnitConfig:
    cu_index: int
    slot_minutes: int
    capacity: int
    zone: ZoneInfo
    weekly: dict[int, tuple[Interval, ...]]  # ISO weekday -> intervals
    exceptions: dict[date, tuple[Interval, ...]]  # date -> intervals; empty tuple: closed

    def day(self, on_date: date) -> CalendarDay:
        working = self.exceptions.get(on_date)
        if working is None:
            working = self.weekly.get(on_date.isoweekday(), ())
        return CalendarDay(working=working, slot_minutes=self.slot_minutes, capacity=self.capacity)

    def closed_by_exception(self, on_date: date) -> bool:
        return self.exceptions.get(on_date) == ()


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    id: uuid.UUID
    name: str
    requires_customer: bool
    requires_phone: bool
    requires_email: bool
    ticket_prefix: str
    booking_window_days: int | None
    types: dict[uuid.UUID, ServiceTypeConfig]
    units: dict[int, CalendarUnitConfig]


@dataclass(frozen=True, slots=True)
class FieldTypeConfig:
    id: uuid.UUID
    name: str
    kind: str
    options: tuple[str, ...]
    required: bool


@dataclass(frozen=True, slots=True)
class CustomerFieldTypeConfig:
    id: uuid.UUID
    name: str
    slug: str
    kind: str  # text, number, boolean, date, choice, phone, email
    is_key: bool
    is_required: bool
    position: int
    options: tuple[str, ...]
    color_code: str | None


@dataclass(frozen=True, slots=True)
class CustomersTable:
    """The organization's one customers table: its stable id (the original's dataTableId), the
    displayName template ("{{first-name}} {{last-name}}", None: its text fields in position
    order) and its field types, in position order."""

    id: uuid.UUID
    display_name_template: str | None
    field_types: dict[uuid.UUID, CustomerFieldTypeConfig]

    def by_slug(self, slug: str) -> CustomerFieldTypeConfig | None:
        return next((f for f in self.field_types.values() if f.slug == slug), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    organization_id: uuid.UUID
    zone: ZoneInfo
    default_language: str
    supported_languages: tuple[str, ...]
    default_phone_region: str
    services: dict[uuid.UUID, ServiceConfig]
    field_types: dict[uuid.UUID, FieldTypeConfig]
    tags: dict[uuid.UUID, str]
    customers: CustomersTable


async def load_application(
    conn: AsyncConnection, application_id: uuid.UUID
) -> ApplicationConfig | None:
    a = RegisteredApplication
    row = (
        await conn.execute(
            select(a.id, a.organization_id, a.client_id, a.name, a.enabled, a.roles).where(
                a.id == application_id
            )
        )
    ).first()
    if row is None:
        return None
    return ApplicationConfig(
        id=row.id,
        organization_id=row.organization_id,
        client_id=row.client_id,
        name=row.name,
        enabled=row.enabled,
        roles=frozenset(row.roles),
    )


async def load_catalog(conn: AsyncConnection, organization_id: uuid.UUID) -> Catalog | None:
    """Read one organization's whole configuration: one statement per table, no ORM walk."""
    org = (
        await conn.execute(select(Organization).where(Organization.id == organization_id))
    ).first()
    if org is None:
        return None
    org_zone = ZoneInfo(org.time_zone)

    service_rows = (
        await conn.execute(select(Service).where(Service.organization_id == organization_id))
    ).all()
    service_ids = [s.id for s in service_rows]

    types: dict[uuid.UUID, dict[uuid.UUID, ServiceTypeConfig]] = defaultdict(dict)
    for t in await conn.execute(select(ServiceType).where(ServiceType.service_id.in_(service_ids))):
        types[t.service_id][t.id] = ServiceTypeConfig(
            t.id, t.name, t.duration_minutes, tuple(t.channels)
        )

    weekly: dict[tuple[uuid.UUID, int], dict[int, list[Interval]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for h in await conn.execute(
        select(WorkingHours).where(WorkingHours.service_id.in_(service_ids))
    ):
        weekly[(h.service_id, h.cu_index)][h.weekday].append(Interval(h.start_minute, h.end_minute))

    exceptions: dict[tuple[uuid.UUID, int], dict[date, list[Interval]]] = defaultdict(dict)
    e, eh = CalendarException, ExceptionHours
    for x in await conn.execute(
        select(e.service_id, e.cu_index, e.on_date, e.closed, eh.start_minute, eh.end_minute)
        .outerjoin(eh, eh.exception_id == e.id)
        .where(e.service_id.in_(service_ids))
    ):
        hours = exceptions[(x.service_id, x.cu_index)].setdefault(x.on_date, [])
        if not x.closed and x.start_minute is not None:
            hours.append(Interval(x.start_minute, x.end_minute))

    units: dict[uuid.UUID, dict[int, CalendarUnitConfig]] = defaultdict(dict)
    for u in await conn.execute(
        select(CalendarUnit).where(CalendarUnit.service_id.in_(service_ids))
    ):
        key = (u.service_id, u.cu_index)
        units[u.service_id][u.cu_index] = CalendarUnitConfig(
            cu_index=u.cu_index,
            slot_minutes=u.slot_minutes,
            capacity=u.capacity,
            zone=ZoneInfo(u.time_zone) if u.time_zone else org_zone,
            weekly={day: merge_intervals(iv) for day, iv in weekly[key].items()},
            exceptions={d: merge_intervals(iv) for d, iv in exceptions[key].items()},
        )

    services = {
        s.id: ServiceConfig(
            id=s.id,
            name=s.name,
            requires_customer=s.requires_customer,
            requires_phone=s.requires_phone,
            requires_email=s.requires_email,
            ticket_prefix=s.ticket_prefix,
            booking_window_days=s.booking_window_days,
            types=dict(types[s.id]),
            units=dict(units[s.id]),
        )
        for s in service_rows
    }
    field_types = {
        f.id: FieldTypeConfig(f.id, f.name, f.kind, tuple(f.options), f.required)
        for f in await conn.execute(
            select(FieldType).where(FieldType.organization_id == organization_id)
        )
    }
    tags = {
        t.id: t.name
        for t in await conn.execute(
            select(Tag.id, Tag.name).where(Tag.organization_id == organization_id)
        )
    }
    c = CustomerFieldType
    customers = CustomersTable(
        id=org.customers_table_id,
        display_name_template=org.customer_display_name,
        field_types={
            f.id: CustomerFieldTypeConfig(
                f.id,
                f.name,
                f.slug,
                f.kind,
                f.is_key,
                f.is_required,
                f.position,
                tuple(f.options),
                f.color_code,
            )
            for f in await conn.execute(
                select(c).where(c.organization_id == organization_id).order_by(c.position, c.slug)
            )
        },
    )
    return Catalog(
        organization_id=org.id,
        zone=org_zone,
        default_language=org.default_language,
        supported_languages=tuple(org.supported_languages),
        default_phone_region=org.default_phone_region,
        services=services,
        field_types=field_types,
        tags=tags,
        customers=customers,
    )


T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    loaded_at: float


Loader = Callable[[AsyncConnection, uuid.UUID], Awaitable[Any]]


@dataclass
class ConfigCache:
    """Applications and catalogs by id, each kept for `ttl_s` seconds (0 disables caching).

    Refresh ahead: an entry past half its TTL is still served, and one task reloads it in the
    background, so under steady traffic no request waits for configuration and nothing served
    is ever older than the TTL. Past the TTL, callers wait for a fresh load. Single flight: one
    load per entry at a time; the others that need it meanwhile wait for that load."""

    engine: AsyncEngine
    ttl_s: float
    monotonic: Callable[[], float] = time.monotonic
    # Keyed by (kind, id): ("application", application id) or ("catalog", organization id).
    _entries: dict[tuple[str, uuid.UUID], _Entry[Any]] = field(default_factory=dict)
    _loading: dict[tuple[str, uuid.UUID], asyncio.Future[Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _get(self, slot: tuple[str, uuid.UUID], load: Loader) -> Any:
        entry = self._entries.get(slot)
        pending = self._loading.get(slot)
        if entry is not None:
            age = self.monotonic() - entry.loaded_at
            if age < self.ttl_s / 2:
                return entry.value
            if age < self.ttl_s:
                if pending is None:
                    self._start_load(slot, load)
                return entry.value
        if pending is None:
            pending = self._start_load(slot, load)
        # shield: a caller that gives up (cancelled request) does not cancel the others' load
        return await asyncio.shield(pending)

    def _start_load(self, slot: tuple[str, uuid.UUID], load: Loader) -> asyncio.Future[Any]:
        """Register the load at once (so that it is the only one), and run it as a task."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "unretrieved"
        self._loading[slot] = future
        task = asyncio.create_task(self._fill(slot, load, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return future

    async def _fill(
        self, slot: tuple[str, uuid.UUID], load: Loader, future: asyncio.Future[Any]
    ) -> None:
        try:
            started = self.monotonic()
            async with self.engine.connect() as conn:
                value = await load(conn, slot[1])
            self._entries[slot] = _Entry(value, started)
            future.set_result(value)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:  # reaches every waiter; a background refresh has none
            future.set_exception(error)
        finally:
            del self._loading[slot]

    async def close(self) -> None:
        """Stop the loads still running (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def application(self, application_id: uuid.UUID) -> ApplicationConfig | None:
        value: ApplicationConfig | None = await self._get(
            ("application", application_id), load_application
        )
        return value

    async def catalog(self, organization_id: uuid.UUID) -> Catalog:
        value: Catalog | None = await self._get(("catalog", organization_id), load_catalog)
        if value is None:  # an application always belongs to an organization (foreign key)
            raise LookupError(f"organization {organization_id} vanished")
        return value

    def clear(self) -> None:
        self._entries.clear()
