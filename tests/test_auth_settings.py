"""The JWT settings refuse unsafe configurations at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from booking.settings import JwtMode, Settings
from tests.jwt_kit import (
    AUDIENCE,
    ISSUER,
    production_settings,
)


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


def test_production_settings_default_to_asymmetric_algorithms(tmp_path: Path) -> None:
    settings = production_settings(tmp_path, jwt_jwks_url="https://issuer.test/keys")

    assert settings.jwt_mode is JwtMode.PRODUCTION
    assert settings.algorithms == ["RS256", "ES256"]
