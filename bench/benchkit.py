"""Shared by bench/run.py, bench/soak.py and bench/inproc.py: the database, the bench
organization, the server processes and the invariant checks. Plain asyncpg and subprocess; the
app is imported only to seed through its configuration loader and to mint a dev token."""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
MANAGER = "Appointments Manager"

ORG_TIME_ZONE = "Europe/London"
SERVICES = 10
UNITS_PER_SERVICE = 10
OPEN, CLOSE = 480, 1020  # 08:00-17:00 every day
SLOT_MINUTES = 10
DURATION = 10
STARTS = list(range(OPEN, CLOSE - DURATION + 1, SLOT_MINUTES))  # 54 starts per calendar-day
# The dense calendar of the "vacancies for a day with 500 appointments" measurement.
DENSE_CAPACITY = 20
DENSE_DURATION = 30
DENSE_APPOINTMENTS = 500


# --- the database -------------------------------------------------------------------------------


@dataclass
class Database:
    """The embedded PostgreSQL (database `name` recreated), or the server of an URL given."""

    url: str  # for the app: postgresql+asyncpg://...
    dsn: str  # for asyncpg: postgresql://...
    embedded: Any = None  # booking.store.embedded.EmbeddedPostgres when we started one

    @classmethod
    def start(cls, name: str, external_url: str | None) -> Database:
        if external_url:
            dsn = plain_dsn(external_url)
            return cls(url=async_url(dsn), dsn=dsn)
        from booking.store.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(ROOT / ".data")
        print(f"Starting the embedded PostgreSQL (data in {server.pgdata}) ...", flush=True)
        server.start()
        try:
            server.ensure_database(name, recreate=True)
        except BaseException:
            server.stop()
            raise
        url = server.url(name)
        return cls(url=url, dsn=plain_dsn(url), embedded=server)

    def stop(self) -> None:
        if self.embedded is not None:
            print("Stopping the embedded PostgreSQL ...", flush=True)
            self.embedded.stop()
            self.embedded = None

    def sibling(self, name: str) -> Database:
        """Another database on the same server (not started or stopped by it)."""
        parts = urlsplit(self.dsn)
        dsn = urlunsplit(parts._replace(path="/" + name))
        return Database(url=async_url(dsn), dsn=dsn)

    @property
    def name(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/")


async def copy_database(source: Database, name: str) -> Database:
    """`name` recreated as a copy of `source` (CREATE DATABASE ... TEMPLATE: nobody may be
    connected to `source` meanwhile; an external server needs the CREATEDB privilege)."""
    for database in (source.name, name):
        if not database.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {database!r}")
    conn = await asyncpg.connect(source.sibling("postgres").dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source.name}"')
    finally:
        await conn.close()
    return source.sibling(name)


async def drop_database(db: Database) -> None:
    conn = await asyncpg.connect(db.sibling("postgres").dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await conn.close()


def plain_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def async_url(dsn: str) -> str:
    return "postgresql+asyncpg://" + dsn[len("postgresql://") :]


def migrate(db: Database) -> None:
    env = {**os.environ, "DATABASE_URL": db.url}
    subprocess.run(
        [str(Path(PYTHON).parent / "booking-api"), "migrate"], env=env, check=True, cwd=ROOT
    )


APP_TABLES = (
    "idempotency_record, appointment, ticket_counter, exception_hours, calendar_exception, "
    "working_hours, calendar_unit, service_type, customer_record, field_type, tag, service, "
    "registered_application, organization"
)


async def wipe(conn: asyncpg.Connection) -> None:
    """Empty every table (an external BENCH_DATABASE_URL is reused, so start from nothing)."""
    await conn.execute(f"TRUNCATE {APP_TABLES} CASCADE")


# --- the bench organization ----------------------------------------------------------------------


@dataclass
class World:
    """What the seed created. `places` lists (service index, cuIndex) once per unit of capacity,
    so the wrk scripts book the capacity-2 unit twice per start."""

    organization_id: uuid.UUID
    application_id: uuid.UUID
    client_id: str
    services: list[tuple[uuid.UUID, uuid.UUID]]  # (service id, its 10-minute service type id)
    prefixes: list[str]
    places: list[tuple[int, int]]
    dense_service: uuid.UUID
    dense_type: uuid.UUID
    first_date: date  # tomorrow (UTC): bookings start here
    extra: dict[str, Any] = field(default_factory=dict)

    def dates(self, count: int) -> list[str]:
        return [(self.first_date + timedelta(days=i)).isoformat() for i in range(count)]


def bench_organization() -> tuple[World, dict[str, Any]]:
    """The bench organization, with fresh ids, as a configuration document (plain data with the
    YAML file's keys), and what the bench needs to know of it. 10 services x 10 calendar units of
    capacity 1 (plus unit 10 of service 0 with capacity 2), open 08:00-17:00 every day on a
    10-minute grid, one 10-minute service type each, no booking window; a dense service
    (capacity 20, open all day, 30-minute type, UTC); an application with the Appointments
    Manager role."""
    from booking.store.loader.document import WEEKDAYS

    open_hours = {day: [[OPEN, CLOSE]] for day in WEEKDAYS}
    all_day = {day: [[0, 1440]] for day in WEEKDAYS}

    def unit(cu_index: int, capacity: int, hours: dict[str, Any], **zone: str) -> dict[str, Any]:
        return {
            "cuIndex": cu_index,
            "slotMinutes": SLOT_MINUTES,
            "capacity": capacity,
            "workingHours": hours,
            **zone,
        }

    def service(
        ids: tuple[uuid.UUID, uuid.UUID], name: str, prefix: str, duration: int, units: list[Any]
    ) -> dict[str, Any]:
        service_id, type_id = ids
        return {
            "id": service_id,
            "name": name,
            "ticketPrefix": prefix,
            "serviceTypes": [
                {
                    "id": type_id,
                    "name": f"{duration}-minute visit",
                    "durationMinutes": duration,
                    "channels": ["FaceToFace", "Video", "Phone"],
                }
            ],
            "calendarUnits": units,
        }

    org_id, app_id = uuid.uuid4(), uuid.uuid4()
    client_id = f"bench-{app_id.hex[:8]}"
    services = [(uuid.uuid4(), uuid.uuid4()) for _ in range(SERVICES)]
    prefixes = [chr(ord("A") + index) for index in range(SERVICES)]
    dense_service, dense_type = uuid.uuid4(), uuid.uuid4()
    extra_unit = [unit(UNITS_PER_SERVICE, 2, open_hours)]  # service 0's capacity-2 unit
    documents = [
        service(
            ids,
            f"Bench {index}",
            prefixes[index],
            DURATION,
            [unit(cu, 1, open_hours) for cu in range(UNITS_PER_SERVICE)]
            + (extra_unit if index == 0 else []),
        )
        for index, ids in enumerate(services)
    ]
    documents.append(
        service(
            (dense_service, dense_type),
            "Dense",
            "Z",
            DENSE_DURATION,
            [unit(0, DENSE_CAPACITY, all_day, timeZone="UTC")],
        )
    )
    organization = {
        "id": org_id,
        "name": "Bench organization",
        "timeZone": ORG_TIME_ZONE,
        "supportedLanguages": ["en"],
        "defaultLanguage": "en",
        "defaultPhoneRegion": "GB",
        "applications": [
            {"id": app_id, "clientId": client_id, "name": "bench", "roles": [MANAGER]}
        ],
        "services": documents,
    }
    places = [(s, cu) for s in range(SERVICES) for cu in range(UNITS_PER_SERVICE)]
    places += [(0, UNITS_PER_SERVICE)] * 2
    world = World(
        organization_id=org_id,
        application_id=app_id,
        client_id=client_id,
        services=services,
        prefixes=prefixes,
        places=places,
        dense_service=dense_service,
        dense_type=dense_type,
        first_date=datetime.now(UTC).date() + timedelta(days=1),
    )
    return world, {"organizations": [organization]}


async def seed(db: Database) -> World:
    """Creates the bench organization through the app's configuration loader: the document is
    validated by the loader's schema and applied by its `apply_config`, in one transaction."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from booking.store.loader import ConfigDocument, apply_config

    world, data = bench_organization()
    document = ConfigDocument.model_validate(data)
    engine = create_async_engine(db.url)
    try:
        async with engine.begin() as conn:
            await apply_config(conn, document)
    finally:
        await engine.dispose()
    return world


def wrk_env(world: World, token: str, threads: int, days: int = 400) -> dict[str, str]:
    """What the Lua scripts read with os.getenv."""
    return {
        "BENCH_LUA_DIR": str(BENCH_DIR),
        "BENCH_APP": str(world.application_id),
        "BENCH_TOKEN": token,
        "BENCH_SERVICES": ",".join(f"{s}:{t}" for s, t in world.services),
        "BENCH_PLACES": ",".join(f"{s + 1}:{cu}" for s, cu in world.places),  # Lua: 1-based
        "BENCH_STARTS": ",".join(str(s) for s in STARTS),
        "BENCH_DATES": ",".join(world.dates(days)),
        "BENCH_THREADS": str(threads),
    }


def mint_token(secret: str, client_id: str, ttl_s: int = 6 * 3600) -> str:
    from booking.api.auth import mint_dev_token
    from booking.settings import Settings

    settings = Settings(jwt_mode="dev", jwt_dev_secret=secret)
    return mint_dev_token(settings, client_id, [MANAGER], ttl_s=ttl_s)


# --- bulk rows -----------------------------------------------------------------------------------

APPOINTMENT_COLUMNS = (
    "id, organization_id, service_id, cu_index, on_date, start_minute, duration_minutes, "
    "starts_at, time_zone, service_type_id, status, status_date, ticket_prefix, ticket_number, "
    "customer_record_id, channel, language, contact_phone, contact_email, prevent_self_check_in, "
    "fields, tag_ids, bypassed_timeslot_check, created_by_application_id, created_at, "
    "cancelled_at, closed_at"
)


async def insert_past_appointments(conn: asyncpg.Connection, world: World, rows: int) -> None:
    """`rows` appointments on past dates, in one INSERT ... SELECT FROM generate_series.

    Row g books calendar g % 100 (service c / 10, unit c % 10) at start (g / 100) % 54 of the
    day (g / 5400) days before yesterday: one appointment per slot, so capacity holds. Its ticket
    is slot * 10 + unit + 1, gapless per (service, date) even on the last, partial day (rows fill
    a day slot by slot, units in order). One in 20 is Cancelled (every 20th slot of each
    calendar, shifted per calendar), the rest Completed."""
    calendars = SERVICES * UNITS_PER_SERVICE
    per_day = calendars * len(STARTS)
    await conn.execute(
        f"""
        INSERT INTO appointment ({APPOINTMENT_COLUMNS})
        SELECT gen_random_uuid(), $1, ($2::uuid[])[c / 10 + 1], c % 10, d, start, $9,
               (d + make_interval(mins => start)) AT TIME ZONE $5, $5,
               ($3::uuid[])[c / 10 + 1],
               CASE WHEN cancelled THEN 'Cancelled' ELSE 'Completed' END, now(),
               ($4::text[])[c / 10 + 1], slot * 10 + c % 10 + 1, NULL, 'FaceToFace', 'en',
               '+442079460018', 'bench@example.com', false, '{{}}', '{{}}', false, $6, now(),
               CASE WHEN cancelled THEN now() END, CASE WHEN NOT cancelled THEN now() END
        FROM generate_series(0, $7 - 1) AS g,
             LATERAL (SELECT g % {calendars} AS c, (g / {calendars}) % {len(STARTS)} AS slot,
                             $8::date - 1 - (g / {per_day})::int AS d) AS k,
             LATERAL (SELECT {OPEN} + slot * {SLOT_MINUTES} AS start,
                             (g / {calendars} + c) % 20 = 0 AS cancelled) AS s
        """,
        world.organization_id,
        [s for s, _ in world.services],
        [t for _, t in world.services],
        world.prefixes,
        ORG_TIME_ZONE,
        world.application_id,
        rows,
        world.first_date - timedelta(days=1),
        DURATION,
    )


async def insert_dense_day(conn: asyncpg.Connection, world: World, on_date: date) -> None:
    """500 thirty-minute appointments on one day of the dense calendar (capacity 20): starts
    every 10 minutes from 00:00 to 23:30, 3 or 4 per start, so at most 12 overlap."""
    await conn.execute(
        f"""
        INSERT INTO appointment ({APPOINTMENT_COLUMNS})
        SELECT gen_random_uuid(), $1, $2, 0, $3::date, start, {DENSE_DURATION},
               ($3::date + make_interval(mins => start)) AT TIME ZONE 'UTC', 'UTC', $4,
               'Planned', now(), 'Z', k + 1, NULL, 'Phone', 'en', '+442079460018',
               'bench@example.com', false, '{{}}', '{{}}', false, $5, now(), NULL, NULL
        FROM generate_series(0, {DENSE_APPOINTMENTS - 1}) AS k,
             LATERAL (SELECT (k * 10) % 1420 AS start) AS s
        """,
        world.organization_id,
        world.dense_service,
        on_date,
        world.dense_type,
        world.application_id,
    )
    await conn.execute(
        "INSERT INTO ticket_counter (service_id, on_date, last_number) VALUES ($1, $2, $3)",
        world.dense_service,
        on_date,
        DENSE_APPOINTMENTS,
    )


async def settle(conn: asyncpg.Connection, quiet_s: float = 1.0, timeout_s: float = 60.0) -> None:
    """Wait until no other session of this database has been busy for `quiet_s` seconds: when wrk
    stops, the server still finishes the requests it had accepted, and they must not commit
    after a reset or escape a check."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        busy = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        if busy:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        await asyncio.sleep(0.05)


async def reset_bookings(conn: asyncpg.Connection, world: World) -> None:
    """Back to the state before a booking run: no appointment from the first bench date on.
    TRUNCATE when the table holds nothing else (no growth rows), else DELETE and VACUUM."""
    await settle(conn)
    past = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM appointment WHERE on_date < $1)", world.first_date
    )
    if past:
        await conn.execute("DELETE FROM appointment WHERE on_date >= $1", world.first_date)
        await conn.execute("DELETE FROM ticket_counter WHERE on_date >= $1", world.first_date)
        await conn.execute("VACUUM (ANALYZE) appointment, ticket_counter")
    else:
        await conn.execute("TRUNCATE appointment, ticket_counter")


