"""Where the database and the secrets come from: a URL, its parts, libpq's PG* variables, or
files named by *_FILE variables; a malformed URL is refused at once, naming the part at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from booking.cli import configuration_errors
from booking.settings import FILE_SETTINGS, JwtMode, Settings, SettingsError

# What broke the compose stack: compose pasted this password raw into DATABASE_URL.
NASTY_PASSWORD = "p@ss/w:rd#1"
LONG_SECRET = "a-dev-secret-of-forty-bytes-0123456789ab"

VARIABLES = [
    "DATABASE_URL",
    *(f"DATABASE_{part}" for part in ("HOST", "PORT", "USER", "PASSWORD", "NAME")),
    *("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"),
    *(f"{name.upper()}_FILE" for name in FILE_SETTINGS),
    "JWT_DEV_SECRET",
    "JWT_MODE",
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment, without any database or secret setting of the machine running the tests."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_database_parts_make_a_url_whose_password_needs_no_encoding(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("DATABASE_HOST", "db")
    env.setenv("DATABASE_USER", "booking")
    env.setenv("DATABASE_PASSWORD", NASTY_PASSWORD)
    env.setenv("DATABASE_NAME", "booking")
    dsn = Settings().database_dsn
    assert dsn is not None
    url = make_url(dsn)
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "postgresql+asyncpg",
        "db",
        5432,
        "booking",
        "booking",
    )
    assert url.password == NASTY_PASSWORD


def test_libpq_variables_configure_the_database_too(env: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PGHOST": "pg.internal",
        "PGPORT": "6543",
        "PGUSER": "app",
        "PGPASSWORD": NASTY_PASSWORD,
        "PGDATABASE": "bookings",
    }.items():
        env.setenv(name, value)
    url = make_url(Settings().database_dsn or "")
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "pg.internal",
        6543,
        "app",
        NASTY_PASSWORD,
        "bookings",
    )


def test_database_variables_win_over_the_libpq_ones(env: pytest.MonkeyPatch) -> None:
    env.setenv("PGHOST", "from-libpq")
    env.setenv("DATABASE_HOST", "from-database-host")
    assert make_url(Settings().database_dsn or "").host == "from-database-host"


def test_a_socket_directory_as_host_is_passed_as_the_host_parameter(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("DATABASE_HOST", "/var/run/postgresql")
    url = make_url(Settings().database_dsn or "")
    assert (url.host, url.port) == (None, None)
    assert dict(url.query) == {"host": "/var/run/postgresql", "port": "5432"}


def test_without_url_or_host_the_embedded_database_is_used(env: pytest.MonkeyPatch) -> None:
    env.setenv("PGUSER", "someone")  # a user alone names no server
    assert Settings().database_dsn is None


def test_database_url_wins_and_any_postgres_scheme_gets_the_asyncpg_driver(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("DATABASE_HOST", "ignored")
    for scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        env.setenv("DATABASE_URL", f"{scheme}://u:pw@h:5433/d?sslmode=require")
        assert Settings().database_dsn == "postgresql+asyncpg://u:pw@h:5433/d?sslmode=require"


def test_database_password_fills_in_a_url_written_without_one(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", "postgresql://booking@db/booking")
    env.setenv("DATABASE_PASSWORD", NASTY_PASSWORD)
    assert make_url(Settings().database_dsn or "").password == NASTY_PASSWORD
    env.setenv("DATABASE_URL", "postgresql://booking:in-the-url@db/booking")
    assert make_url(Settings().database_dsn or "").password == "in-the-url"


@pytest.mark.parametrize(
    ("url", "part"),
    [
        # The compose file's URL with the password pasted raw: the '#' ends the URL early.
        (f"postgresql+asyncpg://booking:{NASTY_PASSWORD}@db:5432/booking", "contains '#'"),
        ("postgresql://booking:p@ss/w:rd@db:5432/booking", "the database name"),
        ("postgresql://booking:p@ss@db:5432/booking", "the user name or password contains '@'"),
        ("postgresql://booking:p?ss@db/booking", "the port"),
        ("postgresql://booking@db:99999/booking", "the port"),
        ("mysql://booking:pw@db/booking", "the scheme"),
        ("db:5432/booking", "not a URL"),
    ],
)
def test_a_malformed_database_url_is_refused_naming_the_part_but_not_the_value(
    env: pytest.MonkeyPatch, url: str, part: str
) -> None:
    env.setenv("DATABASE_URL", url)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [line] = configuration_errors(caught.value)
    assert line.startswith("DATABASE_URL: ")
    assert part in line
    assert "percent-encoded" in line or part in ("the scheme", "not a URL")
    for secret_piece in ("p@ss", "w:rd", "p?ss", "pw@"):
        assert secret_piece not in line


def test_an_invalid_part_is_named_as_its_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_HOST", "db")
    env.setenv("PGPORT", "not-a-port")
    with pytest.raises(ValidationError) as caught:
        Settings()
    [line] = configuration_errors(caught.value)
    assert line.startswith("DATABASE_PORT: ")
    assert "not-a-port" not in line


def test_secrets_can_be_read_from_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password_file = tmp_path / "postgres_password"
    password_file.write_text(NASTY_PASSWORD + "\n")  # as `echo` writes it
    secret_file = tmp_path / "jwt_dev_secret"
    secret_file.write_text(LONG_SECRET + "\r\n")
    env.setenv("DATABASE_HOST", "db")
    env.setenv("DATABASE_USER", "booking")
    env.setenv("DATABASE_PASSWORD_FILE", str(password_file))
    env.setenv("JWT_DEV_SECRET_FILE", str(secret_file))
    env.setenv("PGPASSWORD", "the-file-wins-over-libpq")
    settings = Settings()
    assert make_url(settings.database_dsn or "").password == NASTY_PASSWORD
    assert settings.dev_secret == LONG_SECRET


def test_the_database_url_can_be_read_from_a_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://u:secret@db/booking\n")
    env.setenv("DATABASE_URL_FILE", str(url_file))
    assert Settings().database_dsn == "postgresql+asyncpg://u:secret@db/booking"


def test_a_password_without_a_user_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_HOST", "db")
    env.setenv("DATABASE_PASSWORD", NASTY_PASSWORD)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert configuration_errors(caught.value) == [
        "DATABASE_PASSWORD needs DATABASE_USER (or PGUSER) too"
    ]


def test_a_value_given_both_directly_and_as_a_file_is_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(LONG_SECRET)
    env.setenv("JWT_DEV_SECRET", LONG_SECRET)
    env.setenv("JWT_DEV_SECRET_FILE", str(secret_file))
    with pytest.raises(SettingsError, match="JWT_DEV_SECRET and JWT_DEV_SECRET_FILE"):
        Settings()


def test_a_missing_secret_file_is_named_with_its_variable(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    env.setenv("DATABASE_PASSWORD_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"DATABASE_PASSWORD_FILE: cannot read {missing}"):
        Settings()


@pytest.mark.parametrize("secret", ["x" * 31, "é" * 15 + "x"])  # 31 bytes each, in UTF-8
def test_a_dev_secret_under_32_bytes_is_refused(env: pytest.MonkeyPatch, secret: str) -> None:
    env.setenv("JWT_DEV_SECRET", secret)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [line] = configuration_errors(caught.value)
    assert "JWT_DEV_SECRET must be at least 32 bytes (it has 31)" in line
    assert secret not in line


def test_a_dev_secret_of_32_bytes_is_accepted_and_production_ignores_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings(jwt_dev_secret="é" * 16).dev_secret == "é" * 16  # 32 bytes in UTF-8
    production = Settings(
        jwt_mode=JwtMode.PRODUCTION,
        jwt_dev_secret="short",
        jwt_public_key="-----BEGIN PUBLIC KEY-----",
        jwt_issuer="https://issuer",
        jwt_audience="api",
        data_dir=tmp_path,
    )
    assert production.jwt_mode is JwtMode.PRODUCTION


def test_a_generated_dev_secret_is_long_and_a_shortened_one_is_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    generated = Settings(data_dir=tmp_path).dev_secret
    assert len(generated.encode()) >= 32
    (tmp_path / "dev-jwt-secret").write_text("edited-by-hand")
    with pytest.raises(SettingsError, match="dev-jwt-secret must be at least 32 bytes"):
        _ = Settings(data_dir=tmp_path).dev_secret
