"""The database goes away and comes back (stopped, or its postmaster killed), directly or
behind PgBouncer: the server answers 503 quickly meanwhile, never a 500 or a hang, and serves
again without a restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from booking.api.app import READINESS_MAX_AGE_S, create_app
from booking.settings import DatabasePooler, Settings
from booking.store.embedded import EmbeddedPostgres
from tests import builders
from tests.builders import World
from tests.conftest import TEST_SECRET, TODAY, FakeClock, bearer, run_alembic, uvicorn_servers
from tests.kit import inject_fault
from tests.pgbouncer import SHORT_OUTAGE, run_pgbouncer

DAY = TODAY + timedelta(days=1)


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL server that this test may stop (short path: socket names are short)."""
    data_dir = Path(tempfile.mkdtemp(prefix="pgf", dir="/tmp"))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def make_world(url: str, **options: Any) -> World:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        world = await builders.world(conn, **options)
    await engine.dispose()
    return world


@pytest.fixture(
    params=[DatabasePooler.NONE, DatabasePooler.TRANSACTION], ids=["direct", "pgbouncer"]
)
def route(
    request: pytest.FixtureRequest, own_postgres: EmbeddedPostgres
) -> Iterator[tuple[str, DatabasePooler]]:
    """How the API reaches the migrated database `faults` of the private PostgreSQL: directly,
    or through PgBouncer in transaction mode (with the settings that keep an outage short)."""
    own_postgres.ensure_database("faults")
    run_alembic(own_postgres.url("faults"), ("upgrade", "head"))
    if request.param is DatabasePooler.NONE:
        yield own_postgres.url("faults"), request.param
        return
    with run_pgbouncer(own_postgres.socket_dir, **SHORT_OUTAGE) as bouncer:
        yield bouncer.url("faults"), request.param


