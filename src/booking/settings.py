"""Every setting comes from an environment variable; the README lists them with their defaults."""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import URL, make_url

# The driver of every database URL the server uses (plain `postgresql://` URLs are accepted).
DATABASE_DRIVER = "postgresql+asyncpg"

# An HS256 key shorter than the hash (256 bits) weakens it (RFC 7518, section 3.2).
MIN_DEV_SECRET_BYTES = 32

# Settings that may instead be given as NAME_FILE, a file holding the value: compose and
# Kubernetes secrets arrive as files, which keeps them out of the environment.
FILE_SETTINGS = ("database_url", "database_password", "jwt_dev_secret", "jwt_public_key")

URL_ENCODING_HINT = (
    "characters such as @ : / # ? in the user name or password must be percent-encoded "
    "(@ is %40, : is %3A, / is %2F, # is %23, ? is %3F), or leave DATABASE_URL unset and give "
    "DATABASE_HOST, DATABASE_USER, DATABASE_PASSWORD (or DATABASE_PASSWORD_FILE) and "
    "DATABASE_NAME, which need no encoding"
)


class DatabasePooler(StrEnum):
    NONE = "none"
    TRANSACTION = "transaction"


class CalendarDayLock(StrEnum):
    ADVISORY = "advisory"
    ROW = "row"


class JwtMode(StrEnum):
    DEV = "dev"  # HS256 with a local secret; the CLI mints tokens
    PRODUCTION = "production"  # keys from a JWKS URL or a PEM public key


class SettingsError(ValueError):
    """A setting that cannot be read at all: a NAME_FILE that cannot be opened, or a value given
    both directly and as a file."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_database_url(raw: str) -> None:
    """Refuse a DATABASE_URL that parsers would read differently from what was meant (an
    unencoded character of the password moves the host into the path or the fragment), naming
    the part at fault but never its value: it may hold the password."""
    parts = urlsplit(raw)
    if "://" not in raw:
        raise ValueError("it is not a URL like postgresql://user:password@host:5432/database")
    if parts.scheme not in ("postgres", "postgresql") and not parts.scheme.startswith(
        "postgresql+"
    ):
        raise ValueError("the scheme (before '://') must be postgresql:// or postgresql+asyncpg://")
    if parts.fragment or raw.endswith("#"):
        raise ValueError(f"it contains '#', which ends a URL early: {URL_ENCODING_HINT}")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if "@" in userinfo:
        raise ValueError(f"the user name or password contains '@': {URL_ENCODING_HINT}")
    if "," not in hostport:  # several hosts ("h1:5432,h2:5432") are libpq's failover list
        try:
            parts.port  # noqa: B018 (parsing it is the check)
        except ValueError:
            raise ValueError(
                f"the port (after the host and ':') is not a number from 1 to 65535: "
                f"{URL_ENCODING_HINT}"
            ) from None
    if any(c in parts.path[1:] for c in "/@"):
        raise ValueError(
            f"the database name (the path after the host) contains '/' or '@': {URL_ENCODING_HINT}"
        )


class _ValuesFromFiles(PydanticBaseSettingsSource):
    """NAME_FILE for each of FILE_SETTINGS: the file's content, less its final line break."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every file setting at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FILE_SETTINGS:
            variable = f"{name.upper()}_FILE"
            path = os.environ.get(variable)
            if not path:
                continue
            if os.environ.get(name.upper()):
                raise SettingsError(f"{name.upper()} and {variable} are both set: keep one")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                readable = " (it must be readable by the server's user)"
                hint = readable if isinstance(error, PermissionError) else ""
                raise SettingsError(
                    f"{variable}: cannot read {path}: {error.strerror}{hint}"
                ) from None
        return values


def _database_part(name: str, libpq_variable: str) -> Any:
    """DATABASE_<NAME>, else libpq's own variable for it (PGHOST, PGUSER, ...)."""
    return AliasChoices(f"database_{name}", libpq_variable)


