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
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg import Record

from booking.domain import AppointmentStatus, Channel, CustomerFieldKind, FieldKind
from booking.service.availability import Interval, WorkingDay, merge_intervals
from booking.store import configuration
from booking.store.db import Database


@dataclass(frozen=True, slots=True)
class ApplicationConfig:
    id: uuid.UUID
    organization_id: uuid.UUID
    client_id: str
    name: str
    enabled: bool
    roles: frozenset[str]
    hold_default_seconds: int  # a slot hold's length when the request names none
    hold_max_seconds: int  # the longest a hold may last, its extension included


@dataclass(frozen=True, slots=True)
class ServiceTypeConfig:
    id: uuid.UUID
    name: str
    duration_minutes: int
    channels: tuple[Channel, ...]
    no_show_rate: float = 0.0
    color_code: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarUnitConfig:
    cu_index: int
    slot_minutes: int
    capacity: int
    zone: ZoneInfo
    weekly: dict[int, tuple[Interval, ...]]  # ISO weekday -> intervals
    exceptions: dict[date, tuple[Interval, ...]]  # date -> intervals; empty tuple: closed

    def day(self, on_date: date) -> WorkingDay:
        working = self.exceptions.get(on_date)
        if working is None:
            working = self.weekly.get(on_date.isoweekday(), ())
        return WorkingDay(working=working, slot_minutes=self.slot_minutes, capacity=self.capacity)


@dataclass(frozen=True, slots=True)
class BookingWindow:
    """Who may book how far ahead: `days_ahead` after today at most (None: no limit), and at
    least `minimum_notice_minutes` before the start."""

    active: bool = True
    days_ahead: int | None = None
    minimum_notice_minutes: int = 0


@dataclass(frozen=True, slots=True)
class Named:
    """An entity known by id and name only: a service category, an inbox."""

    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    id: uuid.UUID
    name: str
    requires_customer: bool
    requires_phone: bool
    requires_email: bool
    ticket_prefix: str
    # The agents' window: the one bookings over this API use.
    agents_window: BookingWindow
    self_window: BookingWindow
    initial_case_status: AppointmentStatus  # where a check-in moves a case: Waiting or Pending
    check_in_minutes_before: int  # check-in opens this long before the start ...
    check_in_minutes_after: int  # ... and closes this long after it
    types: dict[uuid.UUID, ServiceTypeConfig]
    units: dict[int, CalendarUnitConfig]
    category: Named | None = None
    inbox: Named | None = None
    allow_anonymous_agent_booking: bool = False
    # The service hooks that are called: switched on for the service, the organization's
    # webhooks enabled.
    webhooks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FieldTypeConfig:
    id: uuid.UUID
    name: str
    kind: FieldKind
    options: tuple[str, ...]
    required: bool


@dataclass(frozen=True, slots=True)
class CustomerFieldTypeConfig:
    id: uuid.UUID
    name: str
    slug: str
    kind: CustomerFieldKind
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

    def first_of_kind(self, kind: CustomerFieldKind) -> CustomerFieldTypeConfig | None:
        """The first field type of `kind` in position order (the customer's phone, email)."""
        return next((f for f in self.field_types.values() if f.kind is kind), None)


@dataclass(frozen=True, slots=True)
class WebhookEndpointConfig:
    """The organization's webhook receiver, as the before-hooks call it (the after-hooks'
    deliverer reads it from the database). The secrets never appear in a repr."""

    base_url: str
    authorization_scheme: str
    secrets: tuple[str, ...] = field(repr=False)
    before_hook_timeout_s: float
    refuse_on_before_hook_failure: bool


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
    # The configuration's version (`organization.configured_at`): a calendar's timestamp is
    # never older than the configuration it was answered with.
    configured_at: datetime
    customers: CustomersTable
    # None: no webhooks, or disabled.
    webhook_endpoint: WebhookEndpointConfig | None = None


def _application_config(row: Record) -> ApplicationConfig:
    return ApplicationConfig(
        id=row["id"],
        organization_id=row["organization_id"],
        client_id=row["client_id"],
        name=row["name"],
        enabled=row["enabled"],
        roles=frozenset(row["roles"]),
        hold_default_seconds=row["hold_default_seconds"],
        hold_max_seconds=row["hold_max_seconds"],
    )


async def load_application(
    conn: asyncpg.Connection, application_id: uuid.UUID
) -> ApplicationConfig | None:
    row = await configuration.application(conn, application_id)
    return None if row is None else _application_config(row)