# --- the invariants ------------------------------------------------------------------------------

OVER_CAPACITY = """
WITH longest AS (SELECT coalesce(max(duration_minutes), 0) AS minutes FROM appointment)
SELECT a.service_id, a.cu_index, a.on_date, a.start_minute, covering.n AS overlapping,
       cu.capacity
FROM appointment a
CROSS JOIN longest
JOIN calendar_unit cu ON cu.service_id = a.service_id AND cu.cu_index = a.cu_index
CROSS JOIN LATERAL (
    -- appointments of the same calendar-day covering a's start minute; the lower bound on
    -- b.start_minute follows from the last condition and keeps the index range short
    SELECT count(*) AS n
    FROM appointment b
    WHERE b.service_id = a.service_id AND b.on_date = a.on_date AND b.cu_index = a.cu_index
      AND b.start_minute > a.start_minute - longest.minutes
      AND b.start_minute <= a.start_minute
      AND a.start_minute < b.start_minute + b.duration_minutes
      AND b.status <> 'Cancelled'
) AS covering
WHERE a.status <> 'Cancelled' AND a.on_date >= $1 AND covering.n > cu.capacity
LIMIT 20
"""

BAD_TICKETS = """
SELECT service_id, on_date, count(*) AS n, max(ticket_number) AS max,
       count(DISTINCT ticket_number) AS distinct_numbers
FROM appointment
WHERE on_date >= $1
GROUP BY service_id, on_date
HAVING NOT (count(*) = max(ticket_number) AND count(*) = count(DISTINCT ticket_number))
LIMIT 20
"""

