"""What a request handler needs, as `Annotated` dependencies so signatures read like prose:
who calls (`Manager`, `ManagerSendingJson`: the authenticated application and its
organization's configuration) and the process's services (`Services`).

FastAPI's dependency solving costs microseconds per dependency on every request, so
authentication, the role check and the organization's configuration are resolved in one step
(the bench measured the difference); `Services` only reads the app's state."""

from __future__ import annotations

import uuid
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
    before_hooks: BeforeHooks | None = None  # the organizations' beforeBookAppointment


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request of an application with the Appointments Manager role: who it
    is, and its organization's configuration."""

    application: ApplicationConfig
    catalog: Catalog


# `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread.
# The Authorization header is read from the request, not declared as a parameter: the Bearer
# scheme documents it, and each declared header costs its own parsing on every request.
async def caller(
    request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
) -> Caller:
    """401 bad token; 404 unknown application or not the token's; 403 disabled or no role."""
    return await _authorized(request, application_id, Role.APPOINTMENTS_MANAGER)


async def webhooks_operator(
    request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
) -> Caller:
    """As `caller`, for the Webhooks Operator role."""
    return await _authorized(request, application_id, Role.WEBHOOKS_OPERATOR)


async def _authorized(request: Request, application_id: uuid.UUID, role: Role) -> Caller:
    runtime = runtime_of(request)
    authorization = request.headers.get("authorization")
    try:
        application = await authorize(
            runtime.verifier,
            runtime.cache,
            authorization,
            application_id,
            role,
        )
    except DomainError:  # a failed authentication is charged to the client's address (429)
        await runtime.rate_limits.charge_client_address(request.scope)
        raise
    await runtime.rate_limits.charge_application(request.scope, str(application.id))  # 429
    current_tenant.set(application.id)  # its share of the database connections
    catalog = await runtime.cache.catalog(application.organization_id)
    return Caller(application, catalog)


async def caller_sending_json(
    request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
) -> Caller:
    """A body route reads JSON only: say so (415), before anything else, instead of failing to
    parse something else."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            "The body must be JSON: send Content-Type: application/json.",
            code="unsupported_media_type",
        )
    return await caller(request, application_id)


Manager = Annotated[Caller, Depends(caller)]
WebhooksOperator = Annotated[Caller, Depends(webhooks_operator)]
ManagerSendingJson = Annotated[Caller, Depends(caller_sending_json)]


async def services(request: Request) -> Runtime:
    return runtime_of(request)


Services = Annotated[Runtime, Depends(services)]
