"""`booking-api`: serve, migrate, load configuration, mint dev tokens.

`booking-api serve` is what `make run` calls: it starts the embedded PostgreSQL unless
DATABASE_URL is set, applies migrations, loads examples/demo.yaml, prints how to call the API and
serves it until Ctrl-C, then stops the embedded database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SQLAlchemyError

from booking.settings import JwtMode, Settings
from booking.store.db import to_async_url
from booking.store.embedded import EmbeddedPostgres


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


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL to use: DATABASE_URL, or the embedded server (started, then stopped)."""
    if settings.database_url:
        url = to_async_url(settings.database_url)
        asyncio.run(wait_for_database(url))
        yield url
        return
    server = EmbeddedPostgres(settings.data_dir)
    print(f"Starting the embedded PostgreSQL (data in {server.pgdata}) ...", file=sys.stderr)
    server.start()
    try:
        server.ensure_database(EMBEDDED_DATABASE)
        yield server.url(EMBEDDED_DATABASE)
    finally:
        print("Stopping the embedded PostgreSQL ...", file=sys.stderr)
        server.stop()


async def wait_for_database(url: str, timeout_s: float = 60.0) -> None:
    """A container may start before its database accepts connections: retry for a while."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, pool_pre_ping=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except (OSError, SQLAlchemyError) as error:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"The database did not answer within {timeout_s:.0f} s: {error}"
                    ) from None
                print("Waiting for the database ...", file=sys.stderr)
                await asyncio.sleep(1)
    finally:
        await engine.dispose()


def migrate(url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = url
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
    from booking.store.db import create_engine

    engine = create_engine(settings, url)
    try:
        async with engine.connect() as conn:
            application = await load_application(conn, application_id)
    finally:
        await engine.dispose()
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
    manager = next((a for a in applications if "Appointments Manager" in a[3]), None)
    if manager and settings.jwt_mode is JwtMode.DEV:
        token = mint_dev_token(settings, manager[1], list(manager[3]), ttl_s=12 * 3600)
        print(f"\nA dev token for {manager[1]} (12 h):\n  export TOKEN={token}")
        print(f'  curl -H "Authorization: Bearer $TOKEN" {base}/{manager[0]}/services\n')


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from booking.api.middleware import configure_logging

    with database(settings) as url:
        migrate(url)
        summary = None
        if not args.no_demo and DEMO_FILE.exists():
            summary = asyncio.run(_load(url, DEMO_FILE, settings))
        _print_welcome(settings, summary)
        os.environ["DATABASE_URL"] = url  # the worker processes read it
        configure_logging(settings.log_level)
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


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as url:
        migrate(url)
    print("Migrated to head.")
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from booking.store.loader import ConfigFileError

    with database(settings) as url:
        migrate(url)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "role", None):
        args.role = [r for r in args.role if r]
    settings = Settings()
    return int(args.handler(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
