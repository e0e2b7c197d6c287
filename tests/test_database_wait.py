"""Start-up waits for a database that is not there yet, and only for that: against a real
PostgreSQL that demands passwords (SCRAM), a wrong password, an unknown database or a host name
that does not exist fail at once with one line saying so; a refused port or a server that does
not answer is retried until DATABASE_WAIT_S; a password full of URL characters connects when it
comes as a part, through both drivers the server uses."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from booking.cli import DatabaseUnavailable, can_heal, wait_for_database
from booking.settings import Settings
from booking.store.embedded import EmbeddedPostgres

# Every character that must be percent-encoded in a URL, and a few that need care in SQL.
PASSWORD = "p@ss/w:rd#1 %?&=ü'\""
ROLE = "booking_app"


@pytest.fixture(scope="module")
def scram_postgres() -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL where every role but the superuser logs in with a password."""
    data_dir = Path(tempfile.mkdtemp(prefix="pgw", dir="/tmp"))  # short: socket paths are
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        literal = "'" + PASSWORD.replace("'", "''") + "'"
        server.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD {literal};")
        server.psql(f"CREATE DATABASE {ROLE} OWNER {ROLE};")
        hba = server.pgdata / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        server.psql("SELECT pg_reload_conf();")
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _forward_to(unix_socket: Path, port: int) -> asyncio.Server:
    """A TCP port on loopback in front of the server's Unix socket, as a container network
    puts `db:5432` in front of PostgreSQL."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(str(unix_socket))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    return await asyncio.start_server(connection, "127.0.0.1", port, reuse_address=True)


@pytest.fixture
async def db_port(scram_postgres: EmbeddedPostgres) -> AsyncIterator[int]:
    port = _free_port()
    server = await _forward_to(Path(scram_postgres.socket_dir) / ".s.PGSQL.5432", port)
    yield port
    server.close()
    await server.wait_closed()


def parts(port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_host": "127.0.0.1",
        "database_port": port,
        "database_user": ROLE,
        "database_password": PASSWORD,
        "database_name": ROLE,
        "database_connect_timeout_s": 2,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


async def wait(settings: Settings, timeout_s: float = 30) -> None:
    assert settings.database_dsn is not None
    await wait_for_database(
        settings.database_dsn,
        timeout_s=timeout_s,
        connect_timeout_s=settings.database_connect_timeout_s,
    )


async def test_a_password_with_url_characters_connects_when_given_as_a_part(
    db_port: int,
) -> None:
    dsn = parts(db_port).database_dsn
    assert dsn is not None
    await wait(parts(db_port))
    # The two parsers the server hands the URL to: SQLAlchemy's and asyncpg's.
    engine = create_async_engine(dsn)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_user"))).scalar() == ROLE
    finally:
        await engine.dispose()
    driver_dsn = make_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False)
    driver = await asyncpg.connect(driver_dsn)
    try:
        assert await driver.fetchval("SELECT current_user") == ROLE
    finally:
        await driver.close()


async def test_a_socket_directory_given_as_the_host_connects(
    scram_postgres: EmbeddedPostgres,
) -> None:
    await wait(parts(5432, database_host=scram_postgres.socket_dir))


async def test_a_wrong_password_fails_at_once_without_showing_it(db_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        await wait(parts(db_port, database_password="wrong-" + PASSWORD))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "refused the login" in message
    assert f'password authentication failed for user "{ROLE}"' in message
    assert "wrong-" not in message


async def test_an_unknown_database_fails_at_once(db_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match='database "no_such_db" does not exist'):
        await wait(parts(db_port, database_name="no_such_db"))
    assert time.monotonic() - started < 5


async def test_a_host_name_that_does_not_exist_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match=r"'no-such-host\.invalid' cannot be resolved"):
        await wait(parts(5432, database_host="no-such-host.invalid"))
    assert time.monotonic() - started < 5


async def test_a_refused_port_is_retried_until_the_wait_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="did not accept connections within 2 s"):
        await wait(parts(_free_port()), timeout_s=2)
    assert time.monotonic() - started >= 2
    assert capsys.readouterr().err.count("Waiting for the database (ConnectionRefusedError)") >= 2


async def test_a_server_that_does_not_answer_is_retried_until_the_wait_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        with pytest.raises(DatabaseUnavailable, match=r"within 2 s \(last: TimeoutError"):
            await wait(parts(port, database_connect_timeout_s=0.3), timeout_s=2)
    assert capsys.readouterr().err.count("Waiting for the database (TimeoutError)") >= 2


async def test_a_database_that_comes_up_late_is_waited_for(
    scram_postgres: EmbeddedPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    waiting = asyncio.create_task(wait(parts(port), timeout_s=30))
    await asyncio.sleep(1.5)
    assert not waiting.done()
    server = await _forward_to(Path(scram_postgres.socket_dir) / ".s.PGSQL.5432", port)
    try:
        await asyncio.wait_for(waiting, timeout=10)
    finally:
        server.close()
        await server.wait_closed()
    assert "Waiting for the database (ConnectionRefusedError)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "heals"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (ConnectionResetError(errno.ECONNRESET, "reset"), True),
        (TimeoutError(), True),
        (FileNotFoundError(errno.ENOENT, "no socket yet"), True),
        (OSError(errno.EHOSTUNREACH, "no route to host"), True),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.TooManyConnectionsError("too many clients"), True),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), False),
        (asyncpg.InvalidPasswordError("password authentication failed"), False),
        (asyncpg.InvalidAuthorizationSpecificationError("no such role"), False),
        (asyncpg.InvalidCatalogNameError('database "x" does not exist'), False),
        (OSError(errno.EACCES, "permission denied"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_errors_that_can_heal_are_retried(error: BaseException, heals: bool) -> None:
    assert can_heal(error) is heals