def parse_limits(text: str) -> list[RateLimitItem]:
    """`100/second; 2000/hour` in the `limits` notation; empty means no limit."""
    return parse_many(text) if text.strip() else []


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A NAME_FILE beats libpq's PGPASSWORD (NAME and NAME_FILE together are refused).
        files = _ValuesFromFiles(settings_cls)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings

    # Database: DATABASE_URL; else, when DATABASE_HOST (or PGHOST) is set, a URL made of the
    # parts below, which need no percent-encoding; else the embedded PostgreSQL under DATA_DIR.
    # `database_dsn` is the one URL the server connects to.
    database_url: str | None = None
    database_host: str | None = Field(
        default=None, validation_alias=_database_part("host", "pghost")
    )
    database_port: int = Field(
        default=5432, ge=1, le=65535, validation_alias=_database_part("port", "pgport")
    )
    database_user: str | None = Field(
        default=None, validation_alias=_database_part("user", "pguser")
    )
    # Also fills in a DATABASE_URL written without a password.
    database_password: SecretStr | None = Field(
        default=None, validation_alias=_database_part("password", "pgpassword")
    )
    database_name: str | None = Field(
        default=None, validation_alias=_database_part("name", "pgdatabase")
    )
    # How long start-up waits for a database that refuses connections or does not answer yet.
    database_wait_s: float = Field(default=60.0, ge=0)
    # Overflow connections are closed when returned, and a new asyncpg connection costs several
    # round trips (codecs, prepared statements): a fixed pool that requests queue for is faster.
    # Small on purpose: one event loop cannot keep more transactions busy, and more of them in
    # flight only lengthen each one (the bench: 10 gave a lower p99 and more req/s than 20).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    database_pool_timeout_s: float = Field(default=5.0, gt=0)
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    database_statement_timeout_ms: int = Field(default=5000, ge=0)
    # `transaction`: DATABASE_URL is a transaction-mode pooler (PgBouncer as packaged): no
    # prepared statements kept past a transaction, no startup parameter a pooler refuses.
    database_pooler: DatabasePooler = DatabasePooler.NONE
    # How writers of one calendar-day are serialized: an advisory lock, or the row lock of its
    # stamp (a lock that lives with the data, for a sharded database; see docs/scaling.md).
    calendar_day_lock: CalendarDayLock = CalendarDayLock.ADVISORY
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
    # Slow or greedy clients (`booking-api serve`'s HTTP protocol, and the middleware for bodies).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    # On SIGTERM: stop accepting, let requests in flight finish for this long, then exit 0.
    shutdown_grace_s: int = Field(default=20, ge=1)
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

    # Browsers calling from other origins (CORS): the origins allowed (`https://shop.example`;
    # `*` for any), none by default (no CORS answers). Credentials (cookies) only when asked for:
    # a Bearer token needs none.
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    # `booking-api serve` serves the reference booking page at /demo/ and a dev-token endpoint
    # for it (dev mode only: `make run` turns it on).
    demo_page: bool = False

    # Operations. /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset: no /metrics.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    # OpenTelemetry spans of requests and statements (needs the `tracing` extra installed).
    tracing_enabled: bool = False

    # Outbound webhooks (the organizations' service hooks, delivered from the outbox).
    # Whether this process delivers (every process may: they share the work).
    webhook_delivery: bool = True
    webhook_timeout_s: float = Field(default=10.0, gt=0)  # per attempt, connect to last byte
    webhook_concurrency: int = Field(default=16, ge=1)  # attempts in flight per process
    # A safety net: NOTIFY wakes the deliverers at once; this catches what a lost one missed.
    webhook_poll_interval_s: float = Field(default=5.0, gt=0)
    # A claimed event is another process's again once this has passed (its deliverer died).
    webhook_lease_s: float = Field(default=60.0, gt=0)
    # The waits after the 1st, 2nd, ... failed attempt, each with 10 % jitter (Standard
    # Webhooks' schedule); after the last one fails, the event is failed.
    webhook_retry_delays_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [
            5.0,
            300.0,
            1800.0,
            7200.0,
            18000.0,
            36000.0,
            50400.0,
            72000.0,
            86400.0,
        ],
        min_length=1,
    )
    # A receiver's answer is read up to this much (a before-hook's longer answer is an error).
    webhook_max_response_bytes: int = Field(default=16 * 1024, ge=0)
    # Networks that receivers may be in although they are loopback, private, link-local or
    # reserved (refused by default), e.g. `127.0.0.1/32` for local development.
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("database_url")
    @classmethod
    def _well_formed_database_url(cls, value: str | None) -> str | None:
        if value:
            check_database_url(value)
        return value

    @field_validator(
        "jwt_algorithms",
        "jwt_client_id_claims",
        "forwarded_allow_ips",
        "allowed_hosts",
        "cors_allowed_origins",
        "webhook_retry_delays_s",
        "webhook_allowed_networks",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network like 127.0.0.1/32") from None
        return value

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
        if (
            self.database_host
            and not self.database_url
            and self.database_password
            and not self.database_user
        ):
            raise ValueError("DATABASE_PASSWORD needs DATABASE_USER (or PGUSER) too")
        if self.cors_allow_credentials and "*" in self.cors_allowed_origins:
            raise ValueError(
                "CORS_ALLOW_CREDENTIALS needs the origins named: CORS_ALLOWED_ORIGINS=* would let "
                "any site send its visitors' credentials"
            )
        if self.demo_page and self.jwt_mode is not JwtMode.DEV:
            raise ValueError("DEMO_PAGE mints tokens for any visitor: dev mode (JWT_MODE=dev) only")
        if self.jwt_mode is JwtMode.DEV and self.jwt_dev_secret:
            _check_dev_secret(self.jwt_dev_secret, "JWT_DEV_SECRET")
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("WEBHOOK_LEASE_S must be longer than WEBHOOK_TIMEOUT_S")
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

    @cached_property
    def database_dsn(self) -> str | None:
        """The URL of the configured database (`postgresql+asyncpg://`, password included), or
        None: no database is configured, start the embedded one."""
        password = self.database_password.get_secret_value() if self.database_password else None
        if self.database_url:
            url = make_url(self.database_url).set(drivername=DATABASE_DRIVER)
            if url.password is None and password is not None:
                url = url.set(password=password)
        elif self.database_host:
            # A host starting with '/' is a Unix socket directory, as for libpq: both drivers
            # read it, and then its port, from the query only.
            socket_dir = self.database_host.startswith("/")
            socket = {"host": self.database_host, "port": str(self.database_port)}
            url = URL.create(
                DATABASE_DRIVER,
                username=self.database_user,
                password=password,
                host=None if socket_dir else self.database_host,
                port=None if socket_dir else self.database_port,
                database=self.database_name,
                query=socket if socket_dir else {},
            )
        else:
            return None
        return url.render_as_string(hide_password=False)

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
        secret = path.read_text().strip()
        _check_dev_secret(secret, str(path))
        return secret


def _check_dev_secret(secret: str, source: str) -> None:
    size = len(secret.encode())
    if size < MIN_DEV_SECRET_BYTES:
        raise SettingsError(
            f"{source} must be at least {MIN_DEV_SECRET_BYTES} bytes (it has {size}): make one "
            "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
