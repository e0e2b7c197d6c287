"""The reference booking: the same transaction as src/booking/service/appointments.py, written
directly on asyncpg as a raw ASGI app (no FastAPI, no pydantic, no SQLAlchemy), served by uvicorn
with the same settings as the API. `make bench` compares the API's booking throughput with
this floor.

    POST /{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments
    {"serviceTypeId": "...", "startTime": 570, "channel": "FaceToFace", ...}

BEGIN and the calendar-day's advisory lock in one round trip, with the store's own statement
(`booking.store.db.lock_calendar_day`, as the API sends it); count the
overlapping non-cancelled appointments and live slot holds (one statement, as the API reads
them); 409 when that reaches the capacity; else bump the ticket
counter and insert the full appointment row in one statement; COMMIT; 201 with a small JSON body.
Four round trips, as the API's booking: the pool sends no reset query when a connection comes
back (asyncpg's default would, a fifth; the API's pool does not either).

Deliberately minimal: no authentication, no phone/email validation (stored as sent), only the
checks a booking cannot do without (known service, unit and type, working hours, slot grid).
Configuration is read once at startup. Environment: REFERENCE_DATABASE_URL (postgresql://...),
REFERENCE_POOL_SIZE (default 20; `make bench --reference-pool-size`: with 20 connections the
reference did better than with the API's 10, so it gets 20).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from booking.domain import CalendarDay
from booking.store.db import lock_calendar_day

OVERLAPPING = """
SELECT count(*) FROM (
    SELECT start_minute, duration_minutes FROM appointment
    WHERE service_id = $1 AND on_date = $2 AND cu_index = $3 AND status <> 'Cancelled'
    UNION ALL
    SELECT start_minute, duration_minutes FROM slot_hold
    WHERE service_id = $1 AND on_date = $2 AND cu_index = $3
      AND released_at IS NULL AND consumed_by IS NULL AND expires_at > $6
) AS occupying
WHERE start_minute < $5 AND start_minute + duration_minutes > $4
"""

INSERT = """
WITH ticket AS (
    INSERT INTO ticket_counter (service_id, on_date, last_number) VALUES ($3, $5, 1)
    ON CONFLICT (service_id, on_date)
    DO UPDATE SET last_number = ticket_counter.last_number + 1
    RETURNING last_number
)
INSERT INTO appointment (
    id, organization_id, service_id, cu_index, on_date, start_minute, duration_minutes,
    starts_at, time_zone, service_type_id, status, status_date, ticket_prefix, ticket_number,
    customer_record_id, channel, language, contact_phone, contact_email, prevent_self_check_in,
    fields, tag_ids, bypassed_timeslot_check, created_by_application_id, created_at,
    cancelled_at, closed_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'Planned', $11, $12, ticket.last_number,
       NULL, $13, $14, $15, $16, false, '{}', '{}', false, $17, $11, NULL, NULL
FROM ticket
RETURNING ticket_number
"""


@dataclass(frozen=True)
class Unit:
    capacity: int
    slot_minutes: int
    zone: ZoneInfo
    hours: dict[int, list[tuple[int, int]]]  # ISO weekday -> [(start, end)]


@dataclass(frozen=True)
class Config:
    organization: dict[uuid.UUID, uuid.UUID]  # application id -> organization id
    language: dict[uuid.UUID, str]  # organization id -> default language
    prefix: dict[uuid.UUID, str]  # service id -> ticket prefix
    duration: dict[tuple[uuid.UUID, uuid.UUID], int]  # (service id, type id) -> minutes
    units: dict[tuple[uuid.UUID, int], Unit]


async def load_config(conn: asyncpg.Connection | PoolConnectionProxy) -> Config:
    zones = {
        r["id"]: ZoneInfo(r["time_zone"])
        for r in await conn.fetch("SELECT id, time_zone FROM organization")
    }
    hours: dict[tuple[uuid.UUID, int], dict[int, list[tuple[int, int]]]] = {}
    for r in await conn.fetch(
        "SELECT service_id, cu_index, weekday, start_minute, end_minute FROM working_hours"
    ):
        days = hours.setdefault((r["service_id"], r["cu_index"]), {})
        days.setdefault(r["weekday"], []).append((r["start_minute"], r["end_minute"]))
    units = {}
    for r in await conn.fetch(
        "SELECT u.service_id, u.cu_index, u.capacity, u.slot_minutes, u.time_zone, "
        "s.organization_id FROM calendar_unit u JOIN service s ON s.id = u.service_id"
    ):
        key = (r["service_id"], r["cu_index"])
        zone = ZoneInfo(r["time_zone"]) if r["time_zone"] else zones[r["organization_id"]]
        units[key] = Unit(r["capacity"], r["slot_minutes"], zone, hours.get(key, {}))
    return Config(
        organization={
            r["id"]: r["organization_id"]
            for r in await conn.fetch(
                "SELECT id, organization_id FROM registered_application WHERE enabled"
            )
        },
        language={
            r["id"]: r["default_language"]
            for r in await conn.fetch("SELECT id, default_language FROM organization")
        },
        prefix={
            r["id"]: r["ticket_prefix"]
            for r in await conn.fetch("SELECT id, ticket_prefix FROM service")
        },
        duration={
            (r["service_id"], r["id"]): r["duration_minutes"]
            for r in await conn.fetch("SELECT id, service_id, duration_minutes FROM service_type")
        },
        units=units,
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """A connection given back to the pool is not reset with a query (asyncpg's default sends
    one: a fifth round trip per booking). Like the API's pool (`booking.store.db.create_pool`):
    nothing here leaves session state, and asyncpg still rolls back an open transaction."""
    return None


class Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        self.status = status
        self.code = code


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Refused(404, "not_found") from None


def on_grid_inside_hours(unit: Unit, on_date: date, start: int, duration: int) -> bool:
    for open_at, close_at in unit.hours.get(on_date.isoweekday(), []):
        if open_at <= start and start + duration <= close_at:
            return (start - open_at) % unit.slot_minutes == 0
    return False


class ReferenceApp:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.config: Config | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            status, payload, location = await self.book(scope["method"], scope["path"], body)
        except Refused as refused:
            status, payload, location = refused.status, orjson.dumps({"code": refused.code}), None
        await respond(send, status, payload, location)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                size = int(os.environ.get("REFERENCE_POOL_SIZE", "20"))
                self.pool = await asyncpg.create_pool(
                    os.environ["REFERENCE_DATABASE_URL"],
                    min_size=2,
                    max_size=size,
                    reset=_no_reset,
                )
                async with self.pool.acquire() as conn:
                    self.config = await load_config(conn)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def book(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str | None]:
        parts = path.split("/")  # "", app, "calendars", service, date, cu, "appointments"
        if (
            method != "POST"
            or len(parts) != 7
            or parts[2] != "calendars"
            or parts[6] != ("appointments")
        ):
            raise Refused(404, "not_found")
        assert self.pool is not None
        assert self.config is not None
        config = self.config
        application_id, service_id = _uuid(parts[1]), _uuid(parts[3])
        try:
            on_date = date.fromisoformat(parts[4])
            cu_index = int(parts[5])
            request = orjson.loads(body)
            type_id = uuid.UUID(request["serviceTypeId"])
            start = request["startTime"]
            channel = request["channel"]
        except (ValueError, KeyError, TypeError):
            raise Refused(422, "validation_failed") from None
        if not isinstance(start, int) or not 0 <= start < 1440:
            raise Refused(422, "validation_failed")
        if channel not in ("FaceToFace", "Video", "Phone"):
            raise Refused(422, "validation_failed")
        organization_id = config.organization.get(application_id)
        unit = config.units.get((service_id, cu_index))
        duration = config.duration.get((service_id, type_id))
        if organization_id is None or unit is None or duration is None:
            raise Refused(404, "not_found")
        if not on_grid_inside_hours(unit, on_date, start, duration):
            raise Refused(422, "outside_working_hours")
        local = datetime.combine(on_date, time()) + timedelta(minutes=start)
        starts_at = local.replace(tzinfo=unit.zone).astimezone(UTC)
        now = datetime.now(UTC)
        case_id = uuid.uuid4()
        begin = lock_calendar_day(CalendarDay(service_id, cu_index, on_date))

        async with self.pool.acquire() as conn:
            await conn.execute(begin)
            try:
                taken = await conn.fetchval(
                    OVERLAPPING, service_id, on_date, cu_index, start, start + duration, now
                )
                if taken >= unit.capacity:
                    raise Refused(409, "slot_not_vacant")  # rolls the transaction back
                ticket = await conn.fetchval(
                    INSERT,
                    case_id,
                    organization_id,
                    service_id,
                    cu_index,
                    on_date,
                    start,
                    duration,
                    starts_at,
                    unit.zone.key,
                    type_id,
                    now,
                    config.prefix[service_id],
                    channel,
                    request.get("language") or config.language[organization_id],
                    request.get("contactPhoneNumber"),
                    request.get("contactEmail"),
                    application_id,
                )
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
        payload = orjson.dumps(
            {
                "caseId": str(case_id),
                "appointment": {
                    "serviceId": str(service_id),
                    "date": f"{on_date.isoformat()}T00:00:00",
                    "cuIndex": cu_index,
                    "start": start,
                    "duration": duration,
                    "timeUtc": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "timeZoneId": unit.zone.key,
                },
                "ticket": {"prefix": config.prefix[service_id], "suffix": None, "number": ticket},
                "serviceTypeId": str(type_id),
                "status": "Planned",
            }
        )
        return 201, payload, f"/{application_id}/appointments/{case_id}"


async def respond(send: Any, status: int, payload: bytes, location: str | None = None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if location is not None:
        headers.append((b"location", location.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


app = ReferenceApp()