@pytest.fixture
async def outage_setup(
    own_postgres: EmbeddedPostgres,
    route: tuple[str, DatabasePooler],
    clock: FakeClock,
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, World, Settings]]:
    url, pooler = route
    world = await make_world(own_postgres.url("faults"))
    settings = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=tmp_path,
        database_connect_timeout_s=2,
        database_pool_timeout_s=2,
        database_statement_timeout_ms=500,
        database_pooler=pooler,
    )
    app = create_app(settings, url, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, world, settings


async def test_database_outage_answers_503_then_recovers_without_restart(
    outage_setup: tuple[httpx.AsyncClient, World, Settings], own_postgres: EmbeddedPostgres
) -> None:
    client, world, settings = outage_setup
    auth = bearer(settings, world.client_id)
    path = world.appointments_path(DAY)
    assert (await client.post(path, json=world.body(480), headers=auth)).status_code == 201

    own_postgres.stop()
    started = time.monotonic()
    response = await client.post(path, json=world.body(540), headers=auth)
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert elapsed < settings.database_connect_timeout_s + 1
    assert (await client.get("/readyz")).status_code == 503
    assert (await client.get("/healthz")).status_code == 200
    vacancies = await client.get(
        world.calendar_path(DAY) + f"/vacancies?serviceTypeId={world.service_type_id}",
        headers=auth,
    )
    assert vacancies.status_code == 503

    own_postgres.start()
    # /readyz answers from a check at most READINESS_MAX_AGE_S old; PgBouncer logs in to the
    # server again SHORT_OUTAGE's server_login_retry (1 s) after its last failed attempt.
    deadline = time.monotonic() + READINESS_MAX_AGE_S + 2
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "not ready again in time"
        await asyncio.sleep(0.1)
    again = await client.post(path, json=world.body(540), headers=auth)
    assert again.status_code == 201, again.text
    assert (await client.post(path, json=world.body(600), headers=auth)).status_code == 201


async def test_statement_timeout_bounds_a_slow_query(
    outage_setup: tuple[httpx.AsyncClient, World, Settings],
) -> None:
    client, world, settings = outage_setup

    async def stuck(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
        await conn.execute("SELECT pg_sleep(30)")
        return []

    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    started = time.monotonic()
    async with inject_fault(transport.app, "SELECT appointment.start_minute", stuck):  # type: ignore[arg-type]
        response = await client.post(
            world.appointments_path(DAY),
            json=world.body(480),
            headers=bearer(settings, world.client_id),
        )
    assert time.monotonic() - started < 3
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"


async def test_after_a_database_restart_the_first_requests_succeed(
    outage_setup: tuple[httpx.AsyncClient, World, Settings], own_postgres: EmbeddedPostgres
) -> None:
    """Pooled connections the restart closed are replaced at checkout (asyncpg saw their sockets
    close), so no request is sent on a dead connection: no 503 once the database is back."""
    client, world, settings = outage_setup
    auth = bearer(settings, world.client_id)
    path = world.appointments_path(DAY)
    vacancies = world.calendar_path(DAY) + f"/vacancies?serviceTypeId={world.service_type_id}"
    # Several connections in the pool, all opened before the restart.
    first = await asyncio.gather(
        *(client.post(path, json=world.body(480 + 60 * n), headers=auth) for n in range(4))
    )
    assert [r.status_code for r in first] == [201] * 4

    own_postgres.stop()
    own_postgres.start()
    await asyncio.sleep(0.2)  # the event loop reads the closed sockets

    answers = await asyncio.gather(
        client.post(path, json=world.body(780), headers=auth),
        client.get(vacancies, headers=auth),
        client.get("/readyz"),
        client.post(path, json=world.body(840), headers=auth),
    )
    assert [r.status_code for r in answers] == [201, 200, 200, 201], [r.text for r in answers]


def kill_postmaster(server: EmbeddedPostgres) -> None:
    """SIGKILL the postmaster, as a crash would, and wait until its backends have noticed and
    exited (a new postmaster refuses to start while they hold the shared memory)."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    backends = [pid for pid in _all_pids() if _parent_of(pid) == postmaster]
    os.kill(postmaster, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{postmaster}").exists() or any(_parent_of(pid) for pid in backends):
        assert time.monotonic() < deadline, "the killed server's processes did not exit"
        time.sleep(0.05)


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _parent_of(pid: int) -> int | None:
    """The parent of a live process (None: gone, or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else int(fields[1])


async def test_a_killed_postmaster_under_parallel_bookings_answers_503_never_500_then_recovers(
    own_postgres: EmbeddedPostgres, route: tuple[str, DatabasePooler], tmp_path: Path
) -> None:
    """Bookings, cancels and vacancy reads keep running at two server processes while the
    postmaster is killed with SIGKILL and started again (crash recovery): every answer is a
    success, a 409 or a 503 problem with Retry-After, and bookings succeed again afterwards."""
    url, pooler = route
    world = await make_world(own_postgres.url("faults"), capacity=10_000)
    settings = Settings(jwt_dev_secret=TEST_SECRET)
    auth = bearer(settings, world.client_id)
    day = date.today() + timedelta(days=3)  # the servers run on the real clock
    env = {
        "DATABASE_POOLER": pooler.value,
        "DATABASE_CONNECT_TIMEOUT_S": "2",
        "DATABASE_POOL_TIMEOUT_S": "2",
        "DATABASE_STATEMENT_TIMEOUT_MS": "1000",
    }
    answers: list[httpx.Response] = []
    restarted = asyncio.Event()
    booked_after_restart = asyncio.Event()

    async def client_loop(http: httpx.AsyncClient, base: str, n: int) -> None:
        path = base + world.appointments_path(day)
        vacancies = base + world.calendar_path(day) + "/vacancies"
        while not booked_after_restart.is_set():
            booked = await http.post(path, json=world.body(480 + 10 * (n % 20)), headers=auth)
            answers.append(booked)
            if booked.status_code == 201:
                if restarted.is_set():
                    booked_after_restart.set()
                case_id = booked.json()["caseId"]
                answers.append(await http.delete(f"{path}/{case_id}", headers=auth))
            params = {"serviceTypeId": str(world.service_type_id)}
            answers.append(await http.get(vacancies, params=params, headers=auth))

    with uvicorn_servers(url, tmp_path, **env) as servers:
        async with httpx.AsyncClient(timeout=30) as http:
            clients = [asyncio.create_task(client_loop(http, servers[n % 2], n)) for n in range(8)]
            await asyncio.sleep(1)
            in_flight_before = len(answers)
            await asyncio.to_thread(kill_postmaster, own_postgres)
            await asyncio.sleep(1)
            own_postgres.stop()
            await asyncio.to_thread(own_postgres.start)
            restarted.set()
            try:
                async with asyncio.timeout(30):
                    await booked_after_restart.wait()
            finally:
                for task in clients:
                    task.cancel()
                await asyncio.gather(*clients, return_exceptions=True)

    statuses = Counter(answer.status_code for answer in answers)
    assert in_flight_before > 0
    assert set(statuses) <= {200, 201, 409, 503}, [
        answer.text for answer in answers if answer.status_code not in (200, 201, 409, 503)
    ]
    assert statuses[503] > 0, statuses  # the outage was seen
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["code"] == "database_unavailable"
            assert int(answer.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (asyncpg.InternalClientError("got result for unknown protocol state 3"), True),
        (asyncpg.ProtocolError("unexpected message"), True),
        (asyncpg.ConnectionFailureError("connection failure"), True),
        (asyncpg.CrashShutdownError("terminating connection because of crash"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (asyncpg.InterfaceError("the server expects 3 arguments, 2 were passed"), False),
        (asyncpg.DivisionByZeroError("division by zero"), False),
        (asyncpg.NotNullViolationError("null value in column"), False),
    ],
)
def test_only_connection_failures_and_timeouts_count_as_an_outage(
    error: BaseException, outage: bool
) -> None:
    """An outage answers 503 (retry later); anything else is a bug or bad data: 500. Among the
    outages, what a killed postmaster leaves behind: asyncpg's InternalClientError when the
    socket dies mid-message, crash shutdown (57P02), then "starting up" (57P03)."""
    from booking.store.db import is_outage

    assert is_outage(error) is outage
