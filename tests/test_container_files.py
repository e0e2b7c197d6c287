"""The container image and compose files, read as the engine reads them: no container engine runs
where the tests run, so scripts/container-smoke.sh is the real run and these pin what it found."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.auth import mint_dev_token
from booking.settings import Settings
from booking.store.loader import load_file
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def instruction(name: str) -> list[str]:
    """Every line of the Dockerfile's `name` instructions, continuation lines joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.startswith(name + " ")]


def test_compose_gives_the_database_as_parts_with_the_password_from_a_secret_file() -> None:
    services = compose()["services"]
    api = services["api"]["environment"]
    assert "DATABASE_URL" not in api
    assert api["DATABASE_HOST"] == "db"
    assert api["DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )
    for service in ("api", "db"):
        assert "postgres_password" in services[service]["secrets"]
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in api)
    assert "postgres_password" in compose()["secrets"]


def test_compose_and_image_default_to_production_without_the_demo() -> None:
    api = compose()["services"]["api"]
    assert api["environment"]["JWT_MODE"] == "${JWT_MODE:-production}"
    assert "--no-demo" in api["command"]
    assert 'CMD ["booking-api", "serve", "--no-demo"]' in DOCKERFILE
    assert any("JWT_MODE=production" in line for line in instruction("ENV"))


def test_the_demo_is_an_override_that_says_what_it_exposes() -> None:
    demo = compose("docker-compose.demo.yml")
    api = demo["services"]["api"]
    assert api["environment"]["JWT_MODE"] == "dev"
    assert api["environment"]["JWT_DEV_SECRET_FILE"] == "/run/secrets/jwt_dev_secret"
    assert "--no-demo" not in api["command"]
    assert "whoever reads the logs can use it" in (ROOT / "docker-compose.demo.yml").read_text()


def test_both_services_restart_and_their_logs_are_bounded() -> None:
    for name, service in compose()["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["options"]["max-size"], name
        assert int(service["logging"]["options"]["max-file"]) >= 1, name


def test_the_engine_waits_longer_than_the_servers_graceful_shutdown() -> None:
    api = compose()["services"]["api"]
    grace = float(api["environment"]["SHUTDOWN_GRACE_S"])
    assert seconds(api["stop_grace_period"]) >= grace + 5


def test_a_proxy_in_another_container_can_be_trusted() -> None:
    api = compose()["services"]["api"]["environment"]
    assert api["FORWARDED_ALLOW_IPS"] == "${FORWARDED_ALLOW_IPS:-127.0.0.1}"


def test_the_api_runs_read_only_without_capabilities_and_checks_its_liveness() -> None:
    api = compose()["services"]["api"]
    assert api["read_only"] is True
    assert api["cap_drop"] == ["ALL"]
    assert "/tmp" in api["tmpfs"]  # noqa: S108 (the container's DATA_DIR, a tmpfs)
    assert api["healthcheck"]["test"] == ["CMD", "booking-api", "health"]
    assert 'CMD ["booking-api", "health"]' in DOCKERFILE


def test_the_dockerfile_fetches_nothing_before_its_base_image() -> None:
    assert not DOCKERFILE.startswith("# syntax")
    assert not any(line.startswith("# syntax=") for line in DOCKERFILE.splitlines())


def test_the_build_backend_is_pinned_within_the_projects_range() -> None:
    [run] = [line for line in instruction("RUN") if "pip install" in line]
    assert "pip install -r build-requirements.txt" in run
    assert "--no-build-isolation -c constraints.txt ." in run
    pins = [
        line
        for line in (ROOT / "build-requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pins == [pins[0]]
    pinned = pins[0].removeprefix("setuptools==")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [requirement] = pyproject["build-system"]["requires"]
    minimum = requirement.removeprefix("setuptools>=")
    assert tuple(map(int, pinned.split("."))) >= tuple(map(int, minimum.split(".")))


def test_the_image_carries_oci_labels_and_the_packages_version() -> None:
    labels = " ".join(instruction("LABEL"))
    for key in ("source", "revision", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"ARG VERSION={pyproject['version']}" in DOCKERFILE
    assert f'org.opencontainers.image.licenses="{pyproject["license"]}"' in labels


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    [user] = instruction("USER")
    assert user == "USER 10001:10001"


def test_local_state_and_secrets_stay_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".venv", ".data", "bench/results", ".env", "secrets", ".mypy_cache"):
        assert entry in ignored


def test_the_smoke_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "container-smoke.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run([shellcheck, str(script)], check=True)


async def test_the_smoke_scripts_booking_step_books_in_the_demo_organization(
    live_servers: list[str], engine: AsyncEngine
) -> None:
    await load_file(engine, ROOT / "examples" / "demo.yaml")
    token = mint_dev_token(
        Settings(jwt_dev_secret=TEST_SECRET), "demo-partner", ["Appointments Manager"]
    )
    script = await asyncio.create_subprocess_exec(
        sys.executable,
        *("scripts/smoke_book.py", "--base-url", live_servers[0], "--token", token),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(script.communicate(), timeout=60)
    assert script.returncode == 0, err.decode()
    case_id = uuid.UUID(out.decode().strip())
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM appointment WHERE id = :id"), {"id": case_id}
        )
        assert found.scalar() == 1
