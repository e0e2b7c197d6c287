"""Idempotency-Key: retries replay the first answer and never book twice, directly and behind
PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.settings import DatabasePooler, Settings
from booking.store.models import Appointment
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer, through_pgbouncer

DAY = TODAY + timedelta(days=1)

# The app of these tests runs directly or through PgBouncer, on connections of its own: they
# commit for real (and start from TRUNCATEd tables).
pytestmark = pytest.mark.committed


@pytest.fixture(params=["direct", "pgbouncer"])
async def app(
    request: pytest.FixtureRequest,
    settings: Settings,
    database_url: str,
    clock: FakeClock,
    engine: AsyncEngine,
) -> AsyncIterator[FastAPI]:
    """The app on the test database, directly or through PgBouncer in transaction mode."""
    url = database_url
    if request.param == "pgbouncer":
        url = through_pgbouncer(request.getfixturevalue("pgbouncer"), database_url)
        settings = settings.model_copy(update={"database_pooler": DatabasePooler.TRANSACTION})
    app = create_app(settings, url, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


async def count_appointments(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Appointment))).scalar_one())


def with_key(auth: dict[str, str], key: str) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


async def test_retry_with_the_same_key_replays_the_first_answer_without_booking_again(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    path, headers = world.appointments_path(DAY), with_key(auth, "retry-1")
    first = await client.post(path, json=world.body(570), headers=headers)
    again = await client.post(path, json=world.body(570), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_appointments(engine) == 1


async def test_same_key_with_a_different_body_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    path, headers = world.appointments_path(DAY), with_key(auth, "retry-2")
    assert (await client.post(path, json=world.body(570), headers=headers)).status_code == 201
    response = await client.post(path, json=world.body(600), headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await count_appointments(engine) == 1


async def test_body_formatting_and_key_order_do_not_make_a_different_request(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path, headers = world.appointments_path(DAY), with_key(auth, "retry-3")
    body = world.body(570)
    first = await client.post(path, json=body, headers=headers)
    reordered = dict(reversed(list(body.items())))
    again = await client.post(path, json=reordered, headers=headers)
    assert again.status_code == 201
    assert again.json()["caseId"] == first.json()["caseId"]


async def test_concurrent_retries_of_one_key_book_once_and_all_see_the_same_answer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    path, headers = world.appointments_path(DAY), with_key(auth, "burst")
    responses = await asyncio.gather(
        *(client.post(path, json=world.body(570), headers=headers) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.json()["caseId"] for r in responses}) == 1
    assert await count_appointments(engine) == 1


async def test_keys_belong_to_one_application(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        other = await builders.world(conn)
    first = await client.post(
        world.appointments_path(DAY), json=world.body(570), headers=with_key(auth, "shared")
    )
    second = await client.post(
        other.appointments_path(DAY),
        json=other.body(570),
        headers=with_key(bearer(settings, other.client_id), "shared"),
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["caseId"] != second.json()["caseId"]


async def test_refused_request_is_not_stored_and_can_be_retried_with_its_key(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path = world.appointments_path(DAY)
    taken = await client.post(path, json=world.body(570), headers=auth)
    refused = await client.post(path, json=world.body(570), headers=with_key(auth, "later"))
    assert refused.status_code == 409
    await client.delete(f"{path}/{taken.json()['caseId']}", headers=auth)
    retried = await client.post(path, json=world.body(570), headers=with_key(auth, "later"))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_expired_key_is_processed_as_new(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    settings: Settings,
) -> None:
    path, headers = world.appointments_path(DAY), with_key(auth, "old")
    assert (await client.post(path, json=world.body(800), headers=headers)).status_code == 201
    clock.advance(seconds=settings.idempotency_ttl_s + 1)
    # Processed again, not replayed: the slot is now taken by the first booking.
    response = await client.post(path, json=world.body(800), headers=headers)
    assert response.status_code == 409
    assert "idempotent-replayed" not in response.headers


async def test_cancel_with_a_key_replays_too(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path = world.appointments_path(DAY)
    case_id = (await client.post(path, json=world.body(570), headers=auth)).json()["caseId"]
    first = await client.delete(f"{path}/{case_id}", headers=with_key(auth, "cancel-1"))
    again = await client.delete(f"{path}/{case_id}", headers=with_key(auth, "cancel-1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_unreasonable_key_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.post(
        world.appointments_path(DAY), json=world.body(570), headers=with_key(auth, "k" * 300)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_idempotency_key"


@pytest.mark.committed  # purges through a pool of its own
async def test_expired_keys_are_purged_and_live_ones_kept(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    from booking.store.db import Database
    from booking.store.idempotency import purge_expired
    from booking.store.models import IdempotencyRecord

    path = world.appointments_path(DAY)
    await client.post(path, json=world.body(570), headers=with_key(auth, "old-key"))
    clock.advance(seconds=settings.idempotency_ttl_s - 10)
    await client.post(path, json=world.body(600), headers=with_key(auth, "new-key"))
    clock.advance(seconds=20)  # the first key is now past its TTL, the second is not
    db = await Database.open(settings, str(engine.url.render_as_string(hide_password=False)))
    try:
        async with db.transaction() as driver:
            assert await purge_expired(driver, clock()) == 1
    finally:
        await db.close()
    async with engine.connect() as conn:
        keys = (await conn.execute(select(IdempotencyRecord.key))).scalars().all()
    assert keys == ["new-key"]