COUNTER_MISMATCH = """
SELECT tc.service_id, tc.on_date, tc.last_number,
       (SELECT max(ticket_number) FROM appointment a
        WHERE a.service_id = tc.service_id AND a.on_date = tc.on_date) AS max_ticket
FROM ticket_counter tc
WHERE tc.last_number IS DISTINCT FROM
      (SELECT max(ticket_number) FROM appointment a
       WHERE a.service_id = tc.service_id AND a.on_date = tc.on_date)
LIMIT 20
"""


async def verify(conn: asyncpg.Connection, since: date = date.min) -> dict[str, Any]:
    """No calendar unit over capacity at any moment (the peak of overlapping intervals is always
    at some appointment's start, so counting at every start is exact); ticket numbers unique and
    gapless per (service, date); every ticket counter equal to its highest ticket. `since`
    limits the checks to appointments on or after that date (the whole table by default)."""
    started = time.perf_counter()
    over = await conn.fetch(OVER_CAPACITY, since)
    tickets = await conn.fetch(BAD_TICKETS, since)
    counters = await conn.fetch(COUNTER_MISMATCH)
    rows = await conn.fetchval("SELECT count(*) FROM appointment WHERE on_date >= $1", since)
    return {
        "ok": not (over or tickets or counters),
        "appointments_checked": rows,
        "over_capacity": [_plain(r) for r in over],
        "bad_tickets": [_plain(r) for r in tickets],
        "counter_mismatch": [_plain(r) for r in counters],
        "seconds": round(time.perf_counter() - started, 2),
    }


