"""Authentication and authorization: who may call, and what a bad token gets back.

Dev mode (HS256, the `settings` fixture) covers the bearer header, the claims and the
application/role checks on `GET /{applicationId}/services`. Production mode verifies RS256/ES256
tokens against a JWKS served by a real HTTP server on 127.0.0.1, or against a PEM public key.
The last test proves that booking with a phone number and an email logs neither.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jose import jwk, jwt
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.api.auth import TokenVerifier, mint_dev_token
from booking.service.errors import Unauthenticated
from booking.settings import JwtMode, Settings
from tests import builders
from tests.builders import MANAGER, World
from tests.conftest import TEST_SECRET, TODAY, FakeClock, bearer

ISSUER = "https://issuer.test/"
AUDIENCE = "api://booking"

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


# --- helpers -----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hand_token(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A JWT built byte by byte, for tokens a library refuses to produce."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def hs256_signer(secret: str | bytes) -> Callable[[bytes], bytes]:
    key = secret.encode() if isinstance(secret, str) else secret
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


def no_signature(_: bytes) -> bytes:
    return b""


def claims_for(
    client_id: str,
    /,
    *,
    issuer: str,
    audience: str,
    roles: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Valid claims for `client_id`; an override of None drops that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "azp": client_id,
        "roles": [MANAGER] if roles is None else roles,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def dev_claims(settings: Settings, client_id: str, /, **overrides: Any) -> dict[str, Any]:
    return claims_for(client_id, issuer=settings.issuer, audience=settings.audience, **overrides)


def dev_token(
    settings: Settings, client_id: str, /, *, secret: str = TEST_SECRET, **overrides: Any
) -> str:
    return str(jwt.encode(dev_claims(settings, client_id, **overrides), secret, algorithm="HS256"))


def as_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tamper(token: str) -> str:
    """Change one character in the middle of the signature (the last one may be padding bits)."""
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    replacement = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{replacement}{signature[middle + 1 :]}"


def services_path(world: World) -> str:
    return f"/{world.application_id}/services"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"]
    assert problem["title"]
    assert problem["detail"]
    return problem


def assert_401(response: httpx.Response, code: str = "token_invalid") -> dict[str, Any]:
    problem = assert_problem(response, 401, code)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    if code != "token_missing":
        assert 'error="invalid_token"' in challenge, challenge
    return problem


# --- keys and the JWKS server ------------------------------------------------------------------


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
    """An app with the given settings, started by its lifespan, and a client talking to it."""

    @asynccontextmanager
    async def make(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, database_url, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return make


def production_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_mode": "production",
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "config_cache_ttl_s": 0,
        "data_dir": tmp_path,
        **overrides,
    }
    return Settings(**values)


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


# --- dev mode: the bearer header ---------------------------------------------------------------


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


# --- dev mode: the claims ----------------------------------------------------------------------


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


# --- dev mode: the application and the role ----------------------------------------------------


async def test_token_of_another_registered_application_answers_404_like_an_unknown_one(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        _, same_org_client = await builders.application(conn, world.organization_id)
        other_org = await builders.organization(conn, name="Other Org")
        _, other_org_client = await builders.application(conn, other_org)
    unknown = await client.get(
        "/00000000-0000-4000-8000-000000000000/services", headers=bearer(settings, world.client_id)
    )
    unknown_problem = assert_problem(unknown, 404, "application_not_found")

    for intruder in (same_org_client, other_org_client):
        for response in (
            await client.get(services_path(world), headers=bearer(settings, intruder)),
            await client.post(
                world.appointments_path(TODAY),
                json=world.body(570),
                headers=bearer(settings, intruder),
            ),
        ):
            assert assert_problem(response, 404, "application_not_found") == unknown_problem


async def test_unknown_application_id_answers_404_application_not_found(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get("/7c9e6679-7425-40de-944b-e07fc1f90ae7/services", headers=auth)

    assert_problem(response, 404, "application_not_found")


async def test_token_without_any_client_id_claim_answers_404(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, azp=None)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_problem(response, 404, "application_not_found")


async def test_disabled_application_answers_403_application_disabled(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        app_id, client_id = await builders.application(conn, world.organization_id, enabled=False)

    response = await client.get(f"/{app_id}/services", headers=bearer(settings, client_id))

    assert_problem(response, 403, "application_disabled")


async def test_token_without_the_manager_role_answers_403_role_missing(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    for roles in ([], ["Appointments Viewer"], ["appointments manager"]):
        headers = bearer(settings, world.client_id, roles)

        listing = await client.get(services_path(world), headers=headers)
        booking = await client.post(
            world.appointments_path(TODAY), json=world.body(570), headers=headers
        )

        assert_problem(listing, 403, "role_missing")
        assert_problem(booking, 403, "role_missing")


async def test_roles_claim_as_a_single_string_is_accepted(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, roles=MANAGER)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("claim", ["azp", "appid", "client_id"])
async def test_client_id_may_come_from_each_default_claim(
    client: httpx.AsyncClient, world: World, settings: Settings, claim: str
) -> None:
    overrides: dict[str, Any] = {"azp": None, "sub": "someone", claim: world.client_id}
    token = dev_token(settings, world.client_id, **overrides)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


async def test_first_configured_client_id_claim_present_decides(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    """`azp` comes first: another client's `azp` is not rescued by our `appid`."""
    async with engine.begin() as conn:
        _, other_client = await builders.application(conn, world.organization_id)
    token = dev_token(settings, other_client, appid=world.client_id)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_problem(response, 404, "application_not_found")


