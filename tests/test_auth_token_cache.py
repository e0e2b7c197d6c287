"""The verified-token cache: each token verified once per process, trusted until its `exp`
(for at most VERIFIED_TOKEN_TTL_S), keyed by its digest and bounded in entries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from jose import jwt

from booking.api.auth import TokenVerifier, mint_dev_token
from booking.service.errors import Unauthenticated
from booking.settings import Settings
from tests.builders import MANAGER, World
from tests.jwt_kit import dev_token


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each token python-jose verifies."""
    decoded: list[int] = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return decoded


async def test_a_token_is_verified_once_then_served_from_the_cache(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = count_decodes(monkeypatch)
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


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_holds_at_most_its_bound_of_distinct_valid_tokens(
    settings: Settings,
) -> None:
    verifier = TokenVerifier(settings, cache_size=100)

    for i in range(1_000):
        claims = await verifier.claims(dev_token(settings, "client-a", jti=str(i)))
        assert claims["jti"] == str(i)

    assert verifier.cached_tokens == 100


async def test_a_cached_token_is_dropped_at_its_exp_though_never_presented_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticker = Ticker()
    verifier = TokenVerifier(settings.model_copy(update={"jwt_leeway_s": 0}), monotonic=ticker)
    now = int(time.time())
    short = dev_token(settings, "client-a", exp=now + 5)
    long = dev_token(settings, "client-b", exp=now + 3600)
    await verifier.claims(short)
    await verifier.claims(long)
    assert verifier.cached_tokens == 2

    ticker.now += 6
    await verifier.claims(long)  # any request sweeps
    assert verifier.cached_tokens == 1  # the short-lived one is gone

    decoded = count_decodes(monkeypatch)
    ticker.now += 60  # VERIFIED_TOKEN_TTL_S: the long one is verified again
    await verifier.claims(long)
    assert len(decoded) == 1
    assert verifier.cached_tokens == 1
