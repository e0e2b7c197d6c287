"""The app factory. Nothing is created at import time: the lifespan opens the database."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from booking import metrics
from booking.api import openapi, problems, ratelimit, tracing
from booking.api.auth import TokenVerifier
from booking.api.deps import Runtime
from booking.api.metrics import MetricsMiddleware
from booking.api.middleware import RequestContextMiddleware, configure_logging
from booking.api.problems import Unavailable
from booking.api.ratelimit import RateLimits
from booking.api.routes import (
    appointments,
    calendars,
    customers,
    demo,
    discovery,
    reservations,
    webhooks,
)
from booking.api.schemas import BookAppointmentRequest
from booking.service import holds
from booking.service.catalog import ConfigCache
from booking.service.wallclock import Clock, system_clock
from booking.service.webhooks.before import BeforeHooks
from booking.service.webhooks.delivery import Deliverer
from booking.settings import Settings
from booking.store import holds as store_holds
from booking.store import idempotency
from booking.store.db import Database, DatabaseUnavailable

if TYPE_CHECKING:  # opentelemetry is there only with the `tracing` extra (or a recent FastAPI)
    from opentelemetry.trace import TracerProvider

DESCRIPTION = """\
Open-source appointment booking, wire-compatible with the appointment endpoints of a
queue-management platform's server-to-server API. Every route needs `Authorization: Bearer <JWT>`
whose client is the registered application in the path, with the route's role (`Appointments
Manager`; `Customers Manager` for customer records).
Errors are `application/problem+json` with a stable `code`.
"""


PURGE_INTERVAL_S = 600.0

# CORS: what a browser may send from an allowed origin, and which answer headers its script
# may read (beyond the CORS-safelisted ones). A preflight is cached this long.
CORS_METHODS = ["GET", "POST", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-None-Match",
    "X-Request-Id",
]
CORS_EXPOSED_HEADERS = [
    "Location",
    "Idempotent-Replayed",
    "Retry-After",
    "ETag",
    "RateLimit",
    "RateLimit-Policy",
    "X-Request-Id",
]
CORS_MAX_AGE_S = 600

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


READINESS_MAX_AGE_S = 1.0


class Readiness:
    """`/readyz` answers from a check at most READINESS_MAX_AGE_S old: a flood of probes costs
    one query a second, not a database connection each. Concurrent probes share one check."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._checked_at = float("-inf")
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> bool:
        if time.monotonic() - self._checked_at < READINESS_MAX_AGE_S:
            return self._ready
        async with self._lock:
            if time.monotonic() - self._checked_at >= READINESS_MAX_AGE_S:
                self._ready = await self._check()
                self._checked_at = time.monotonic()
        return self._ready

    async def _check(self) -> bool:
        try:
            await self.db.ping()
        except Exception as error:  # whatever the reason, the database is not answering
            log.warning("readiness check failed: %s", type(error).__name__)
            return False
        return True


def create_app(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock = system_clock,
    access_log: bool = True,
    tracer_provider: TracerProvider | None = None,
    database: Database | None = None,
) -> FastAPI:
    """The app. `database`, when given, is used instead of a pool the lifespan opens on
    `database_url`, and left open: the seam through which tests hand in a database held inside
    a transaction they roll back."""
    rate_limits = RateLimits(
        settings.rate_limit_application,
        settings.rate_limit_client_address,
        settings.rate_limit_storage_url,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or await Database.open(settings, database_url)
        app.state.runtime = Runtime(
            settings=settings,
            db=db,
            cache=ConfigCache(db, settings.config_cache_ttl_s),
            verifier=TokenVerifier(settings),
            clock=clock,
            rate_limits=rate_limits,
            before_hooks=BeforeHooks(settings),
        )
        app.state.readiness = Readiness(db)
        purger = asyncio.create_task(_purge_expired(db, clock))
        deliverer = (
            asyncio.create_task(Deliverer(db, settings, database_url).run())
            if settings.webhook_delivery
            else None
        )
        # The modules, routes and models loaded so far live as long as the process: keep them
        # out of the garbage collector's full passes, which otherwise rescan them all.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in (purger, deliverer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await app.state.runtime.cache.close()
            if app.state.runtime.before_hooks is not None:
                await app.state.runtime.before_hooks.close()
            await rate_limits.close()
            if database is None:
                await db.close()
            metrics.process_stopping()

    # FastAPIOffline: /docs and /redoc load their scripts from the app, not from a CDN.
    app = FastAPIOffline(
        title="Booking API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        # Starlette's trailing-slash redirect builds its Location from the Host header (an open
        # redirect): such paths answer 404 like any other unknown path.
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry is off: it would check three providers on every request
        # and, with TRACING_ENABLED, trace each request a second time (`tracing.instrument`
        # does it, with the exclusions and the asyncpg spans).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    ratelimit.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        rate_limits=rate_limits,
        allowed_hosts=settings.allowed_hosts,
        access_log_enabled=access_log,
    )
    if settings.cors_allowed_origins:
        # Outside the request context: a preflight is answered here, before the rate limits
        # and the routes (which have no OPTIONS), and every answer of the context middleware
        # (413, 429) carries the CORS fields a browser needs to let the script read it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=CORS_MAX_AGE_S,
        )
    # Added last, so the outermost: it sees every answer, those of other middleware too.
    token = settings.metrics_token
    app.add_middleware(MetricsMiddleware, token=token.get_secret_value() if token else None)
    if settings.tracing_enabled:
        tracing.instrument(app, tracer_provider)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="The database answers (checked at most once a second)",
        responses={503: {}},
    )
    async def readyz(request: Request) -> dict[str, Any]:
        if not await request.app.state.readiness.ready():
            raise Unavailable("The database is not answering.", code="database_unavailable")
        return {"status": "ready"}

    if settings.enable_bench_routes:

        @app.post("/bench/bare", include_in_schema=False)
        async def bare(body: BookAppointmentRequest) -> Response:
            """The framework's floor: parse and validate a booking body, answer JSON."""
            payload = orjson.dumps({"serviceTypeId": str(body.service_type_id), "ok": True})
            return Response(payload, media_type="application/json")

    mount_routes(app)
    if settings.demo_page:
        demo.install(app)
    app.openapi = lambda: openapi.openapi_schema(app)  # type: ignore[method-assign]
    return app


RESOURCE_ROUTERS = (
    appointments.router,
    calendars.router,
    customers.router,
    reservations.router,
    discovery.router,
    webhooks.router,
)


def mount_routes(app: FastAPI) -> None:
    """The resources' routes, taken into the app's own router in this order. Not by
    `include_router`: FastAPI keeps each included router as a matcher of its own, tried in turn,
    and on every request each one before the right one cost another lookup of its routes (the
    booking route went through two matchers; the last resource's, through seven). The routers
    carry what `include_router` would add (`routes.resource_router`)."""
    for router in RESOURCE_ROUTERS:
        app.router.routes.extend(router.routes)


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
