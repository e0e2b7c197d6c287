"""The database goes away and comes back: the server answers 503 quickly meanwhile, never a
500 or a hang, and serves again without a restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from booking.api.app import READINESS_MAX_AGE_S, create_app
from booking.settings import Settings
from booking.store.embedded import EmbeddedPostgres
from tests import builders
from tests.builders import World
from tests.conftest import TEST_SECRET, TODAY, FakeClock, bearer, run_alembic
from tests.kit import inject_fault

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


@pytest.fixture
async def outage_setup(
    own_postgres: EmbeddedPostgres, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, World, Settings]]:
    own_postgres.ensure_database("faults")
    url = own_postgres.url("faults")
    run_alembic(url, ("upgrade", "head"))
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        world = await builders.world(conn)
    await engine.dispose()
    settings = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=tmp_path,
        database_connect_timeout_s=2,
        database_pool_timeout_s=2,
        database_statement_timeout_ms=500,
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
    await asyncio.sleep(READINESS_MAX_AGE_S)  # /readyz answers from a check at most this old
    assert (await client.get("/readyz")).status_code == 200
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


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
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
    """An outage answers 503 (retry later); anything else is a bug or bad data: 500."""
    from booking.store.db import is_outage

    assert is_outage(error) is outage
