"""Production mode: RS256/ES256 tokens verified against a JWKS served by a real HTTP server on
127.0.0.1, or against a PEM public key, and the JWKS cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.auth import TokenVerifier
from booking.service.errors import Unauthenticated
from booking.settings import Settings
from tests.builders import World
from tests.conftest import TEST_SECRET, TODAY, FakeClock, bearer
from tests.jwt_kit import (
    AUDIENCE,
    ISSUER,
    MakeClient,
    as_bearer,
    assert_401,
    assert_problem,
    claims_for,
    client_factory,
    hand_token,
    hs256_signer,
    no_signature,
    production_settings,
    services_path,
)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_pem: str
    public_pem: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        key: dict[str, Any] = jwk.construct(self.public_pem, self.alg).to_dict()
        return {**key, "kid": self.kid, "use": "sig"}

    def token(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        headers = {"kid": kid or self.kid}
        return str(jwt.encode(claims, self.private_pem, algorithm=self.alg, headers=headers))


def _pems(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", *_pems(rsa.generate_private_key(65537, 2048)))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", *_pems(ec.generate_private_key(ec.SECP256R1())))


@dataclass(frozen=True)
class Keys:
    primary: SigningKey  # in the JWKS from the start
    rotated: SigningKey  # added to the JWKS by tests that rotate keys
    attacker: SigningKey  # never published
    ec: SigningKey  # ES256, in the JWKS from the start


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(rsa_key("primary"), rsa_key("rotated"), rsa_key("attacker"), ec_key("ec-1"))


@dataclass
class JwksServer:
    url: str
    keys: list[dict[str, Any]]
    requests: int = 0
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, key: SigningKey) -> None:
        with self.lock:
            self.keys.append(key.public_jwk)

    def withdraw(self, kid: str) -> None:
        with self.lock:
            self.keys[:] = [k for k in self.keys if k["kid"] != kid]


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[JwksServer]:
    """A real HTTP server on 127.0.0.1 serving {"keys": [...]}, counting the fetches."""
    state = JwksServer(url="", keys=[keys.primary.public_jwk, keys.ec.public_jwk])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
                fail = state.fail
                body = json.dumps({"keys": list(state.keys)}).encode()
            if self.path != "/jwks" or fail:
                self.send_error(404 if not fail else 500)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def make_client(database_url: str, clock: FakeClock, engine: AsyncEngine) -> MakeClient:
    return client_factory(database_url, clock)


@pytest.fixture
def jwks_settings(tmp_path: Path, jwks_server: JwksServer) -> Settings:
    return production_settings(tmp_path, jwt_jwks_url=jwks_server.url)


@pytest.fixture
async def prod_client(
    make_client: MakeClient, jwks_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(jwks_settings) as client:
        yield client


def prod_claims(world: World, **overrides: Any) -> dict[str, Any]:
    return claims_for(world.client_id, issuer=ISSUER, audience=AUDIENCE, **overrides)


async def test_production_rs256_token_from_jwks_is_accepted(
    prod_client: httpx.AsyncClient, world: World, keys: Keys, jwks_server: JwksServer
) -> None:
    token = keys.primary.token(prod_claims(world))

    first = await prod_client.get(services_path(world), headers=as_bearer(token))
    second = await prod_client.post(
        world.appointments_path(TODAY), json=world.body(570), headers=as_bearer(token)
    )

    assert first.status_code == 200, first.text
    assert second.status_code == 201, second.text
    assert jwks_server.requests == 1  # the keys are cached


async def test_production_es256_token_from_jwks_is_accepted(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    token = keys.ec.token(prod_claims(world))

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


async def test_production_unknown_kid_answers_401_after_one_jwks_refetch(
    prod_client: httpx.AsyncClient, world: World, keys: Keys, jwks_server: JwksServer
) -> None:
    ok = await prod_client.get(
        services_path(world), headers=as_bearer(keys.primary.token(prod_claims(world)))
    )
    assert ok.status_code == 200, ok.text
    assert jwks_server.requests == 1

    unknown = await prod_client.get(
        services_path(world), headers=as_bearer(keys.attacker.token(prod_claims(world)))
    )
    assert_401(unknown)
    assert jwks_server.requests == 2  # refetched once, in case the key was rotated in

    again = await prod_client.get(
        services_path(world),
        headers=as_bearer(keys.attacker.token(prod_claims(world), kid="another-unknown")),
    )
    assert_401(again)
    assert jwks_server.requests == 2  # refetches on unknown kids are rate limited


async def test_production_key_rotated_into_jwks_is_picked_up_on_first_sight(
    prod_client: httpx.AsyncClient, world: World, keys: Keys, jwks_server: JwksServer
) -> None:
    ok = await prod_client.get(
        services_path(world), headers=as_bearer(keys.primary.token(prod_claims(world)))
    )
    assert ok.status_code == 200, ok.text
    jwks_server.publish(keys.rotated)

    rotated = await prod_client.get(
        services_path(world), headers=as_bearer(keys.rotated.token(prod_claims(world)))
    )

    assert rotated.status_code == 200, rotated.text
    assert jwks_server.requests == 2


async def test_production_token_signed_by_another_key_under_a_known_kid_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    token = keys.attacker.token(prod_claims(world), kid=keys.primary.kid)

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_production_token_without_kid_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    token = str(jwt.encode(prod_claims(world), keys.primary.private_pem, algorithm="RS256"))

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_production_alg_that_does_not_fit_the_kids_key_type_answers_401_not_500(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    """ES256 under the kid of an RSA key: python-jose raises JWKError, not a JWTError."""
    es_under_rsa_kid = keys.ec.token(prod_claims(world), kid=keys.primary.kid)
    rs_under_ec_kid = keys.primary.token(prod_claims(world), kid=keys.ec.kid)

    for token in (es_under_rsa_kid, rs_under_ec_kid):
        response = await prod_client.get(services_path(world), headers=as_bearer(token))

        assert_401(response)


async def test_production_hs256_signed_with_the_rsa_public_key_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    """Key confusion: the public key, as PEM or as the JWKS JSON, used as an HMAC secret."""
    secrets: list[str | bytes] = [
        keys.primary.public_pem,
        keys.primary.public_pem.encode(),
        json.dumps(keys.primary.public_jwk),
    ]
    for secret in secrets:
        token = hand_token(
            {"alg": "HS256", "typ": "JWT", "kid": keys.primary.kid},
            prod_claims(world),
            hs256_signer(secret),
        )

        response = await prod_client.get(services_path(world), headers=as_bearer(token))

        assert_401(response)


async def test_production_hs256_token_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    for secret in (TEST_SECRET, "secret", ""):
        token = hand_token(
            {"alg": "HS256", "typ": "JWT", "kid": keys.primary.kid},
            prod_claims(world),
            hs256_signer(secret),
        )

        response = await prod_client.get(services_path(world), headers=as_bearer(token))

        assert_401(response)


async def test_production_alg_none_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    token = hand_token(
        {"alg": "none", "typ": "JWT", "kid": keys.primary.kid}, prod_claims(world), no_signature
    )

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_production_expired_token_answers_401_token_expired(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    now = int(time.time())
    token = keys.primary.token(prod_claims(world, iat=now - 7200, nbf=now - 7200, exp=now - 3600))

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert_401(response, "token_expired")


async def test_production_not_yet_valid_token_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    now = int(time.time())
    token = keys.primary.token(prod_claims(world, nbf=now + 3600, exp=now + 7200))

    response = await prod_client.get(services_path(world), headers=as_bearer(token))

    assert_401(response)


async def test_production_wrong_audience_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    for claims in (prod_claims(world, aud="api://other"), prod_claims(world, aud=None)):
        response = await prod_client.get(
            services_path(world), headers=as_bearer(keys.primary.token(claims))
        )

        assert_401(response)


async def test_production_wrong_issuer_answers_401(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    for claims in (
        prod_claims(world, iss="https://evil.test/"),
        prod_claims(world, iss="https://issuer.test"),  # no trailing slash: not the same
        prod_claims(world, iss=None),
    ):
        response = await prod_client.get(
            services_path(world), headers=as_bearer(keys.primary.token(claims))
        )

        assert_401(response)


async def test_production_dev_token_answers_401(
    prod_client: httpx.AsyncClient, world: World, jwks_settings: Settings
) -> None:
    """A token minted by the CLI's dev path never passes in production."""
    response = await prod_client.get(
        services_path(world), headers=bearer(jwks_settings, world.client_id)
    )

    assert_401(response)


