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
from fastapi.openapi.utils import get_openapi

from booking.api import problems
from booking.api.auth import TokenVerifier
from booking.api.deps import BEARER_SCHEME, Runtime, runtime_of
from booking.api.middleware import RequestContextMiddleware, configure_logging
from booking.api.routes import appointments, calendars, discovery, reservations
from booking.api.schemas import BookAppointmentRequest
from booking.service import holds
from booking.service.catalog import ConfigCache
from booking.service.wallclock import Clock, system_clock
from booking.settings import Settings
from booking.store import holds as store_holds
from booking.store import idempotency
from booking.store.db import Database, DatabaseUnavailable

DESCRIPTION = """\
Open-source appointment booking, wire-compatible with the appointment endpoints of a
queue-management platform's server-to-server API. Every route needs `Authorization: Bearer <JWT>`
whose client is the registered application in the path, with the `Appointments Manager` role.
Errors are `application/problem+json` with a stable `code`.
"""


PURGE_INTERVAL_S = 600.0

log = logging.getLogger("booking.api")


async def _purge_expired(db: Database, clock: Clock) -> None:
    """Every few minutes, forget Idempotency-Keys past their TTL and slot holds long expired
    (expired ones are already ignored, and an expired hold frees its place the instant it
    expires; this only keeps the tables small). A failure waits for the next round."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        try:
            async with db.transaction() as conn:
                now = clock()
                keys = await idempotency.purge_expired(conn, now)
                ended = await store_holds.purge_ended(conn, now - holds.HOLD_RETENTION)
            if keys or ended:
                log.info("purged expired rows", extra={"keys": keys, "holds": ended})
        except (DatabaseUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("purge failed: %s", type(error).__name__)


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
        purger = asyncio.create_task(_purge_expired(db, clock))
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

    app = FastAPI(
        title="Booking API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
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
    app.include_router(reservations.router)
    app.include_router(discovery.router)
    app.openapi = lambda: _openapi_with_problem_media_type(app)  # type: ignore[method-assign]
    return app


def _openapi_with_problem_media_type(app: FastAPI) -> dict[str, Any]:
    """FastAPI files every response model under application/json; errors are served as
    application/problem+json, so the schema says so. Every application route (they all start
    with /{applicationId}) needs the bearer token: declared here rather than with a security
    dependency, which would cost its solving on every request."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT of the registered application.",
            }
        }
        for route, path in schema.get("paths", {}).items():
            for operation in path.values():
                if route.startswith("/{applicationId}"):
                    operation["security"] = [{BEARER_SCHEME: []}]
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[0] in "45" and "application/json" in content:
                        content["application/problem+json"] = content.pop("application/json")
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_env() -> FastAPI:
    """The uvicorn factory (`booking.api.app:app_from_env`): settings from the environment.
    `booking-api serve` sets DATABASE_URL to the embedded server before starting workers."""
    settings = Settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the server with `booking-api serve`.")
    configure_logging(settings.log_level)
    return create_app(settings, settings.database_url)
