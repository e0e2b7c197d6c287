"""The Authorization header: only `Bearer <compact JWS>` of at most 8 KiB reaches the
cryptography; anything else is 401 `token_invalid` (or `token_missing` without a header)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from booking.api.auth import TokenVerifier, authorize
from booking.service.catalog import ConfigCache
from booking.service.errors import Unauthenticated
from booking.service.roles import Role
from booking.settings import Settings
from booking.store.db import Database
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


# --- strict parsing: a compact JWS of at most 8 KiB, nothing else ------------------------------

EIGHT_KIB = 8 * 1024

# python-jose's base64 decoding skips these, so `<token>%%%%` once verified as `<token>`.
SKIPPED_BY_BASE64 = "%!*$&@^="


def junk(i: int) -> str:
    """The i-th distinct string of characters that base64 decoding skips."""
    digits = ""
    while True:
        i, digit = divmod(i, len(SKIPPED_BY_BASE64))
        digits += SKIPPED_BY_BASE64[digit]
        if i == 0:
            return digits


def hostile_variants(token: str, count: int) -> Iterator[str]:
    """`count` distinct tokens made of `token` and junk, or of nothing at all."""
    head, payload, signature = token.split(".")
    for i in range(count):
        match i % 8:
            case 0:
                yield token + junk(i)  # verified as the token itself before strict parsing
            case 1:
                yield junk(i) + token
            case 2:
                yield f"{head}{junk(i)}.{payload}.{signature}"
            case 3:
                yield token + junk(i) + "%" * EIGHT_KIB  # padded beyond 8 KiB
            case 4:
                yield token + b64url(str(i).encode())  # base64url, but not the signature
            case 5:
                yield ".".join(b64url(str(i).encode() + os.urandom(9)) for _ in range(3))
            case 6:
                yield f"{token}.{b64url(str(i).encode())}"  # four parts
            case _:
                yield f"{token} {junk(i)}"


async def test_ten_thousand_distinct_garbage_and_padded_tokens_answer_401_and_cache_nothing(
    db: Database, world: World, settings: Settings
) -> None:
    verifier = TokenVerifier(settings)
    cache = ConfigCache(db, ttl_s=60)
    token = dev_token(settings, world.client_id)
    manager = Role.APPOINTMENTS_MANAGER
    await authorize(verifier, cache, f"Bearer {token}", world.application_id, manager)
    assert verifier.cached_tokens == 1

    seen: set[str] = set()
    for variant in hostile_variants(token, 10_000):
        seen.add(variant)
        with pytest.raises(Unauthenticated) as refused:
            await authorize(verifier, cache, f"Bearer {variant}", world.application_id, manager)
        assert refused.value.code == "token_invalid", variant

    assert len(seen) == 10_000
    assert verifier.cached_tokens == 1  # the genuine token, nothing else
    await cache.close()


@pytest.mark.parametrize(
    "variant",
    ["{token}%%%%", "{token}==", "%{token}", "{token}!", "{token} ", "{token}%{megabyte}"],
)
async def test_a_valid_token_with_junk_around_it_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings, variant: str
) -> None:
    token = dev_token(settings, world.client_id)
    header = "Bearer " + variant.format(token=token, megabyte="%" * 1024 * 1024)

    response = await client.get(services_path(world), headers={"Authorization": header})

    assert_401(response)


async def test_a_validly_signed_token_longer_than_8_kib_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, note="x" * EIGHT_KIB)
    assert len(token) > EIGHT_KIB

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)
