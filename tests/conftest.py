"""Tests run on a real PostgreSQL: the embedded server under .data/, or the server of
TEST_DATABASE_URL (its role needs CREATEDB). Each test session creates its own database there
(named with the process id, dropped at the end), built by the Alembic migrations (never
create_all); every test starts from empty tables (TRUNCATE), so tests that commit for real, like
the concurrency ones, need no special treatment."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
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

from . import builders

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
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=25, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(settings: Settings, database_url: str, engine: AsyncEngine) -> AsyncIterator[Database]:
    """The database as a server process has it (one pool, the FIFO gate), for service-level
    tests."""
    database = await Database.open(settings, database_url)
    yield database
    await database.close()


TABLES = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> None:
    """Every test that touches the database starts from empty tables."""
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


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
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database_url, clock=clock)
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


@pytest.fixture(scope="session")
def live_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two real uvicorn processes on the test database (real clock, config cache off)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_DEV_SECRET": TEST_SECRET,
        "CONFIG_CACHE_TTL_S": "0",
        "DATA_DIR": str(tmp_path_factory.mktemp("servers")),
        "LOG_LEVEL": "WARNING",
        # Generous limits: the fuzzer and the concurrency tests are not what is limited here.
        "RATE_LIMIT_APPLICATION": "100000/second",
        "RATE_LIMIT_CLIENT_ADDRESS": "100000/second",
        # They live the whole session: their deliverers would take tests/test_webhooks.py's
        # events (and refuse its receiver on 127.0.0.1).
        "WEBHOOK_DELIVERY": "false",
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
