"""A LeanRoute answers exactly as FastAPI's own route does, good input or bad: the same endpoint
is served by both, side by side, and every answer compared."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.routing import _IncludedRouter

from booking.api import problems
from booking.api.app import RESOURCE_ROUTERS, create_app
from booking.api.lean_route import LeanRoute
from booking.api.routes.paths import CuIndex, OnDate, ServiceId
from booking.api.schemas import BookAppointmentRequest
from booking.service.errors import Unauthenticated
from booking.settings import Settings
from tests.conftest import TEST_SECRET

CALLS: list[str] = []


async def caller(
    request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
) -> str:
    CALLS.append("caller")
    if request.headers.get("authorization") != "Bearer ok":
        raise Unauthenticated("No token.", code="token_missing")
    return str(application_id)


Caller = Annotated[str, Depends(caller)]


async def book(
    who: Caller,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    body: BookAppointmentRequest,
    request: Request,
) -> Response:
    answer = f'{{"who": "{who}", "service": "{service_id}", "date": "{on_date}", '
    answer += f'"cu": {cu_index}, "start": {body.start_time}, "path": "{request.url.path}"}}'
    return Response(answer, 201, media_type="application/json")


async def listed(who: Caller, cu_index: CuIndex, q: Annotated[int, Query()] = 0) -> Response:
    return Response(f'{{"q": {q}}}', media_type="application/json")


PATH = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments"


def app_with(route_class: type[Any] | None) -> FastAPI:
    app = FastAPI(redirect_slashes=False)
    problems.install(app)
    router = APIRouter() if route_class is None else APIRouter(route_class=route_class)
    router.add_api_route(PATH, book, methods=["POST"], status_code=201)
    router.add_api_route("/{applicationId}/list/{cuIndex}", listed, methods=["GET"])
    app.router.routes.extend(router.routes)  # as `app.mount_routes` takes them
    return app


LEAN, PLAIN = app_with(LeanRoute), app_with(None)
APP_ID, SERVICE_ID = uuid.uuid4(), uuid.uuid4()
GOOD_PATH = f"/{APP_ID}/calendars/{SERVICE_ID}/2026-12-02/3/appointments"
GOOD_BODY = {"serviceTypeId": str(uuid.uuid4()), "startTime": 600, "channel": "FaceToFace"}
JSON = {"content-type": "application/json", "authorization": "Bearer ok"}


async def both(
    path: str, content: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[httpx.Response, httpx.Response]:
    answers = []
    for app in (LEAN, PLAIN):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers.append(await client.request(method, path, content=content, headers=headers))
    return answers[0], answers[1]


def same(lean: httpx.Response, plain: httpx.Response) -> None:
    assert (lean.status_code, lean.headers.get("content-type")) == (
        plain.status_code,
        plain.headers.get("content-type"),
    ), (lean.text, plain.text)
    assert lean.json() == plain.json()


def test_the_booking_route_runs_lean_and_a_route_with_a_query_runs_fastapis_way() -> None:
    router = APIRouter(route_class=LeanRoute)
    router.add_api_route(PATH, book, methods=["POST"])
    router.add_api_route("/{applicationId}/list/{cuIndex}", listed, methods=["GET"])
    booking, with_query = router.routes
    assert isinstance(booking, LeanRoute)
    assert isinstance(with_query, LeanRoute)
    assert booking.get_route_handler().__qualname__ == "_handler.<locals>.handle"
    assert with_query.get_route_handler().__qualname__ != "_handler.<locals>.handle"


async def test_a_good_booking_is_answered_alike() -> None:
    import orjson

    lean, plain = await both(GOOD_PATH, orjson.dumps(GOOD_BODY), JSON)
    assert lean.status_code == 201
    same(lean, plain)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'"a string"',
        b"570",
        b'{"startTime": NaN, "serviceTypeId": "x", "channel": "FaceToFace"}',
        b'{"serviceTypeId": "\xff\xfe"}',
        b'{"fields": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"startTime": "570", "serviceTypeId": "x", "channel": "Carrier pigeon"}',
        b'{"startTime": 570, "serviceTypeId": null, "channel": "FaceToFace", "extra": 1}',
        b'{"startTime": 1e400}',
    ],
    ids=[
        "empty",
        "truncated",
        "array",
        "string",
        "number",
        "nan",
        "non-utf8",
        "too-deep",
        "bad-values",
        "unknown-field",
        "huge-number",
    ],
)
async def test_a_bad_body_is_answered_alike(content: bytes) -> None:
    same(*await both(GOOD_PATH, content, JSON))


@pytest.mark.parametrize(
    "path",
    [
        f"/not-a-uuid/calendars/{SERVICE_ID}/2026-12-02/3/appointments",
        f"/{APP_ID}/calendars/not-a-uuid/2026-12-02/3/appointments",
        f"/{APP_ID}/calendars/{SERVICE_ID}/2026-13-02/-1/appointments",
        f"/{APP_ID}/calendars/{SERVICE_ID}/20261202/x/appointments",
    ],
)
async def test_bad_path_parameters_are_answered_alike_with_every_error_at_once(path: str) -> None:
    import orjson

    same(*await both(path, orjson.dumps({"startTime": "x"}), JSON))


async def test_authentication_answers_before_the_parameters_are_judged_as_fastapi_does() -> None:
    import orjson

    path = f"/{APP_ID}/calendars/not-a-uuid/2026-12-02/3/appointments"
    lean, plain = await both(
        path, orjson.dumps({"startTime": "x"}), {"content-type": "application/json"}
    )
    assert lean.status_code == 401
    same(lean, plain)


async def test_a_body_that_is_not_json_at_all_is_refused_before_authentication() -> None:
    CALLS.clear()
    lean, plain = await both(GOOD_PATH, b"{", {"content-type": "application/json"})
    assert lean.status_code == 422
    assert CALLS == []
    same(lean, plain)


async def test_a_route_with_a_query_parameter_still_works() -> None:
    path = f"/{APP_ID}/list/2?q=5"
    lean, plain = await both(path, b"", {"authorization": "Bearer ok"}, method="GET")
    assert lean.json() == {"q": 5}
    same(lean, plain)


async def test_a_body_not_declared_json_is_judged_as_fastapi_judges_it() -> None:
    headers = {"content-type": "text/plain", "authorization": "Bearer ok"}
    lean, plain = await both(GOOD_PATH, b'{"startTime": 570}', headers)
    assert lean.status_code == 422
    same(lean, plain)


def test_every_resource_route_is_matched_by_the_apps_own_router() -> None:
    """Not behind a router of its own (`include_router`), which FastAPI tries as one more
    matcher per router on every request; and each is a LeanRoute."""
    app = create_app(Settings(jwt_dev_secret=TEST_SECRET), "postgresql+asyncpg://unused@/unused")
    resource_routes = [route for router in RESOURCE_ROUTERS for route in router.routes]
    assert resource_routes
    top_level = {id(route) for route in app.router.routes}
    assert all(id(route) in top_level for route in resource_routes)
    assert all(isinstance(route, LeanRoute) for route in resource_routes)
    assert not [route for route in app.router.routes if isinstance(route, _IncludedRouter)]
