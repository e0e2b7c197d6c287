"""Tests run on a real PostgreSQL: the embedded server under .data/, or the server of
TEST_DATABASE_URL (its role needs CREATEDB). Each test session creates its own database there
(named with the process id, dropped at the end), built by the Alembic migrations (never
create_all). Every test starts from empty tables: an in-process test's writes, its builders' and
the app's, stay inside one transaction rolled back at its end (tests/rollback.py); a test that
needs real commits (live servers, a connection of its own, the FIFO gate) is marked `committed`,
automatically when it uses such fixtures (`pytest_collection_modifyitems`), and starts from
TRUNCATEd tables instead."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from booking.api.app import create_app
from booking.api.auth import mint_dev_token
from booking.settings import Settings
from booking.store.db import Database, to_async_url
from booking.store.embedded import EmbeddedPostgres
from booking.store.models import Base

from . import builders, rollback
from .pgbouncer import SHORT_OUTAGE, PgBouncer, run_pgbouncer

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-not-for-production-0123456789abcdef"


class FakeClock:
    """A clock the test moves by hand; booking rules read 'now' from it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def run_alembic(url: str, *commands: tuple[str, str]) -> None:
    """Alembic's async env.py calls asyncio.run(): give it a thread without a running loop."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            config = alembic_config(url)
            for name, target in commands:
                getattr(command, name)(config, target)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres | None]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(ROOT / ".data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_database(postgres: EmbeddedPostgres | None) -> Iterator[object]:
    """A factory of empty scratch databases, dropped at the end of the session."""
    created: list[str] = []
    base = os.environ.get("TEST_DATABASE_URL")

    def make(name: str) -> str:
        name = f"{name}_{os.getpid()}"  # parallel test runs on one server do not collide
        if postgres is not None:
            postgres.ensure_database(name, recreate=True)
            created.append(name)
            return postgres.url(name)
        assert base is not None
        _run_on_server(
            base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
        created.append(name)
        return make_url(to_async_url(base)).set(database=name).render_as_string(False)

    yield make
    for name in created:
        if postgres is not None:
            postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
        else:
            assert base is not None
            _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_on_server(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE DATABASE cannot run inside one)."""

    async def work() -> None:
        engine = create_async_engine(to_async_url(url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(errors, lambda: asyncio.run(work())))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _capture(errors: list[BaseException], work: Callable[[], object]) -> None:
    try:
        work()
    except BaseException as error:
        errors.append(error)


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres | None, make_database: object) -> str:
    url: str = make_database("booking_test")  # type: ignore[operator]
    run_alembic(url, ("upgrade", "head"))
    return url


@pytest.fixture(scope="session")
async def committed_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The session's engine, for the tests that commit for real."""
    engine = create_async_engine(database_url, pool_size=25, max_overflow=10)
    yield engine
    await engine.dispose()