def verdict_line(check: dict[str, Any]) -> str:
    if check["ok"]:
        return (
            f"invariants OK ({check['appointments_checked']} appointments: never over capacity, "
            f"tickets unique and gapless, counters match; checked in {check['seconds']} s)"
        )
    return (
        "INVARIANTS BROKEN: "
        f"over capacity {check['over_capacity']}, bad tickets {check['bad_tickets']}, "
        f"counter mismatch {check['counter_mismatch']}"
    )


def _plain(record: asyncpg.Record) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str) else str(v) for k, v in record.items()}


# --- server processes -----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values <= it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * p / 100))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn process on 127.0.0.1 in its own process group, stopped by stop()."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        workers: int,
        http: str = "httptools",
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            PYTHON,
            "-m",
            "uvicorn",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            http,
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ]
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, start_new_session=True
        )

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                if httpx.get(self.base_url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout_s:.0f} s")

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (the process itself when there is a single worker)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            pids = []
        return pids or [self.process.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the worker processes."""
        total = 0.0
        for pid in self.worker_pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # uvicorn stops its workers gracefully
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: only what it started
            self.process.wait(timeout=5)


def start_api(
    db: Database, secret: str, workers: int, pool_size: int, calendar_day_lock: str = "advisory"
) -> Server:
    env = {
        "CALENDAR_DAY_LOCK": calendar_day_lock,
        "DATABASE_POOL_SIZE": str(pool_size),
        "DATABASE_URL": db.url,
        "JWT_MODE": "dev",
        "JWT_DEV_SECRET": secret,
        "ENABLE_BENCH_ROUTES": "1",
        "LOG_LEVEL": "WARNING",
        "CONFIG_CACHE_TTL_S": "5",
        # The limiter's check still runs on every request; limits this high never refuse one,
        # since the bench's one application is the whole load (as one partner on a process of
        # its own would be), so it may also hold every connection.
        "RATE_LIMIT_APPLICATION": "1000000000/second",
        "RATE_LIMIT_CLIENT_ADDRESS": "1000000000/second",
        "DATABASE_TENANT_SHARE": "1",
    }
    server = Server(
        "booking API",
        ["booking.api.app:app_from_env", "--factory"],
        env,
        workers=workers,
        # As `booking-api serve` runs it: httptools with the bounds on heads and connections.
        http="booking.api.http_protocol:BoundedHttpToolsProtocol",
    )
    server.wait_ready()
    return server


def start_reference(db: Database, workers: int, pool_size: int) -> Server:
    env = {"REFERENCE_DATABASE_URL": db.dsn, "REFERENCE_POOL_SIZE": str(pool_size)}
    server = Server(
        "reference app", ["--app-dir", str(BENCH_DIR), "reference_app:app"], env, workers=workers
    )
    server.wait_ready()
    return server


def new_secret() -> str:
    return secrets.token_urlsafe(48)


async def connect(db: Database) -> asyncpg.Connection:
    return await asyncpg.connect(db.dsn)