async def test_client_id_claims_are_configurable(
    make_client: MakeClient, world: World, settings: Settings
) -> None:
    custom = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=settings.data_dir,
        jwt_client_id_claims="cid, oid",  # as the env variable says it
    )
    assert custom.jwt_client_id_claims == ["cid", "oid"]

    async with make_client(custom) as client:
        by_azp = await client.get(
            services_path(world), headers=as_bearer(dev_token(custom, world.client_id))
        )
        by_cid = await client.get(
            services_path(world),
            headers=as_bearer(dev_token(custom, world.client_id, azp=None, cid=world.client_id)),
        )

    assert_problem(by_azp, 404, "application_not_found")
    assert by_cid.status_code == 200, by_cid.text


async def test_roles_claim_name_is_configurable(
    make_client: MakeClient, world: World, settings: Settings
) -> None:
    custom = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=settings.data_dir,
        jwt_roles_claim="app_roles",
    )

    async with make_client(custom) as client:
        by_roles = await client.get(
            services_path(world), headers=as_bearer(dev_token(custom, world.client_id))
        )
        by_app_roles = await client.get(
            services_path(world),
            headers=as_bearer(dev_token(custom, world.client_id, roles=None, app_roles=[MANAGER])),
        )

    assert_problem(by_roles, 403, "role_missing")
    assert by_app_roles.status_code == 200, by_app_roles.text


# --- production mode: RS256/ES256 through a JWKS -----------------------------------------------


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


# --- production mode: the JWKS cache, driven by a fake monotonic clock -------------------------


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


# --- production mode: settings and the PEM public key ------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"jwt_mode": "production"},
        {"jwt_mode": "production", "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE},
        {"jwt_mode": "production", "jwt_jwks_url": "https://issuer.test/keys"},
        {
            "jwt_mode": "production",
            "jwt_jwks_url": "https://issuer.test/keys",
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            "jwt_algorithms": "RS256,HS256",
        },
        {
            "jwt_mode": "production",
            "jwt_jwks_url": "https://issuer.test/keys",
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            "jwt_algorithms": "none",
        },
        {"jwt_mode": "dev", "jwt_algorithms": "HS256,none"},
    ],
)
def test_settings_refuse_unsafe_jwt_configurations(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("JWT_JWKS_URL", "JWT_PUBLIC_KEY", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALGORITHMS"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, **values)


def test_production_settings_default_to_asymmetric_algorithms(
    jwks_settings: Settings,
) -> None:
    assert jwks_settings.jwt_mode is JwtMode.PRODUCTION
    assert jwks_settings.algorithms == ["RS256", "ES256"]


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


# --- no personal data in the logs --------------------------------------------------------------


async def test_booking_logs_neither_phone_number_nor_email(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="booking")

    bookings = [
        (570, "+1 202-555-0143", "ada@example.com"),
        (600, "(202) 555-0143", "Ada@Example.COM"),
    ]
    for start, phone, email in bookings:
        response = await client.post(
            world.appointments_path(TODAY),
            json=world.body(start, contactPhoneNumber=phone, contactEmail=email),
            headers=auth,
        )
        assert response.status_code == 201, response.text
    refused = await client.post(  # an error path, too: the slot is taken
        world.appointments_path(TODAY),
        json=world.body(570, contactPhoneNumber="+1 202-555-0143", contactEmail="ada@example.com"),
        headers=auth,
    )
    assert refused.status_code >= 400

    access = [r for r in caplog.records if r.name == "booking.access"]
    assert len(access) == 3, [r.__dict__ for r in caplog.records]
    forbidden = ("+12025550143", "2025550143", "555-0143", "5550143", "ada@example.com")
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), *(str(value) for value in record.__dict__.values())]
        ).lower()
        for secret in forbidden:
            assert secret.lower() not in text, (secret, record.__dict__)


# --- the verified-token cache -----------------------------------------------------------------


async def test_a_token_is_verified_once_then_served_from_the_cache(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from booking.api import auth as auth_module

    decoded = []
    real_decode = auth_module.jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(auth_module.jwt, "decode", counting_decode)
    verifier = TokenVerifier(settings)
    token = mint_dev_token(settings, world.client_id, [MANAGER])
    for _ in range(5):
        await verifier.claims(token)
    assert len(decoded) == 1


async def test_a_cached_token_is_refused_once_it_expires(settings: Settings, world: World) -> None:
    strict = settings.model_copy(update={"jwt_leeway_s": 0})
    verifier = TokenVerifier(strict)
    token = mint_dev_token(strict, world.client_id, [MANAGER], ttl_s=1)
    await verifier.claims(token)
    await asyncio.sleep(2.1)  # whole seconds: exp < now needs a full second past it
    with pytest.raises(Unauthenticated) as refused:
        await verifier.claims(token)
    assert refused.value.code == "token_expired"


async def test_a_database_error_quoting_the_row_logs_neither_phone_nor_email(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL quotes the failing row in constraint errors (DETAIL: Failing row contains
    ...): the log says which error, never the row."""
    from tests.kit import inject_fault

    async def insert_incomplete_row(conn: Any, sql: str, args: tuple[Any, ...]) -> int:
        await conn.execute(  # organization_id NOT NULL: the error's DETAIL lists every value
            "INSERT INTO appointment (id, contact_phone, contact_email) VALUES ($1, $2, $3)",
            args[0],
            "+12025550143",
            "ada@example.com",
        )
        return 1

    caplog.set_level(logging.DEBUG)
    async with inject_fault(app, "INSERT INTO appointment", insert_incomplete_row):
        response = await client.post(
            world.appointments_path(TODAY),
            json=world.body(
                570, contactPhoneNumber="+1 202-555-0143", contactEmail="ada@example.com"
            ),
            headers=auth,
        )
    assert response.status_code == 500
    assert "0143" not in response.text
    assert "ada@" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failure is logged"
    assert any("NotNullViolation" in r.getMessage() for r in errors)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert "5550143" not in text, text
        assert "ada@example.com" not in text, text
