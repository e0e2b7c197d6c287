"""The Authorization header: only `Bearer <compact JWS>` of at most 8 KiB reaches the
cryptography; anything else is 401 `token_invalid` (or `token_missing` without a header)."""

from __future__ import annotations

import httpx
import pytest

from booking.settings import Settings
from tests.builders import World
from tests.conftest import TODAY
from tests.jwt_kit import (
    as_bearer,
    assert_401,
    b64url,
    b64url_json,
    dev_token,
    services_path,
)


async def test_valid_dev_token_is_accepted(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(services_path(world), headers=auth)

    assert response.status_code == 200, response.text
    assert [s["id"] for s in response.json()] == [str(world.service_id)]


async def test_missing_authorization_header_answers_401_bearer_challenge(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(services_path(world))

    problem = assert_401(response, "token_missing")
    assert response.headers["www-authenticate"] == 'Bearer realm="booking-api"'
    assert set(problem) >= {"type", "title", "status", "detail", "code"}


async def test_missing_authorization_header_on_booking_answers_401(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(world.appointments_path(TODAY), json=world.body(570))

    assert_401(response, "token_missing")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Basic x", "Bearer", "Bearer ", "Bearer    ", "Token abc", "bearer"],
)
async def test_malformed_authorization_header_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings, header: str
) -> None:
    response = await client.get(services_path(world), headers={"Authorization": header})

    assert_401(response)


async def test_scheme_is_case_insensitive(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id)

    response = await client.get(services_path(world), headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        f"{b64url(b'[1,2]')}.{b64url(b'{}')}.",  # the header is JSON but not an object
        f"{b64url_json({'alg': 'HS256'})}.{b64url(b'not json')}.{b64url(b'sig')}",
    ],
)
async def test_garbage_token_answers_401(
    client: httpx.AsyncClient, world: World, token: str
) -> None:
    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)
