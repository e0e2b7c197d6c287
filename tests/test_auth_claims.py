"""Dev mode (HS256): what a token must carry and how it must be signed; every bad one is a 401,
never a 500."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import TEST_SECRET, bearer
from tests.jwt_kit import (
    as_bearer,
    assert_401,
    b64url,
    b64url_json,
    dev_claims,
    dev_token,
    hand_token,
    hs256_signer,
    no_signature,
    services_path,
    tamper,
)


async def test_expired_token_answers_401_token_expired(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    now = int(time.time())
    token = dev_token(settings, world.client_id, iat=now - 7200, nbf=now - 7200, exp=now - 3600)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response, "token_expired")


async def test_token_expired_within_the_leeway_is_still_accepted(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    now = int(time.time())
    assert settings.jwt_leeway_s >= 10
    token = dev_token(settings, world.client_id, iat=now - 600, nbf=now - 600, exp=now - 5)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


async def test_token_from_the_mint_with_negative_ttl_answers_401_token_expired(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    response = await client.get(
        services_path(world), headers=bearer(settings, world.client_id, ttl_s=-3600)
    )

    assert_401(response, "token_expired")


async def test_token_without_exp_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, exp=None)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_not_yet_valid_token_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    now = int(time.time())
    token = dev_token(settings, world.client_id, nbf=now + 3600, exp=now + 7200)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_wrong_issuer_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, iss="https://evil.test/")

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_token_without_issuer_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, iss=None)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_wrong_audience_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, aud="some-other-api")

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_token_without_audience_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    """python-jose skips the audience check when the token has no `aud`: it must be required."""
    token = dev_token(settings, world.client_id, aud=None)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_audience_list_containing_ours_is_accepted(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, aud=["other-api", settings.audience])

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


async def test_tampered_signature_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = tamper(dev_token(settings, world.client_id))

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_tampered_payload_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    """A token of one client whose payload is swapped for another client's claims."""
    async with engine.begin() as conn:
        other_app, other_client = await builders.application(conn, world.organization_id)
    head, _, signature = dev_token(settings, world.client_id).split(".")
    forged = f"{head}.{b64url_json(dev_claims(settings, other_client))}.{signature}"

    response = await client.get(f"/{other_app}/services", headers=as_bearer(forged))

    assert_401(response)


async def test_token_signed_with_another_secret_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, secret="another-secret-" + "x" * 40)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_token_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings, alg: str
) -> None:
    token = hand_token(
        {"alg": alg, "typ": "JWT"}, dev_claims(settings, world.client_id), no_signature
    )
    assert token.endswith(".")

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "", None, 256, ["HS256"]])
async def test_token_with_an_unconfigured_alg_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings, alg: object
) -> None:
    header: dict[str, Any] = {"typ": "JWT"} if alg is None else {"alg": alg, "typ": "JWT"}
    token = hand_token(header, dev_claims(settings, world.client_id), hs256_signer(TEST_SECRET))

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


@pytest.mark.parametrize("alg", ["HS256\u20ac", "\u20ac", "x" * 5000, 'a"b\\c'])
async def test_hostile_alg_header_answers_401_not_500(
    client: httpx.AsyncClient, world: World, settings: Settings, alg: str
) -> None:
    """The alg is echoed in WWW-Authenticate: a non-latin-1 or huge value must not break it."""
    token = hand_token({"alg": alg}, dev_claims(settings, world.client_id), hs256_signer("x"))

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)
    assert len(response.headers["www-authenticate"]) < 500


async def test_claim_of_the_wrong_type_answers_401_not_500(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    """python-jose lets a TypeError out of `int(claims["exp"])` for a list."""
    for bad in ({"exp": [1]}, {"nbf": {"a": 1}}, {"iat": [1]}, {"aud": 5}):
        token = dev_token(settings, world.client_id, **bad)

        response = await client.get(services_path(world), headers=as_bearer(token))

        assert_401(response)


def signed_with_raw_claim(settings: Settings, client_id: str, name: str, literal: str) -> str:
    """A validly signed dev token whose claim `name` is the JSON text `literal`, as written."""
    claims = dev_claims(settings, client_id, **{name: "RAW"})
    payload = json.dumps(claims, separators=(",", ":")).replace('"RAW"', literal)
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url(payload.encode())}"
    signature = b64url(hs256_signer(TEST_SECRET)(signing_input.encode()))
    return f"{signing_input}.{signature}"


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "literal",
    ["1e400", "Infinity", "-Infinity", "NaN", "1" + "0" * 400, str(2**64), "253402300800"],
    ids=["1e400", "Infinity", "-Infinity", "NaN", "400 digits", "2**64", "year 10000"],
)
async def test_a_time_claim_beyond_any_date_answers_401_not_500(
    client: httpx.AsyncClient, world: World, settings: Settings, name: str, literal: str
) -> None:
    token = signed_with_raw_claim(settings, world.client_id, name, literal)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_a_time_claim_as_a_string_or_a_boolean_answers_401(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    """A NumericDate is a JSON number (RFC 7519); python-jose would take "exp": "2000000000"."""
    for literal in (f'"{int(time.time()) + 600}"', "true"):
        token = signed_with_raw_claim(settings, world.client_id, "iat", literal)

        response = await client.get(services_path(world), headers=as_bearer(token))

        assert_401(response)


async def test_a_time_claim_written_as_a_fraction_is_accepted(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = signed_with_raw_claim(settings, world.client_id, "exp", f"{time.time() + 600:.3f}")

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text
