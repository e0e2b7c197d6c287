"""Bearer JWT verification and the application/role dependency every route uses.

Dev mode: HS256 with a local secret (the CLI mints tokens). Production mode: RS256/ES256 keys
from a JWKS URL or a PEM public key. The JWKS is cached for JWKS_CACHE_TTL_S (so a key withdrawn
from it stops verifying) and refetched when a token names an unknown `kid`: the first such
refetch at once (a key rotated in is picked up on first sight), later ones at most once every
30 s, so tokens with random kids cannot hammer the provider. `iss`, `aud` and `exp` are required
and checked, `nbf` checked when present, and only the configured algorithms are accepted, so
`alg: none` and HS256-against-RS256 key confusion are refused.

python-jose quirks handled here: it skips the audience check when a token has no `aud` (so
`require_aud`), and lets JWKError (an alg that does not fit the key's type) and TypeError (a
claim of the wrong JSON type) escape `jwt.decode`; every one of them is a 401, never a 500.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from jose import JWTError, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from booking.service.catalog import ApplicationConfig, ConfigCache
from booking.service.errors import Forbidden, NotFound, Unauthenticated
from booking.settings import JwtMode, Settings

JWKS_MIN_REFRESH_INTERVAL_S = 30.0
VERIFIED_TOKEN_TTL_S = 60.0  # how long a withdrawn signing key can still be honoured, at most
VERIFIED_TOKEN_CACHE_SIZE = 4096
_ALG_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


def _shown(value: object) -> str:
    """An attacker-chosen header value, safe to echo in a WWW-Authenticate header (ASCII, short)."""
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TokenVerifier:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.algorithms = settings.algorithms
        self._http = http
        self._monotonic = monotonic
        self._jwks: dict[str, dict[str, Any]] = {}
        self._jwks_fetched_at = float("-inf")
        self._last_forced_refresh = float("-inf")
        self._jwks_lock = asyncio.Lock()
        # token -> (claims, monotonic deadline): partners reuse a token for its whole lifetime,
        # so each process verifies it once, then trusts it for at most VERIFIED_TOKEN_TTL_S.
        self._verified: dict[str, tuple[dict[str, Any], float, float]] = {}

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims, or Unauthenticated saying why not."""
        hit = self._verified.get(token)
        if hit is not None:
            claims, deadline, expires_at = hit
            if self._monotonic() < deadline and time.time() < expires_at:
                return claims
            del self._verified[token]
        claims = await self._verify(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._verified) >= VERIFIED_TOKEN_CACHE_SIZE:
                self._verified.pop(next(iter(self._verified)))  # the oldest entry
            deadline = self._monotonic() + VERIFIED_TOKEN_TTL_S
            if self.settings.jwt_jwks_url:  # never outlive the keys it was verified with
                deadline = min(deadline, self._jwks_fetched_at + self.settings.jwks_cache_ttl_s)
            self._verified[token] = (claims, deadline, exp + self.settings.jwt_leeway_s)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise Unauthenticated(
                "The token is not a well-formed JWT.", code="token_invalid"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated(
                f"Token algorithm {_shown(alg)} is not accepted.", code="token_invalid"
            )
        key = await self._key_for(header, alg)
        options = {
            "leeway": self.settings.jwt_leeway_s,
            "require_exp": True,
            "require_aud": True,  # python-jose skips the audience check if `aud` is absent
            "require_iss": True,
            "verify_at_hash": False,
        }
        try:
            return dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=self.algorithms,
                    audience=self.settings.audience,
                    issuer=self.settings.issuer,
                    options=options,
                )
            )
        except ExpiredSignatureError:
            raise Unauthenticated("The token has expired.", code="token_expired") from None
        except JWTClaimsError as error:
            raise Unauthenticated(f"Token claims rejected: {error}", code="token_invalid") from None
        except JWTError as error:
            raise Unauthenticated(f"Token rejected: {error}", code="token_invalid") from None
        except (JOSEError, TypeError, ValueError):
            # python-jose lets JWKError (alg vs key type) and TypeError (`"exp": [1]`) escape.
            raise Unauthenticated("Token rejected.", code="token_invalid") from None

    async def _key_for(self, header: dict[str, Any], alg: str) -> Any:
        s = self.settings
        if s.jwt_mode is JwtMode.DEV:
            return s.dev_secret
        if s.jwt_public_key:
            return s.jwt_public_key
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("The token has no key id (kid).", code="token_invalid")
        fetched = False
        if self._monotonic() - self._jwks_fetched_at >= s.jwks_cache_ttl_s:
            fetched = await self._refresh_jwks(forced=False)
        key = self._jwks.get(kid)
        if key is None and not fetched:
            await self._refresh_jwks(forced=True)  # perhaps a key rotated in since
            key = self._jwks.get(kid)
        if key is None:
            raise Unauthenticated("The token's signing key is unknown.", code="token_invalid")
        declared = key.get("alg")
        if (declared is not None and declared != alg) or key.get("kty") != _ALG_KEY_TYPES.get(
            alg[:2]
        ):
            raise Unauthenticated(
                "The token's algorithm does not fit its signing key.", code="token_invalid"
            )
        return key

    async def _refresh_jwks(self, *, forced: bool) -> bool:
        """Fetch the JWKS unless someone else just did; True when this call fetched it.
        `forced` (an unknown kid): the first time at once, then at most once every 30 s.
        Otherwise (the cache TTL ran out): unless another task refreshed it meanwhile."""
        async with self._jwks_lock:
            now = self._monotonic()
            if forced:
                if now - self._last_forced_refresh < JWKS_MIN_REFRESH_INTERVAL_S:
                    return False
                self._last_forced_refresh = now
            elif now - self._jwks_fetched_at < self.settings.jwks_cache_ttl_s:
                return False
            # Even a failed fetch counts: a provider outage must not cost a request per token.
            self._jwks_fetched_at = now
            assert self.settings.jwt_jwks_url is not None
            try:
                client = self._http or httpx.AsyncClient(timeout=5.0)
                try:
                    response = await client.get(self.settings.jwt_jwks_url)
                    response.raise_for_status()
                    document = response.json()
                finally:
                    if self._http is None:
                        await client.aclose()
            except (httpx.HTTPError, ValueError):
                return True  # keep the keys we have; the token fails as 'unknown key'
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                return True
            self._jwks = {
                k["kid"]: k
                for k in keys
                if isinstance(k, dict)
                and isinstance(k.get("kid"), str)
                and isinstance(k.get("kty"), str)
                and k.get("use", "sig") == "sig"
            }
            return True


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("An Authorization: Bearer token is required.", code="token_missing")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>'.", code="token_invalid"
        )
    return token.strip()