async def test_production_jwks_outage_answers_401_not_500(
    prod_client: httpx.AsyncClient, world: World, keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.fail = True

    response = await prod_client.get(
        services_path(world), headers=as_bearer(keys.primary.token(prod_claims(world)))
    )

    assert_401(response)
    assert jwks_server.requests >= 1


async def test_production_role_and_application_checks_still_apply(
    prod_client: httpx.AsyncClient, world: World, keys: Keys
) -> None:
    no_role = await prod_client.get(
        services_path(world), headers=as_bearer(keys.primary.token(prod_claims(world, roles=[])))
    )
    other_client = await prod_client.get(
        services_path(world),
        headers=as_bearer(keys.primary.token(prod_claims(world, azp="someone-else"))),
    )

    assert_problem(no_role, 403, "role_missing")
    assert_problem(other_client, 404, "application_not_found")


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_jwks_refetch_on_unknown_kid_is_rate_limited(
    jwks_settings: Settings, jwks_server: JwksServer, keys: Keys, world: World
) -> None:
    ticker = Ticker()
    verifier = TokenVerifier(jwks_settings, monotonic=ticker)
    unknown = keys.attacker.token(prod_claims(world))

    await verifier.claims(keys.primary.token(prod_claims(world)))
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await verifier.claims(unknown)
    assert jwks_server.requests == 2

    ticker.now += 31
    with pytest.raises(Unauthenticated):
        await verifier.claims(unknown)
    assert jwks_server.requests == 3


async def test_jwks_keys_are_refreshed_after_the_cache_ttl(
    jwks_settings: Settings, jwks_server: JwksServer, keys: Keys, world: World
) -> None:
    """A key withdrawn from the JWKS (revoked) stops verifying once the cache TTL has passed."""
    ticker = Ticker()
    verifier = TokenVerifier(jwks_settings, monotonic=ticker)
    token = keys.primary.token(prod_claims(world))
    await verifier.claims(token)

    jwks_server.withdraw(keys.primary.kid)
    ticker.now += jwks_settings.jwks_cache_ttl_s - 1
    await verifier.claims(token)  # still cached
    assert jwks_server.requests == 1

    ticker.now += 2
    with pytest.raises(Unauthenticated):
        await verifier.claims(token)


async def test_production_with_a_pem_public_key_accepts_rs256(
    make_client: MakeClient, world: World, keys: Keys, tmp_path: Path
) -> None:
    settings = production_settings(tmp_path, jwt_public_key=keys.primary.public_pem)

    async with make_client(settings) as client:
        good = await client.get(
            services_path(world), headers=as_bearer(keys.primary.token(prod_claims(world)))
        )
        forged = await client.get(
            services_path(world), headers=as_bearer(keys.attacker.token(prod_claims(world)))
        )
        confused = await client.get(
            services_path(world),
            headers=as_bearer(
                hand_token(
                    {"alg": "HS256", "typ": "JWT"},
                    prod_claims(world),
                    hs256_signer(keys.primary.public_pem),
                )
            ),
        )
        es_against_rsa_pem = await client.get(
            services_path(world), headers=as_bearer(keys.ec.token(prod_claims(world)))
        )

    assert good.status_code == 200, good.text
    assert_401(forged)
    assert_401(confused)
    assert_401(es_against_rsa_pem)
