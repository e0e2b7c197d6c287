"""Garbage in, a clear 4xx problem out: never a 5xx, never a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from tests.builders import World
from tests.conftest import TODAY

DAY = TODAY + timedelta(days=1)
JSON = {"content-type": "application/json"}


def assert_client_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert "Traceback" not in response.text


async def test_body_over_the_size_limit_is_413(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    body = b'{"language": "' + b"a" * 70_000 + b'"}'
    response = await client.post(
        world.appointments_path(DAY), content=body, headers={**auth, **JSON}
    )
    assert_client_error(response, 413, "body_too_large")


async def test_streamed_body_over_the_limit_without_content_length_is_413(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 10_000

    response = await client.post(
        world.appointments_path(DAY), content=chunks(), headers={**auth, **JSON}
    )
    assert_client_error(response, 413, "body_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
async def test_body_that_is_not_declared_json_is_415(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        world.appointments_path(DAY),
        content=b'{"startTime": 570}',
        headers={**auth, "content-type": content_type},
    )
    assert_client_error(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_parameter_is_fine(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    import json

    response = await client.post(
        world.appointments_path(DAY),
        content=json.dumps(world.body(570)).encode(),
        headers={**auth, "content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"serviceTypeId": "\xff\xfe"}',  # not UTF-8
        b'{"fields": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested too deep
    ],
    ids=["non-utf8", "deeply-nested"],
)
async def test_undecodable_body_is_400(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], raw: bytes
) -> None:
    response = await client.post(
        world.appointments_path(DAY), content=raw, headers={**auth, **JSON}
    )
    assert_client_error(response, 400, "malformed_body")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        570,
        {"serviceTypeId": None, "startTime": None, "channel": None},
        {"startTime": "570", "serviceTypeId": "x", "channel": "FaceToFace"},
        {"fields": {"00000000-0000-0000-0000-000000000001": [1, 2]}},
        {"fields": {f"00000000-0000-0000-0000-{i:012d}": 1 for i in range(101)}},
        {"tagIds": ["00000000-0000-0000-0000-000000000001"] * 101},
        {"language": "x" * 1000},
        {"contactEmail": "a" * 10_000 + "@example.com"},
        {"contactPhoneNumber": "1" * 1000},
        {"preventSelfCheckIn": 1},
        {"bypassTimeslotCheck": None},
    ],
)
async def test_nonsense_bodies_are_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], body: object
) -> None:
    payload = body if not isinstance(body, dict) else {**world.body(570), **body}
    response = await client.post(world.appointments_path(DAY), json=payload, headers=auth)
    assert_client_error(response, 422, "validation_failed")
    assert response.json()["errors"], "each problem names at least one field"


@pytest.mark.parametrize("raw", [b"null", b"", b'{"startTime": 1e400}', b'{"startTime": NaN}'])
async def test_json_edge_values_are_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], raw: bytes
) -> None:
    response = await client.post(
        world.appointments_path(DAY), content=raw, headers={**auth, **JSON}
    )
    assert_client_error(response, 422, "validation_failed")


async def test_null_optional_fields_mean_absent(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    nulls = {
        "language": None,
        "customerRecordId": None,
        "contactPhoneNumber": None,
        "contactEmail": None,
        "fields": None,
        "tagIds": None,
    }
    response = await client.post(
        world.appointments_path(DAY), json={**world.body(570), **nulls}, headers=auth
    )
    assert response.status_code == 201, response.text


async def test_unknown_route_and_method_are_problems(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert_client_error(await client.get("/no/such/route", headers=auth), 404, "route_not_found")
    response = await client.put(world.appointments_path(DAY), json={}, headers=auth)
    assert_client_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "suffix", "allowed"),
    [
        ("PUT", "/appointments", "GET, POST"),
        ("PATCH", "/appointments/00000000-0000-4000-8000-000000000001", "DELETE"),
        ("POST", "/vacancies", "GET"),
    ],
)
async def test_405_under_an_application_lists_the_allowed_methods(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    method: str,
    suffix: str,
    allowed: str,
) -> None:
    response = await client.request(
        method, world.calendar_path(DAY) + suffix, json={}, headers=auth
    )
    assert_client_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed


async def test_405_on_a_discovery_route_lists_get(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.delete(f"/{world.application_id}/services", headers=auth)
    assert_client_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"
