"""Bearer JWT verification and the application/role dependency every route uses.

Dev mode: HS256 with a local secret (the CLI mints tokens). Production mode: RS256/ES256 keys
from a JWKS URL or a PEM public key. The JWKS is cached for JWKS_CACHE_TTL_S (so a key withdrawn
from it stops verifying) and refetched when a token names an unknown `kid`: the first such
refetch at once (a key rotated in is picked up on first sight), later ones at most once every
30 s, so tokens with random kids cannot hammer the provider. `iss`, `aud` and `exp` are required
and checked, `nbf` checked when present, and only the configured algorithms are accepted, so
`alg: none` and HS256-against-RS256 key confusion are refused.

Only a compact JWS (three base64url parts, nothing else) of at most 8 KiB reaches the
cryptography: python-jose's base64 decoding skips characters outside the alphabet, so
`<token>%%%%` or `<token>====` would otherwise verify as the token itself.

python-jose quirks handled here: it skips the audience check when a token has no `aud` (so
`require_aud`), and lets JWKError (an alg that does not fit the key's type), TypeError (a
claim of the wrong JSON type) and OverflowError (`"exp": 1e400`) escape `jwt.decode`; every one
of them is a 401, never a 500. `exp`, `nbf` and `iat` must be JSON numbers within years
1970..9999, which jose does not check (a 400-digit `exp` passes it).

The role a route needs must be granted to the application in the configuration and, unless
JWT_ROLES_CLAIM is empty, carried by the token as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from jose import JWTError, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from booking.service.catalog import ApplicationConfig, ConfigCache
from booking.service.errors import Forbidden, NotFound, Unauthenticated
from booking.service.roles import Role
from booking.settings import JwtMode, Settings

JWKS_MIN_REFRESH_INTERVAL_S = 30.0
VERIFIED_TOKEN_TTL_S = 60.0  # how long a withdrawn signing key can still be honoured, at most
VERIFIED_TOKEN_CACHE_SIZE = 4096
MAX_TOKEN_CHARS = 8 * 1024
MAX_AUTHORIZATION_CHARS = MAX_TOKEN_CHARS + 64  # "Bearer", the spaces after it, the token
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_TIME_CLAIMS = ("exp", "nbf", "iat")
_LAST_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z
_ALG_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


def _not_compact_jws() -> Unauthenticated:
    return Unauthenticated(
        "The token is not a compact JWS (three base64url parts) of at most 8 KiB.",
        code="token_invalid",
    )


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
        cache_size: int = VERIFIED_TOKEN_CACHE_SIZE,
    ) -> None:
        self.settings = settings
        self.algorithms = settings.algorithms
        self._http = http
        self._monotonic = monotonic
        self._jwks: dict[str, dict[str, Any]] = {}
        self._jwks_fetched_at = float("-inf")
        self._last_forced_refresh = float("-inf")
        self._jwks_lock = asyncio.Lock()
        # Partners reuse a token for its whole lifetime, so each process verifies it once, then
        # trusts it until its `exp` (plus leeway), for at most VERIFIED_TOKEN_TTL_S. Keyed by
        # the token's SHA-256: a fixed 32 bytes per entry, and no other token can hit it.
        # sha256(token) -> (claims, monotonic deadline); `_deadlines` is a heap of
        # (deadline, digest) that drops each entry at its deadline and, when the cache is full,
        # the entry nearest to it.
        self._cache_size = cache_size
        self._verified: dict[bytes, tuple[dict[str, Any], float]] = {}
        self._deadlines: list[tuple[float, bytes]] = []

    @property
    def cached_tokens(self) -> int:
        return len(self._verified)

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims, or Unauthenticated saying why not. A cached token passed the
        shape check when it was verified, so a hit costs one digest and one lookup."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _not_compact_jws()
        digest = hashlib.sha256(token.encode()).digest()
        self._drop_expired(self._monotonic())
        hit = self._verified.get(digest)
        if hit is not None:
            return hit[0]
        if _COMPACT_JWS.fullmatch(token) is None:
            raise _not_compact_jws()
        claims = await self._verify(token)
        self._remember(digest, claims)
        return claims

    def _drop_expired(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            self._forget(*heapq.heappop(deadlines))

    def _forget(self, deadline: float, digest: bytes) -> None:
        """Drop the entry a heap item stands for, unless it was replaced since."""
        entry = self._verified.get(digest)
        if entry is not None and entry[1] == deadline:
            del self._verified[digest]

    def _remember(self, digest: bytes, claims: dict[str, Any]) -> None:
        now = self._monotonic()
        valid_for = claims["exp"] + self.settings.jwt_leeway_s - time.time()
        deadline = now + min(VERIFIED_TOKEN_TTL_S, valid_for)
        if self.settings.jwt_jwks_url:  # never outlive the keys it was verified with
            deadline = min(deadline, self._jwks_fetched_at + self.settings.jwks_cache_ttl_s)
        if deadline <= now:
            return
        while len(self._verified) >= self._cache_size:
            self._forget(*heapq.heappop(self._deadlines))
        self._verified[digest] = (claims, deadline)
        heapq.heappush(self._deadlines, (deadline, digest))

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
            claims = dict(
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
        except (JOSEError, TypeError, ValueError, OverflowError):
            # python-jose lets JWKError (alg vs key type), TypeError (`"exp": [1]`) and
            # OverflowError (`int(float("inf"))` of `"exp": 1e400`) escape.
            raise Unauthenticated("Token rejected.", code="token_invalid") from None
        for name in _TIME_CLAIMS:
            value = claims.get(name)
            if value is not None and not _is_numeric_date(value):
                raise Unauthenticated(
                    f"Token claim '{name}' is not a time in seconds within years 1970..9999.",
                    code="token_invalid",
                )
        return claims

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


def _is_numeric_date(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= _LAST_NUMERIC_DATE  # False for NaN
    )


def bearer_token(authorization: str | None) -> str:
    """The token of `Bearer <token>` (RFC 6750: the scheme in any case, then spaces). Its shape
    is checked by `TokenVerifier.claims`; a header too long to hold an 8 KiB token is refused
    before it is split."""
    if not authorization:
        raise Unauthenticated("An Authorization: Bearer token is required.", code="token_missing")
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise Unauthenticated("The token is longer than 8 KiB.", code="token_invalid")
    scheme, _, token = authorization.partition(" ")
    token = token.lstrip(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>'.", code="token_invalid"
        )
    return token


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
    role: Role,
) -> ApplicationConfig:
    """401 bad token; 404 unknown application or one the token's client is not; 403 disabled
    application, or the role not granted to the application in the configuration, or (unless
    JWT_ROLES_CLAIM is empty) not carried by the token."""
    claims = await verifier.claims(bearer_token(authorization))
    application = await cache.application(application_id)
    if application is None or client_id_of(verifier.settings, claims) != application.client_id:
        raise NotFound("No such application.", code="application_not_found", field="applicationId")
    if not application.enabled:
        raise Forbidden("The application is disabled.", code="application_disabled")
    if role not in application.roles:
        raise Forbidden(f"The application is not granted the '{role}' role.", code="role_missing")
    if verifier.settings.jwt_roles_claim and role not in roles_of(verifier.settings, claims):
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
