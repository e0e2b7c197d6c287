"""Every setting comes from an environment variable; the README lists them with their defaults."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class JwtMode(StrEnum):
    DEV = "dev"  # HS256 with a local secret; the CLI mints tokens
    PRODUCTION = "production"  # keys from a JWKS URL or a PEM public key


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


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
    # Empty: the roles granted in the configuration alone decide (tokens without a roles claim).
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
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    # SIGTERM: stop accepting, let in-flight requests finish for at most this long, then exit.
    shutdown_grace_s: int = Field(default=30, ge=1)
    # Adds POST /bench/bare (parses a booking body, answers JSON, no database): `make bench` only.
    enable_bench_routes: bool = False

    # Operations. /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset: no /metrics.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    # OpenTelemetry spans of requests and statements (needs the `tracing` extra installed).
    tracing_enabled: bool = False

    @field_validator("jwt_algorithms", "jwt_client_id_claims", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

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
