"""Every setting comes from an environment variable; the README lists them with their defaults."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

from limits import RateLimitItem, parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class JwtMode(StrEnum):
    DEV = "dev"  # HS256 with a local secret; the CLI mints tokens
    PRODUCTION = "production"  # keys from a JWKS URL or a PEM public key


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_limits(text: str) -> list[RateLimitItem]:
    """`100/second; 2000/hour` in the `limits` notation; empty means no limit."""
    return parse_many(text) if text.strip() else []


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # Database. Unset DATABASE_URL means: start the embedded PostgreSQL under DATA_DIR.
    database_url: str | None = None
    # Overflow connections are closed when returned, and a new asyncpg connection costs several
    # round trips (codecs, prepared statements): a fixed pool that requests queue for is faster.
    # Small on purpose: one event loop cannot keep more transactions busy, and more of them in
    # flight only lengthen each one (the bench: 10 gave a lower p99 and more req/s than 20).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    database_pool_timeout_s: float = Field(default=5.0, gt=0)
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    database_statement_timeout_ms: int = Field(default=5000, ge=0)
    # The most of a process's database connections one application may hold at once.
    database_tenant_share: float = Field(default=0.5, gt=0, le=1)
    data_dir: Path = Path(".data")

    # Authentication.
    jwt_mode: JwtMode = JwtMode.DEV
    jwt_dev_secret: str | None = None  # dev mode; default: generated once under DATA_DIR
    jwt_jwks_url: str | None = None
    jwt_public_key: str | None = None  # PEM
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt_client_id_claims: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["azp", "appid", "client_id"]
    )
    jwt_roles_claim: str = "roles"
    jwt_leeway_s: int = Field(default=30, ge=0)
    jwks_cache_ttl_s: int = Field(default=3600, ge=1)

    # Caching of configuration rows (applications, services, calendars) in each process.
    config_cache_ttl_s: float = Field(default=5.0, ge=0)

    # HTTP.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Slow or greedy clients (`booking-api serve`'s HTTP protocol, and the middleware for bodies).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    # On SIGTERM: stop accepting, let requests in flight finish for this long, then close.
    shutdown_grace_s: int = Field(default=20, ge=0)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (none by default), and the
    # Host names served (any by default).
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Rate limits in the `limits` notation (`100/second`, `100/second;2000/hour`; empty: none),
    # counted in this process, or in the Redis of RATE_LIMIT_STORAGE_URL shared by all of them.
    rate_limit_application: str = "100/second"
    rate_limit_client_address: str = "20/second"
    rate_limit_storage_url: str | None = None
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    # Adds POST /bench/bare (parses a booking body, answers JSON, no database): `make bench` only.
    enable_bench_routes: bool = False

    @field_validator(
        "jwt_algorithms",
        "jwt_client_id_claims",
        "forwarded_allow_ips",
        "allowed_hosts",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("rate_limit_application", "rate_limit_client_address")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        try:
            parse_limits(value)
        except ValueError as error:
            raise ValueError(f"not a rate limit like '100/second': {error}") from None
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.removeprefix("async+").startswith(("redis://", "rediss://")):
            raise ValueError("RATE_LIMIT_STORAGE_URL must be a redis:// or rediss:// URL")
        return value or None

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> Self:
        if any(alg.lower() == "none" for alg in self.algorithms):
            raise ValueError("JWT_ALGORITHMS must never include 'none'")
        if self.jwt_mode is JwtMode.PRODUCTION:
            if not (self.jwt_jwks_url or self.jwt_public_key):
                raise ValueError("JWT_MODE=production needs JWT_JWKS_URL or JWT_PUBLIC_KEY")
            if not (self.jwt_issuer and self.jwt_audience):
                raise ValueError("JWT_MODE=production needs JWT_ISSUER and JWT_AUDIENCE")
            if any(
                alg.upper().startswith("HS") or alg.lower() == "none" for alg in self.algorithms
            ):
                raise ValueError("JWT_MODE=production accepts only asymmetric algorithms")
        return self

    @property
    def algorithms(self) -> list[str]:
        if self.jwt_algorithms:
            return self.jwt_algorithms
        return ["HS256"] if self.jwt_mode is JwtMode.DEV else ["RS256", "ES256"]

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or "booking-api-dev"

    @property
    def audience(self) -> str:
        return self.jwt_audience or "booking-api"

    @cached_property
    def dev_secret(self) -> str:
        """The HS256 secret of dev mode: JWT_DEV_SECRET, or one generated on first use and kept
        under DATA_DIR so tokens survive restarts. Never a constant in the code."""
        if self.jwt_dev_secret:
            return self.jwt_dev_secret
        path = self.data_dir / "dev-jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
