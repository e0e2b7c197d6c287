"""Shared by the authentication tests: tokens built by hand or by python-jose, the claims
they carry, and the checks of a 401/403/404 problem."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from jose import jwt

from booking.api.app import create_app
from booking.settings import Settings
from tests.builders import MANAGER, World
from tests.conftest import TEST_SECRET, FakeClock

ISSUER = "https://issuer.test/"
AUDIENCE = "api://booking"

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


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


def client_factory(database_url: str, clock: FakeClock) -> MakeClient:
    """An app with the given settings, started by its lifespan, and a client talking to it."""

    @asynccontextmanager
    async def make(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, database_url, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return make