def client_id_of(settings: Settings, claims: dict[str, Any]) -> str | None:
    for name in settings.jwt_client_id_claims:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def roles_of(settings: Settings, claims: dict[str, Any]) -> set[str]:
    roles = claims.get(settings.jwt_roles_claim, [])
    if isinstance(roles, str):
        return {roles}
    return {r for r in roles if isinstance(r, str)} if isinstance(roles, list) else set()


async def authorize(
    verifier: TokenVerifier,
    cache: ConfigCache,
    authorization: str | None,
    application_id: uuid.UUID,
    role: str,
) -> ApplicationConfig:
    """401 bad token; 404 unknown application or one the token's client is not; 403 disabled
    application or missing role."""
    claims = await verifier.claims(bearer_token(authorization))
    application = await cache.application(application_id)
    if application is None or client_id_of(verifier.settings, claims) != application.client_id:
        raise NotFound("No such application.", code="application_not_found", field="applicationId")
    if not application.enabled:
        raise Forbidden("The application is disabled.", code="application_disabled")
    if role not in roles_of(verifier.settings, claims):
        raise Forbidden(f"The token lacks the '{role}' role.", code="role_missing")
    return application


def mint_dev_token(
    settings: Settings,
    client_id: str,
    roles: list[str],
    ttl_s: int = 3600,
) -> str:
    """A dev-mode HS256 token, as `booking-api token` prints it."""
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": client_id,
        "azp": client_id,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    return str(jwt.encode(claims, settings.dev_secret, algorithm="HS256"))
