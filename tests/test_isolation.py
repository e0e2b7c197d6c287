"""Isolation between tests: an in-process test's writes (the builders' and the app's) are rolled
back when it ends, without a TRUNCATE; a test that commits for real starts from TRUNCATEd
tables. The tests of this file run in order and pass what they saw on in `_seen`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.store.models import Appointment, Organization
from tests import conftest
from tests.builders import World
from tests.kit import book

_seen: dict[str, Any] = {}


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_an_in_process_test_writes_through_the_builders_and_the_app(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    _seen["truncations"] = conftest.TRUNCATIONS[0]
    assert (await book(client, world, auth)).status_code == 201
    assert await count(engine, Appointment) == 1
    assert await count(engine, Organization) == 1


async def test_the_next_in_process_test_sees_none_of_it_and_no_truncate_ran(
    engine: AsyncEngine, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("committed") is None
    assert await count(engine, Appointment) == 0
    assert await count(engine, Organization) == 0
    assert conftest.TRUNCATIONS[0] == _seen["truncations"]


@pytest.mark.committed
async def test_a_committed_test_starts_from_truncated_tables(engine: AsyncEngine) -> None:
    assert conftest.TRUNCATIONS[0] == _seen["truncations"] + 1
    assert await count(engine, Appointment) == 0


def test_tests_that_open_connections_of_their_own_are_committed(
    request: pytest.FixtureRequest, database_url: str
) -> None:
    assert request.node.get_closest_marker("committed") is not None
