"""What a request handler needs, as `Annotated` dependencies so signatures read like prose."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.auth import TokenVerifier, authorize
from booking.service.catalog import ApplicationConfig, Catalog, ConfigCache
from booking.service.errors import UnsupportedMediaType
from booking.service.wallclock import Clock
from booking.settings import Settings

APPOINTMENTS_MANAGER = "Appointments Manager"


@dataclass
class Runtime:
    """Process-wide state, built by the app's lifespan."""

    settings: Settings
    engine: AsyncEngine  # transactions (booking, cancelling)
    reader: AsyncEngine  # the same pool in autocommit, for one-statement reads
    cache: ConfigCache
    verifier: TokenVerifier
    clock: Clock


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, a needless hop on every request.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# Declares the Bearer scheme in OpenAPI (the Authorize button of /docs); `authorize` reads the
# raw header itself so that every failure gets its own problem code.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT of the registered application.")


def requires_role(role: str) -> Callable[..., Awaitable[ApplicationConfig]]:
    async def dependency(
        runtime: RuntimeDep,
        application_id: Annotated[uuid.UUID, Path(alias="applicationId")],
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> ApplicationConfig:
        return await authorize(runtime.verifier, runtime.cache, authorization, application_id, role)

    return dependency


async def require_json_body(request: Request) -> None:
    """A body route reads JSON only: say so (415) instead of failing to parse something else."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            "The body must be JSON: send Content-Type: application/json.",
            code="unsupported_media_type",
        )


AppointmentsManager = Annotated[ApplicationConfig, Depends(requires_role(APPOINTMENTS_MANAGER))]


async def get_catalog(runtime: RuntimeDep, application: AppointmentsManager) -> Catalog:
    return await runtime.cache.catalog(application.organization_id)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
