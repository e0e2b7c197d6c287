"""`booking-api`: serve, migrate, load configuration, mint dev tokens.

`booking-api serve` is what `make run` calls: it starts the embedded PostgreSQL unless a
database is configured (DATABASE_URL or DATABASE_HOST), applies migrations, loads
examples/demo.yaml, prints how to call the API and serves it until Ctrl-C, then stops the embedded
database.

Heavy modules are imported where they are used: `booking-api health`, the container's health
check, runs every few seconds and needs only the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from booking import metrics
from booking.settings import JwtMode, Settings, SettingsError
from booking.store.embedded import EmbeddedPostgres, EmbeddedPostgresMissing, installed_pgserver


def _project_root() -> Path:
    """Where alembic.ini, migrations/ and examples/ are: the checkout (editable install), else
    BOOKING_HOME, else the working directory (the Docker image's /app)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "alembic.ini").exists():
        return checkout
    return Path(os.environ.get("BOOKING_HOME", Path.cwd()))


PROJECT_ROOT = _project_root()
DEMO_FILE = PROJECT_ROOT / "examples" / "demo.yaml"
EMBEDDED_DATABASE = "booking"


class DatabaseUnavailable(Exception):
    """The configured database cannot be used: the message says why, in one line."""


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL to use: the configured one (once it answers), or the embedded server
    (started, then stopped)."""
    if settings.database_dsn:
        url = settings.database_dsn
        asyncio.run(
            wait_for_database(
                url,
                timeout_s=settings.database_wait_s,
                connect_timeout_s=settings.database_connect_timeout_s,
            )
        )
        yield url
        return
    installed_pgserver()  # or a one-line EmbeddedPostgresMissing, before saying anything
    server = EmbeddedPostgres(settings.data_dir)
    print(f"Starting the embedded PostgreSQL (data in {server.pgdata}) ...", file=sys.stderr)
    server.start()
    try:
        server.ensure_database(EMBEDDED_DATABASE)
        yield server.url(EMBEDDED_DATABASE)
    finally:
        print("Stopping the embedded PostgreSQL ...", file=sys.stderr)
        server.stop()


def can_heal(error: BaseException) -> bool:
    """Whether waiting can cure a failed connection: the server is not listening yet, not
    answering yet, starting, restarting or full. A host name that does not exist, refused
    credentials or an unknown database stay as they are: retrying them only hides the cause."""
    import asyncpg

    if isinstance(error, socket.gaierror):
        return error.errno == socket.EAI_AGAIN  # the resolver did not answer, this time
    if isinstance(error, ConnectionError | TimeoutError | FileNotFoundError):
        return True  # refused, reset, no answer in time; a Unix socket not created yet
    if isinstance(error, OSError):
        return error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
    return isinstance(
        error,
        asyncpg.CannotConnectNowError  # "the database system is starting up"
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError
        | asyncpg.PostgresConnectionError,
    )


def _why_not(error: BaseException, url: str) -> str:
    """One line on a connection failure that waiting cannot cure (never the password)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "(default)"
    if isinstance(error, socket.gaierror):
        return f"The database host {host!r} cannot be resolved ({error.strerror})."
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return f"The database refused the login: {error} (check the user and password)."
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"The database server at {host!r} answered: {error}."
    return f"Cannot connect to the database at {host!r}: {type(error).__name__}: {error}"


async def wait_for_database(url: str, *, timeout_s: float, connect_timeout_s: float) -> None:
    """A container may start before its database accepts connections (and podman-compose does
    not wait for the database's health check): retry what can heal for `timeout_s`, fail at once
    on what cannot. Raises DatabaseUnavailable."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
        except Exception as error:
            if not can_heal(error):
                raise DatabaseUnavailable(_why_not(error, url)) from None
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"The database did not accept connections within {timeout_s:.0f} s "
                    f"(last: {type(error).__name__}: {error})."
                ) from None
            print(f"Waiting for the database ({type(error).__name__}) ...", file=sys.stderr)
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        else:
            await conn.close()
            return


def migrate(url: str, settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config

    from booking.store.db import engine_connect_args

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["connect_args"] = engine_connect_args(settings)
    command.upgrade(config, "head")


async def _load(url: str, path: Path, settings: Settings) -> object:
    from booking.store.db import create_engine
    from booking.store.loader import load_file

    engine = create_engine(settings, url)
    try:
        return await load_file(engine, path)
    finally:
        await engine.dispose()


async def _client_id_of(url: str, application_id: uuid.UUID, settings: Settings) -> str | None:
    from booking.service.catalog import load_application
    from booking.store.db import Database

    db = await Database.open(settings, url)
    try:
        async with db.read() as conn:
            application = await load_application(conn, application_id)
    finally:
        await db.close()
    return application.client_id if application else None


def _print_welcome(settings: Settings, summary: object) -> None:
    from booking.api.auth import mint_dev_token

    base = f"http://{settings.host}:{settings.port}"
    print(f"\nBooking API on {base}  (OpenAPI: {base}/docs)")
    applications = getattr(summary, "applications", [])
    services = getattr(summary, "services", [])
    for service_id, name in services:
        print(f"  service  {service_id}  {name}")
    for app_id, client_id, name, roles in applications:
        print(f"  application {app_id}  client_id={client_id}  {name}  roles={list(roles)}")
    if summary is not None:
        print(
            f"\nLoaded the demo organization ({DEMO_FILE.name}): for trying the API, never for "
            "production (`booking-api serve --no-demo` leaves it out)."
        )
    manager = next((a for a in applications if "Appointments Manager" in a[3]), None)
    if manager and settings.jwt_mode is JwtMode.DEV:
        token = mint_dev_token(settings, manager[1], list(manager[3]), ttl_s=12 * 3600)
        print(f"\nA dev token for {manager[1]} (12 h):\n  export TOKEN={token}")
        print(f'  curl -H "Authorization: Bearer $TOKEN" {base}/{manager[0]}/services\n')
    if manager and settings.demo_page:
        print(f"The reference booking page: {base}/demo/?applicationId={manager[0]}\n")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from booking.api.middleware import configure_logging

    if settings.jwt_mode is JwtMode.DEV:
        # Checked before anything starts, and a generated secret is written once, here, rather
        # than raced for by the workers.
        _ = settings.dev_secret
    with database(settings) as url:
        migrate(url, settings)
        summary = None
        if not args.no_demo and DEMO_FILE.exists():
            summary = asyncio.run(_load(url, DEMO_FILE, settings))
        _print_welcome(settings, summary)
        # The worker processes read it (and DATABASE_URL_FILE too would be a conflict).
        os.environ["DATABASE_URL"] = url
        os.environ.pop("DATABASE_URL_FILE", None)
        configure_logging(settings.log_level)
        with metrics.multiprocess_dir(settings.workers):
            uvicorn.run(
                "booking.api.app:app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                loop="auto",
                # httptools with the bounds uvicorn lacks: head size and time, connections.
                http="booking.api.http_protocol:BoundedHttpToolsProtocol",
                timeout_keep_alive=settings.keep_alive_timeout_s,
                timeout_graceful_shutdown=settings.shutdown_grace_s,
                access_log=False,
                log_config=None,
                # X-Forwarded-For/-Proto only from the proxies named (uvicorn trusts 127.0.0.1).
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=settings.forwarded_allow_ips or None,
            )
    return 0


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM is how a supervisor asks for a stop: unwind (stopping the embedded database)
    and exit 0. uvicorn handles it while it serves, then raises it again, which lands here."""
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as url:
        migrate(url, settings)
    print("Migrated to head.")
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from booking.store.loader import ConfigFileError

    with database(settings) as url:
        migrate(url, settings)
        try:
            summary = asyncio.run(_load(url, Path(args.file), settings))
        except ConfigFileError as error:
            print(f"{args.file}: {error}", file=sys.stderr)
            return 1
    print(f"Loaded {args.file}: {summary}")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from booking.api.auth import mint_dev_token

    if settings.jwt_mode is not JwtMode.DEV:
        print("Tokens can be minted only in dev mode (JWT_MODE=dev).", file=sys.stderr)
        return 2
    client_id = args.client_id
    if client_id is None:
        with database(settings) as url:
            client_id = asyncio.run(_client_id_of(url, args.application_id, settings))
        if client_id is None:
            print(f"No registered application {args.application_id}.", file=sys.stderr)
            return 1
    roles = args.role if args.role is not None else ["Appointments Manager"]
    print(mint_dev_token(settings, client_id, roles, ttl_s=args.ttl))
    return 0


def probe_address(host: str) -> str:
    """Where a process beside the server reaches it: a wildcard address is not one to connect
    to, its loopback is (HOST=0.0.0.0 in the image)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when the server beside us answers 200 on /healthz (alive) or /readyz (ready to
    take traffic: its database answers): the container's HEALTHCHECK."""
    path = "/readyz" if args.ready else "/healthz"
    url = f"http://{probe_address(settings.host)}:{settings.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


async def _webhooks(url: str, settings: Settings, redeliver: list[uuid.UUID]) -> list[str]:
    """The undelivered events, one line each; or, given ids, queue those again."""
    from booking.store import outbox
    from booking.store.db import Database

    db = await Database.open(settings, url)
    try:
        async with db.read() as conn:
            if redeliver:
                queued = await outbox.redeliver(conn, redeliver, None)
                return [f"queued again: {event_id}" for event_id in queued]
            return [
                f"{e.id} {e.state} {e.hook} case {e.case_id} #{e.sequence} "
                f"attempts={e.attempts} next={e.next_attempt_at.isoformat()} "
                f"error={e.last_error}"
                for e in await outbox.undelivered(conn, None, 1000)
            ]
    finally:
        await db.close()


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as url:
        for line in asyncio.run(_webhooks(url, settings, args.redeliver or [])):
            print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booking-api", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, load the demo organization and serve the API")
    serve.add_argument("--no-demo", action="store_true", help="do not load examples/demo.yaml")
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)

    load = sub.add_parser("load", help="create or update configuration from a YAML file")
    load.add_argument("file")
    load.set_defaults(handler=cmd_load)

    token = sub.add_parser("token", help="print a dev-mode token")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--application-id", type=uuid.UUID, help="registered application GUID")
    who.add_argument("--client-id", help="OAuth client id (skips the database look-up)")
    token.add_argument(
        "--role",
        action="append",
        help="a role (repeatable); default: Appointments Manager; pass --role '' for none",
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(handler=cmd_token)

    webhooks = sub.add_parser(
        "webhooks", help="list the webhook events not delivered (failed or retrying)"
    )
    webhooks.add_argument(
        "--redeliver",
        type=uuid.UUID,
        nargs="+",
        metavar="EVENT_ID",
        help="queue these events again (their schedule starts over; a stopped endpoint resumes)",
    )
    webhooks.set_defaults(handler=cmd_webhooks)

    health = sub.add_parser("health", help="exit 0 if the local server answers /healthz")
    health.add_argument("--ready", action="store_true", help="probe /readyz instead")
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    health.set_defaults(handler=cmd_health)
    return parser


def configuration_errors(error: ValidationError) -> list[str]:
    """One line per invalid setting, named as its environment variable, without the value
    (it may be a secret)."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        names = "/".join(str(part).upper() for part in item["loc"])
        lines.append(f"{names}: {message}" if names else message)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "role", None):
        args.role = [r for r in args.role if r]
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        settings = Settings()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        for line in configuration_errors(error):
            print(f"Configuration error: {line}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    except EmbeddedPostgresMissing as error:
        print(error, file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
