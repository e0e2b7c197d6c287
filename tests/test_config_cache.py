"""The per-process configuration cache: fresh within its TTL, one load at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.service import catalog as catalog_module
from booking.service.catalog import ConfigCache
from tests.builders import World


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    loads: list[int] = []
    real = catalog_module.load_catalog

    async def counting(conn: Any, organization_id: Any) -> Any:
        loads.append(1)
        await asyncio.sleep(0.05)  # a slow load, so that requests pile up behind it
        return await real(conn, organization_id)

    monkeypatch.setattr(catalog_module, "load_catalog", counting)
    return loads


async def test_concurrent_requests_for_a_stale_catalog_share_one_load(
    engine: AsyncEngine, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    cache = ConfigCache(engine, ttl_s=60)
    catalogs = await asyncio.gather(*(cache.catalog(world.organization_id) for _ in range(20)))
    assert len(loads) == 1
    assert all(c is catalogs[0] for c in catalogs)
    await cache.catalog(world.organization_id)
    assert len(loads) == 1  # fresh: served from memory


async def test_ttl_zero_reloads_every_time(
    engine: AsyncEngine, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    cache = ConfigCache(engine, ttl_s=0)
    await cache.catalog(world.organization_id)
    await cache.catalog(world.organization_id)
    assert len(loads) == 2


async def test_a_failed_load_reaches_every_waiter_and_the_next_call_retries(
    engine: AsyncEngine, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    async def failing(conn: Any, organization_id: Any) -> Any:
        attempts.append(1)
        await asyncio.sleep(0.02)
        raise ConnectionError("database went away")

    monkeypatch.setattr(catalog_module, "load_catalog", failing)
    cache = ConfigCache(engine, ttl_s=60)
    results = await asyncio.gather(
        *(cache.catalog(world.organization_id) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert len(attempts) == 1
    with pytest.raises(ConnectionError):
        await cache.catalog(world.organization_id)
    assert len(attempts) == 2
