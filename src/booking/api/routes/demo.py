"""The reference booking page (examples/booking-page/) at /demo/, and the dev-mode token it
calls the API with: `booking-api serve` with DEMO_PAGE=true (what `make run` does), dev mode
only (the settings refuse it otherwise). A real front end gets its tokens from its own backend
(see the README); this endpoint stands in for that backend on a developer's machine."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from booking.api.auth import mint_dev_token
from booking.api.deps import Services
from booking.api.schemas import ApiModel
from booking.cli import PROJECT_ROOT
from booking.service.errors import NotFound
from booking.service.roles import Role

PAGE_PATH = "/demo"
PAGE_DIR = PROJECT_ROOT / "examples" / "booking-page"
# Long enough to choose a time and type the details, short enough not to matter if it leaks.
DEMO_TOKEN_TTL_S = 900

router = APIRouter(include_in_schema=False)


class DemoTokenRequest(ApiModel):
    application_id: uuid.UUID


class DemoTokenOut(ApiModel):
    token: str
    expires_in: int


@router.post(PAGE_PATH + "/token")
async def demo_token(body: DemoTokenRequest, services: Services) -> DemoTokenOut:
    """A short-lived Appointments Manager token of a registered application."""
    application = await services.cache.application(body.application_id)
    if application is None:
        raise NotFound("No such application.", code="application_not_found", field="applicationId")
    token = mint_dev_token(
        services.settings,
        application.client_id,
        [Role.APPOINTMENTS_MANAGER.value],
        ttl_s=DEMO_TOKEN_TTL_S,
    )
    return DemoTokenOut(token=token, expires_in=DEMO_TOKEN_TTL_S)


def install(app: FastAPI) -> None:
    """The token route, then the page's files under /demo/ (a mount after the route, so the
    route wins)."""
    app.include_router(router)
    app.mount(PAGE_PATH, StaticFiles(directory=PAGE_DIR, html=True), name="demo")