# Fixtures whose tests commit for real. A test also commits when it, or a fixture other than
# those below, reaches `database_url` itself: it opens connections of its own, which cannot see
# the rolled-back transaction.
COMMITTING_FIXTURES = frozenset({"live_servers"})
ROLLBACK_AWARE_FIXTURES = frozenset({"committed_engine", "rollback_connection", "db", "app"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "committed: the test commits for real and starts from TRUNCATEd tables instead of "
        "running inside a rolled-back transaction (set automatically by the fixtures it uses)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and commits(item):
            item.add_marker(pytest.mark.committed)


def commits(item: pytest.Function) -> bool:
    info = item._fixtureinfo
    if not COMMITTING_FIXTURES.isdisjoint(info.names_closure):
        return True
    if "database_url" in info.argnames:
        return True
    return any(
        "database_url" in fixturedef.argnames and fixturedef.argname not in ROLLBACK_AWARE_FIXTURES
        for fixturedefs in info.name2fixturedefs.values()
        for fixturedef in fixturedefs
    )


def is_committed(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("committed") is not None


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if item.get_closest_marker("committed") is not None:
        LEFT_ROWS[0] = True


TABLES = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
TRUNCATIONS = [0]  # how many tests started with a TRUNCATE (tests/test_isolation.py reads it)
LEFT_ROWS = [False]  # a committed test ran since the last TRUNCATE: its rows may still be there


async def truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    TRUNCATIONS[0] += 1
    LEFT_ROWS[0] = False


@pytest.fixture(scope="session")
async def rollback_connection(database_url: str) -> AsyncIterator[rollback.RollbackConnection]:
    connection = rollback.RollbackConnection(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def rolled_back(
    request: pytest.FixtureRequest,
    settings: Settings,
    committed_engine: AsyncEngine,
    rollback_connection: rollback.RollbackConnection,
) -> AsyncIterator[rollback.RolledBack | None]:
    """The test's rolled-back transaction, or None for a `committed` test. A committed test
    starts from TRUNCATEd tables; so does the first rolled-back test after committed ones."""
    if is_committed(request) or LEFT_ROWS[0]:
        await truncate(committed_engine)
    if is_committed(request):
        yield None
        return
    async with rollback_connection.transaction(settings) as transaction:
        yield transaction


@pytest.fixture
def engine(rolled_back: rollback.RolledBack | None, committed_engine: AsyncEngine) -> AsyncEngine:
    """SQLAlchemy on the test's database: on its rolled-back transaction (each `begin()` a
    savepoint), or the session's engine for a `committed` test."""
    return committed_engine if rolled_back is None else rolled_back.engine


@pytest.fixture
async def db(
    settings: Settings, database_url: str, rolled_back: rollback.RolledBack | None
) -> AsyncIterator[Database]:
    """The database as a server process has it, for service-level tests: on the test's
    rolled-back transaction, or (`committed`) one pool behind the FIFO gate."""
    if rolled_back is not None:
        yield rolled_back.database
        return
    database = await Database.open(settings, database_url)
    yield database
    await database.close()


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose writes are committed when the test's setup block ends: use it to
    build data with `builders`, then talk to the API."""
    async with engine.connect() as connection:
        yield connection


# 2026-12-01 is a Tuesday. "Now" is 07:00 UTC on that day unless a test moves the clock.
TODAY = datetime(2026, 12, 1).date()
NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=tmp_path,
        database_url=None,
        # Generous rate limits: only tests/test_rate_limits.py is about them.
        rate_limit_application="100000/second",
        rate_limit_client_address="100000/second",
        # No deliverer in the app's lifespan (its polls would take pool places the tests
        # count): tests/test_webhooks.py runs its own.
        webhook_delivery=False,
    )


@pytest.fixture
async def app(
    settings: Settings,
    database_url: str,
    clock: FakeClock,
    rolled_back: rollback.RolledBack | None,
) -> AsyncIterator[FastAPI]:
    database = rolled_back.database if rolled_back is not None else None
    app = create_app(settings, database_url, clock=clock, database=database)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def bearer(
    settings: Settings, client_id: str, roles: list[str] | None = None, **kw: int
) -> dict[str, str]:
    token = mint_dev_token(
        settings, client_id, roles if roles is not None else [builders.MANAGER], **kw
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(engine: AsyncEngine) -> builders.World:
    """The default world: London, capacity 1, 10-minute grid, 30-minute type, 08-12 and 13-17."""
    async with engine.begin() as connection:
        return await builders.world(connection)


@pytest.fixture
def auth(settings: Settings, world: builders.World) -> dict[str, str]:
    return bearer(settings, world.client_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_servers(database_url: str, data_dir: Path, **extra: str) -> Iterator[list[str]]:
    """Two real uvicorn processes on `database_url` (real clock, config cache off), with the
    environment `extra` on top."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_DEV_SECRET": TEST_SECRET,
        "CONFIG_CACHE_TTL_S": "0",
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        # Generous limits: the fuzzer and the concurrency tests are not what is limited here.
        "RATE_LIMIT_APPLICATION": "100000/second",
        "RATE_LIMIT_CLIENT_ADDRESS": "100000/second",
        # They live the whole session: their deliverers would take tests/test_webhooks.py's
        # events (and refuse its receiver on 127.0.0.1).
        "WEBHOOK_DELIVERY": "false",
        **extra,
    }
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "booking.api.app:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {url} did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two real uvicorn processes on the test database."""
    with uvicorn_servers(database_url, tmp_path_factory.mktemp("servers")) as urls:
        yield urls


@pytest.fixture(scope="session")
def pgbouncer(postgres: EmbeddedPostgres | None) -> Iterator[PgBouncer]:
    """Debian's PgBouncer in transaction mode in front of the embedded test PostgreSQL."""
    if postgres is None:
        pytest.skip("the PgBouncer tests run in front of the embedded PostgreSQL")
    with run_pgbouncer(postgres.socket_dir, **SHORT_OUTAGE) as bouncer:
        yield bouncer


def through_pgbouncer(bouncer: PgBouncer, database_url: str) -> str:
    """The URL of `database_url`'s database through `bouncer`."""
    database = make_url(database_url).database
    assert database is not None
    return bouncer.url(database)


# How the servers of the deployment tests reach PostgreSQL and lock a calendar-day.
DEPLOYMENTS = {
    "direct": {},
    "pgbouncer": {"DATABASE_POOLER": "transaction"},
    "row_lock": {"CALENDAR_DAY_LOCK": "row"},
}


@pytest.fixture(scope="session", params=list(DEPLOYMENTS))
def deployed_servers(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two real uvicorn processes on the test database, directly, through PgBouncer in
    transaction mode (DATABASE_POOLER=transaction), or locking calendar-days by row."""
    url = database_url
    if request.param == "pgbouncer":
        url = through_pgbouncer(request.getfixturevalue("pgbouncer"), database_url)
    with uvicorn_servers(
        url, tmp_path_factory.mktemp("servers"), **DEPLOYMENTS[request.param]
    ) as urls:
        yield urls
