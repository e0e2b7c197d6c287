"""What a request handler needs, as `Annotated` dependencies so signatures read like prose:
who calls with which role (`Manager`, `ManagerSendingJson` for the Appointments Manager,
`CustomersManager`, `CustomersManagerSendingJson` for the Customers Manager: the authenticated
application and its organization's configuration) and the process's services (`Services`).

FastAPI's dependency solving costs microseconds per dependency on every request, so
authentication, the role check and the organization's configuration are resolved in one step
(the bench measured the difference); `Services` only reads the app's state."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from booking.api.auth import TokenVerifier, authorize
from booking.api.problems import UnsupportedMediaType
from booking.api.ratelimit import RateLimits
from booking.service.catalog import ApplicationConfig, Catalog, ConfigCache
from booking.service.errors import DomainError
from booking.service.roles import Role
from booking.service.wallclock import Clock
from booking.service.webhooks.before import BeforeHooks
from booking.settings import Settings
from booking.store.db import Database
from booking.store.tenant_share import current_tenant

BEARER_SCHEME = "HTTPBearer"  # the OpenAPI security scheme every application route declares


@dataclass
class Runtime:
    """The process's services, built by the app's lifespan. The fault tests swap `db` for a
    store double (`tests/kit.py`): the one seam for breaking the database on purpose."""

    settings: Settings
    db: Database
    cache: ConfigCache
    verifier: TokenVerifier
    clock: Clock
    rate_limits: RateLimits
    before_hooks: BeforeHooks | None = None  # beforeBookAppointment, beforeCheckIn


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request of an application with the route's role: who it is, and its
    organization's configuration."""

    application: ApplicationConfig
    catalog: Catalog


CallerDependency = Callable[[Request, uuid.UUID], Awaitable[Caller]]


def caller_with(role: Role, *, sending_json: bool = False) -> CallerDependency:
    """The dependency that authenticates a request of an application granted `role`; with
    `sending_json`, a body route's, which reads JSON only."""

    # `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    # The Authorization header is read from the request, not declared as a parameter: the
    # Bearer scheme documents it, and each declared header costs its own parsing on every
    # request.
    async def caller(
        request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
    ) -> Caller:
        """415 not JSON (a body route, before anything else); 401 bad token; 404 unknown
        application or not the token's; 403 disabled or no role."""
        if sending_json:
            _require_json(request)
        runtime = runtime_of(request)
        authorization = request.headers.get("authorization")
        try:
            application = await authorize(
                runtime.verifier, runtime.cache, authorization, application_id, role
            )
        except DomainError:  # a failed authentication is charged to the client's address (429)
            await runtime.rate_limits.charge_client_address(request.scope)
            raise
        await runtime.rate_limits.charge_application(request.scope, str(application.id))  # 429
        current_tenant.set(application.id)  # its share of the database connections
        catalog = await runtime.cache.catalog(application.organization_id)
        return Caller(application, catalog)

    return caller


def _require_json(request: Request) -> None:
    """Say so (415) instead of failing to parse something else."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            "The body must be JSON: send Content-Type: application/json.",
            code="unsupported_media_type",
        )


Manager = Annotated[Caller, Depends(caller_with(Role.APPOINTMENTS_MANAGER))]
ManagerSendingJson = Annotated[
    Caller, Depends(caller_with(Role.APPOINTMENTS_MANAGER, sending_json=True))
]
CustomersManager = Annotated[Caller, Depends(caller_with(Role.CUSTOMERS_MANAGER))]
CustomersManagerSendingJson = Annotated[
    Caller, Depends(caller_with(Role.CUSTOMERS_MANAGER, sending_json=True))
]
WebhooksOperator = Annotated[Caller, Depends(caller_with(Role.WEBHOOKS_OPERATOR))]


async def services(request: Request) -> Runtime:
    return runtime_of(request)


Services = Annotated[Runtime, Depends(services)]
