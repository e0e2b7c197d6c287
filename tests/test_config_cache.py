"""The per-process configuration cache: fresh within its TTL, one load at a time, bounded in
entries and age (strangers' unknown application ids cannot grow it)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from booking.service import catalog as catalog_module
from booking.service.catalog import ConfigCache
from booking.store.db import Database, DatabaseUnavailable
from tests.builders import World
from tests.kit import eventually


def count_loads(monkeypatch: pytest.MonkeyPatch, held: asyncio.Event | None = None) -> list[int]:
    """Count the catalog's loads, each slow (50 ms, and until `held` is set when given), so that
    requests pile up behind it."""
    loads: list[int] = []
    real = catalog_module.load_catalog

    async def counting(conn: Any, organization_id: Any) -> Any:
        loads.append(1)
        await asyncio.sleep(0.05)
        if held is not None:
            await held.wait()
        return await real(conn, organization_id)

    monkeypatch.setattr(catalog_module, "load_catalog", counting)
    return loads


async def test_concurrent_requests_for_a_stale_catalog_share_one_load(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    cache = ConfigCache(db, ttl_s=60)
    catalogs = await asyncio.gather(*(cache.catalog(world.organization_id) for _ in range(20)))
    assert len(loads) == 1
    assert all(c is catalogs[0] for c in catalogs)
    await cache.catalog(world.organization_id)
    assert len(loads) == 1  # fresh: served from memory


async def test_ttl_zero_reloads_every_time(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    cache = ConfigCache(db, ttl_s=0)
    await cache.catalog(world.organization_id)
    await cache.catalog(world.organization_id)
    assert len(loads) == 2


async def test_a_failed_load_reaches_every_waiter_and_the_next_call_retries(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    async def failing(conn: Any, organization_id: Any) -> Any:
        attempts.append(1)
        await asyncio.sleep(0.02)
        raise ConnectionError("database went away")

    monkeypatch.setattr(catalog_module, "load_catalog", failing)
    cache = ConfigCache(db, ttl_s=60)
    results = await asyncio.gather(
        *(cache.catalog(world.organization_id) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, DatabaseUnavailable) for r in results)
    assert len(attempts) == 1
    with pytest.raises(DatabaseUnavailable):
        await cache.catalog(world.organization_id)
    assert len(attempts) == 2


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_catalog_past_half_its_ttl_is_served_at_once_and_refreshed_behind(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = asyncio.Event()
    loads = count_loads(monkeypatch, held)
    clock = FakeMonotonic()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock)
    held.set()
    first = await cache.catalog(world.organization_id)
    held.clear()  # the next load lasts until the test lets it finish
    clock.now += 6  # past half the TTL, within it
    # Nobody waited for the load: they were all served while it could not finish.
    again = await asyncio.wait_for(
        asyncio.gather(*(cache.catalog(world.organization_id) for _ in range(10))), 10
    )
    assert all(c is first for c in again)
    held.set()

    async def refreshed_behind() -> bool:  # served from the entry until the refresh is kept
        return await cache.catalog(world.organization_id) is not first

    await eventually(refreshed_behind, "the background refresh was kept")
    assert len(loads) == 2
    refreshed = await cache.catalog(world.organization_id)
    assert refreshed is not first
    assert len(loads) == 2  # fresh again: no further load
    await cache.close()


async def test_a_catalog_past_its_ttl_is_never_served_stale(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    clock = FakeMonotonic()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock)
    first = await cache.catalog(world.organization_id)
    clock.now += 10
    assert await cache.catalog(world.organization_id) is not first  # waited for a new load
    assert len(loads) == 2


async def test_a_failed_background_refresh_keeps_the_entry_until_its_ttl(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeMonotonic()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock)
    first = await cache.catalog(world.organization_id)

    async def failing(conn: Any, organization_id: Any) -> Any:
        raise ConnectionError("database went away")

    monkeypatch.setattr(catalog_module, "load_catalog", failing)
    clock.now += 6
    assert await cache.catalog(world.organization_id) is first
    await asyncio.sleep(0.05)  # the refresh failed, quietly
    assert await cache.catalog(world.organization_id) is first
    clock.now += 4  # past the TTL: the failure now reaches the caller
    with pytest.raises(DatabaseUnavailable):
        await cache.catalog(world.organization_id)
    await cache.close()


def count_application_loads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    loaded: list[uuid.UUID] = []
    real = catalog_module.load_application

    async def counting(conn: Any, application_id: uuid.UUID) -> Any:
        loaded.append(application_id)
        return await real(conn, application_id)

    monkeypatch.setattr(catalog_module, "load_application", counting)
    return loaded


async def test_unknown_application_ids_hold_at_most_max_entries_the_oldest_going_first(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = count_application_loads(monkeypatch)
    cache = ConfigCache(db, ttl_s=60, max_entries=100)
    strangers = [uuid.uuid4() for _ in range(1_000)]

    for application_id in strangers:
        assert await cache.application(application_id) is None
    assert cache.cached_entries == 100

    assert await cache.application(strangers[-1]) is None  # among the newest: still cached
    assert len(loaded) == 1_000
    assert await cache.application(strangers[0]) is None  # pushed out: loaded again
    assert len(loaded) == 1_001


async def test_entries_past_their_ttl_are_dropped(db: Database, world: World) -> None:
    clock = FakeMonotonic()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock)
    for _ in range(50):
        await cache.application(uuid.uuid4())
    await cache.catalog(world.organization_id)
    assert cache.cached_entries == 51

    clock.now += 10  # the TTL has passed: none of them would be served again
    assert await cache.application(world.application_id) is not None

    assert cache.cached_entries == 1


async def test_a_reloaded_entry_counts_as_the_newest(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner's application, reloaded as its TTL runs out, outlives strangers' older ids."""
    loaded = count_application_loads(monkeypatch)
    clock = FakeMonotonic()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock, max_entries=4)
    await cache.application(world.application_id)
    for _ in range(2):
        await cache.application(uuid.uuid4())
    clock.now += 6  # past half the TTL: served, and reloaded behind
    served = await cache.application(world.application_id)

    async def reloaded_behind() -> bool:  # served from the entry until the reload is kept
        return await cache.application(world.application_id) is not served

    await eventually(reloaded_behind, "the background reload was kept")
    assert len(loaded) == 4

    for _ in range(2):  # the second one fills the cache: the oldest load goes
        await cache.application(uuid.uuid4())
    await cache.application(world.application_id)

    assert len(loaded) == 6  # the partner's entry was not that one
    await cache.close()
