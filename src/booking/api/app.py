"""The app factory. Nothing is created at import time: the lifespan opens the database."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline

from booking.api import openapi, problems
from booking.api.auth import TokenVerifier
from booking.api.deps import Runtime, runtime_of
from booking.api.middleware import RequestContextMiddleware, configure_logging
from booking.api.routes import appointments, calendars, customers, discovery
from booking.api.schemas import BookAppointmentRequest
from booking.service.catalog import ConfigCache
from booking.service.wallclock import Clock, system_clock
from booking.settings import Settings
from booking.store import idempotency
from booking.store.db import Database, DatabaseUnavailable

DESCRIPTION = """\
Open-source appointment booking, wire-compatible with the appointment endpoints of a
queue-management platform's server-to-server API. Every route needs `Authorization: Bearer <JWT>`
whose client is the registered application in the path, with the route's role (`Appointments
Manager`; `Customers Manager` for customer records).
Errors are `application/problem+json` with a stable `code`.
"""


PURGE_INTERVAL_S = 600.0

log = logging.getLogger("booking.api")


async def _purge_expired_idempotency_keys(db: Database, clock: Clock) -> None:
    """Every few minutes, forget Idempotency-Keys past their TTL (expired ones are already
    ignored; this only keeps the table small). A failure waits for the next round."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        try:
            async with db.transaction() as conn:
                purged = await idempotency.purge_expired(conn, clock())
            if purged:
                log.info("purged expired idempotency keys", extra={"purged": purged})
        except (DatabaseUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("idempotency purge failed: %s", type(error).__name__)


def create_app(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock = system_clock,
    access_log: bool = True,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await Database.open(settings, database_url)
        app.state.runtime = Runtime(
            settings=settings,
            db=db,
            cache=ConfigCache(db, settings.config_cache_ttl_s),
            verifier=TokenVerifier(settings),
            clock=clock,
        )
        purger = asyncio.create_task(_purge_expired_idempotency_keys(db, clock))
        # The modules, routes and models loaded so far live as long as the process: keep them
        # out of the garbage collector's full passes, which otherwise rescan them all.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await app.state.runtime.cache.close()
            await db.close()

    # FastAPIOffline: /docs and /redoc load their scripts from the app, not from a CDN.
    app = FastAPIOffline(
        title="Booking API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    problems.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        access_log_enabled=access_log,
    )

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="The database answers", responses={503: {}})
    async def readyz(request: Request) -> dict[str, Any]:
        await runtime_of(request).db.ping()
        return {"status": "ready"}

    if settings.enable_bench_routes:

        @app.post("/bench/bare", include_in_schema=False)
        async def bare(body: BookAppointmentRequest) -> Response:
            """The framework's floor: parse and validate a booking body, answer JSON."""
            payload = orjson.dumps({"serviceTypeId": str(body.service_type_id), "ok": True})
            return Response(payload, media_type="application/json")

    app.include_router(appointments.router)
    app.include_router(calendars.router)
    app.include_router(customers.router)
    app.include_router(discovery.router)
    app.openapi = lambda: openapi.openapi_schema(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (`booking.api.app:app_from_env`): settings from the environment.
    The database is `Settings.database_dsn` (a URL or its parts); `booking-api serve` sets
    DATABASE_URL to the embedded server before starting workers."""
    settings = Settings()
    dsn = settings.database_dsn
    if not dsn:
        raise RuntimeError(
            "No database is configured: set DATABASE_URL or DATABASE_HOST, or start the server "
            "with `booking-api serve`."
        )
    configure_logging(settings.log_level)
    return create_app(settings, dsn)
