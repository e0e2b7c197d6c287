"""The verified-token cache: each token verified once per process, trusted until its `exp`
(for at most VERIFIED_TOKEN_TTL_S), keyed by its digest and bounded in entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from booking.api.auth import TokenVerifier, mint_dev_token
from booking.service.errors import Unauthenticated
from booking.settings import Settings
from tests.builders import MANAGER, World


async def test_a_token_is_verified_once_then_served_from_the_cache(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from booking.api import auth as auth_module

    decoded = []
    real_decode = auth_module.jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(auth_module.jwt, "decode", counting_decode)
    verifier = TokenVerifier(settings)
    token = mint_dev_token(settings, world.client_id, [MANAGER])
    for _ in range(5):
        await verifier.claims(token)
    assert len(decoded) == 1


async def test_a_cached_token_is_refused_once_it_expires(settings: Settings, world: World) -> None:
    strict = settings.model_copy(update={"jwt_leeway_s": 0})
    verifier = TokenVerifier(strict)
    token = mint_dev_token(strict, world.client_id, [MANAGER], ttl_s=1)
    await verifier.claims(token)
    await asyncio.sleep(2.1)  # whole seconds: exp < now needs a full second past it
    with pytest.raises(Unauthenticated) as refused:
        await verifier.claims(token)
    assert refused.value.code == "token_expired"