async def load_catalog(conn: asyncpg.Connection, organization_id: uuid.UUID) -> Catalog | None:
    """Read one organization's whole configuration: one statement per table, no ORM walk."""
    rows = await configuration.organization_rows(conn, organization_id)
    if rows is None:
        return None
    org = rows.organization
    org_zone = ZoneInfo(org["time_zone"])

    types: dict[uuid.UUID, dict[uuid.UUID, ServiceTypeConfig]] = defaultdict(dict)
    for t in rows.service_types:
        types[t["service_id"]][t["id"]] = ServiceTypeConfig(
            t["id"],
            t["name"],
            t["duration_minutes"],
            tuple(Channel(c) for c in t["channels"]),
            no_show_rate=t["no_show_rate"],
            color_code=t["color_code"],
        )

    weekly: dict[tuple[uuid.UUID, int], dict[int, list[Interval]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for h in rows.working_hours:
        weekly[(h["service_id"], h["cu_index"])][h["weekday"]].append(
            Interval(h["start_minute"], h["end_minute"])
        )

    exceptions: dict[tuple[uuid.UUID, int], dict[date, list[Interval]]] = defaultdict(dict)
    for x in rows.exceptions:
        hours = exceptions[(x["service_id"], x["cu_index"])].setdefault(x["on_date"], [])
        if not x["closed"] and x["start_minute"] is not None:
            hours.append(Interval(x["start_minute"], x["end_minute"]))

    units: dict[uuid.UUID, dict[int, CalendarUnitConfig]] = defaultdict(dict)
    for u in rows.calendar_units:
        key = (u["service_id"], u["cu_index"])
        units[u["service_id"]][u["cu_index"]] = CalendarUnitConfig(
            cu_index=u["cu_index"],
            slot_minutes=u["slot_minutes"],
            capacity=u["capacity"],
            zone=ZoneInfo(u["time_zone"]) if u["time_zone"] else org_zone,
            weekly={day: merge_intervals(iv) for day, iv in weekly[key].items()},
            exceptions={d: merge_intervals(iv) for d, iv in exceptions[key].items()},
        )

    endpoint = _webhook_endpoint(rows.webhook_endpoint)
    categories = {c["id"]: Named(c["id"], c["name"]) for c in rows.service_categories}
    services = {
        s["id"]: ServiceConfig(
            id=s["id"],
            name=s["name"],
            requires_customer=s["requires_customer"],
            requires_phone=s["requires_phone"],
            requires_email=s["requires_email"],
            ticket_prefix=s["ticket_prefix"],
            agents_window=BookingWindow(
                s["agents_booking_active"],
                s["booking_window_days"],
                s["minimum_notice_minutes"],
            ),
            self_window=BookingWindow(
                s["self_booking_active"],
                s["self_booking_window_days"],
                s["self_minimum_notice_minutes"],
            ),
            initial_case_status=AppointmentStatus(s["initial_case_status"]),
            check_in_minutes_before=s["check_in_minutes_before"],
            check_in_minutes_after=s["check_in_minutes_after"],
            types=dict(types[s["id"]]),
            units=dict(units[s["id"]]),
            category=categories.get(s["service_category_id"]),
            inbox=Named(s["inbox_id"], s["inbox_name"]) if s["inbox_id"] is not None else None,
            allow_anonymous_agent_booking=s["allow_anonymous_agent_booking"],
            webhooks=frozenset(s["webhooks"]) if endpoint is not None else frozenset(),
        )
        for s in rows.services
    }
    field_types = {
        f["id"]: FieldTypeConfig(
            f["id"], f["name"], FieldKind(f["kind"]), tuple(f["options"]), f["required"]
        )
        for f in rows.field_types
    }
    customers = CustomersTable(
        id=org["customers_table_id"],
        display_name_template=org["customer_display_name"],
        field_types={
            f["id"]: CustomerFieldTypeConfig(
                f["id"],
                f["name"],
                f["slug"],
                CustomerFieldKind(f["kind"]),
                f["is_key"],
                f["is_required"],
                f["position"],
                tuple(f["options"]),
                f["color_code"],
            )
            for f in rows.customer_field_types
        },
    )
    return Catalog(
        organization_id=org["id"],
        zone=org_zone,
        default_language=org["default_language"],
        supported_languages=tuple(org["supported_languages"]),
        default_phone_region=org["default_phone_region"],
        services=services,
        field_types=field_types,
        tags={t["id"]: t["name"] for t in rows.tags},
        configured_at=org["configured_at"],
        customers=customers,
        webhook_endpoint=endpoint,
    )


def _webhook_endpoint(row: Record | None) -> WebhookEndpointConfig | None:
    if row is None or not row["enabled"]:
        return None
    return WebhookEndpointConfig(
        base_url=row["base_url"],
        authorization_scheme=row["authorization_scheme"],
        secrets=tuple(row["secrets"]),
        before_hook_timeout_s=row["before_hook_timeout_ms"] / 1000,
        refuse_on_before_hook_failure=row["on_before_hook_failure"] == "refuse",
    )


T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    loaded_at: float


Loader = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[Any]]
CONFIG_CACHE_MAX_ENTRIES = 10_000  # applications and organizations together, per process


@dataclass
class ConfigCache:
    """Applications and catalogs by id, each kept for `ttl_s` seconds (0 disables caching),
    loaded through the process's `Database` (its gate bounds these connections too).

    Refresh ahead: an entry past half its TTL is still served, and one task reloads it in the
    background, so under steady traffic no request waits for configuration and nothing served
    is ever older than the TTL. Past the TTL, callers wait for a fresh load. Single flight: one
    load per entry at a time; the others that need it meanwhile wait for that load.

    Bounded, since any caller with a valid token can name unknown application ids (each cached
    as None): an entry is dropped once past its TTL (it would not be served any more), and
    beyond `max_entries` the oldest load goes first."""

    db: Database
    ttl_s: float
    monotonic: Callable[[], float] = time.monotonic
    max_entries: int = CONFIG_CACHE_MAX_ENTRIES
    # Keyed by (kind, id): ("application", application id) or ("catalog", organization id).
    # In load order (a reload moves its entry to the end): the oldest is first.
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
            async with self.db.read() as conn:
                value = await load(conn, slot[1])
            self._keep(slot, _Entry(value, started))
            future.set_result(value)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:  # reaches every waiter; a background refresh has none
            future.set_exception(error)
        finally:
            del self._loading[slot]

    def _keep(self, slot: tuple[str, uuid.UUID], entry: _Entry[Any]) -> None:
        """Store a fresh load at the end, after dropping from the front what is past its TTL
        and what exceeds `max_entries`."""
        entries = self._entries
        entries.pop(slot, None)
        if self.ttl_s <= 0:
            return
        now = self.monotonic()
        while entries:
            oldest = next(iter(entries))
            if len(entries) < self.max_entries and now - entries[oldest].loaded_at < self.ttl_s:
                break
            del entries[oldest]
        entries[slot] = entry

    @property
    def cached_entries(self) -> int:
        return len(self._entries)

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
