"""`calendarTimestamp`, the version of a calendar-day: every write of it moves it (booking,
cancelling, holds, both days of a reschedule, a configuration change), nothing else does; and
the strong `ETag` with which the calendar reads answer, so that a poller gets 304 while nothing
changed."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import bearer
from tests.kit import TOMORROW, CountingDatabase, assert_problem, book, cancel, hold


@pytest.fixture
async def configured(engine: AsyncEngine) -> dict[str, Any]:
    """An organization loaded through the configuration loader, as plain data."""
    config = builders.organization_config()
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return config


@pytest.fixture
def configured_world(configured: dict[str, Any]) -> World:
    return builders.world_of(configured)


@pytest.fixture
def configured_auth(settings: Settings, configured_world: World) -> dict[str, str]:
    return bearer(settings, configured_world.client_id)


def calendars_path(world: World, on_date: object = TOMORROW) -> str:
    return f"/{world.application_id}/calendars/{world.service_id}/{on_date}"


async def timestamp(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: object = TOMORROW
) -> str:
    response = await client.get(calendars_path(world, on_date), headers=auth)
    assert response.status_code == 200, response.text
    stamp: str = response.json()[0]["calendarTimestamp"]
    return stamp


async def test_every_write_moves_the_calendar_timestamp_and_a_read_does_not(
    client: httpx.AsyncClient,
    configured: dict[str, Any],
    configured_world: World,
    configured_auth: dict[str, str],
    engine: AsyncEngine,
) -> None:
    world, auth = configured_world, configured_auth
    seen = [await timestamp(client, world, auth)]
    assert len(seen[0]) == len("2026-12-01T07:26:21.123456Z")

    # Reads of every kind leave it alone.
    await client.get(world.appointments_path(TOMORROW), headers=auth)
    await client.get(
        world.calendar_path(TOMORROW) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert await timestamp(client, world, auth) == seen[-1]

    booked = await book(client, world, auth, 570)
    assert booked.status_code == 201, booked.text
    seen.append(await timestamp(client, world, auth))

    # A refused write is rolled back with its stamp.
    assert_problem(await book(client, world, auth, 570), 409, "slot_not_vacant")
    assert await timestamp(client, world, auth) == seen[-1]

    # Holds are writes of their calendar-day: holding, extending, releasing, booking with one.
    held = await hold(client, world, auth, 600)
    assert held.status_code == 201, held.text
    seen.append(await timestamp(client, world, auth))
    held_path = f"{world.reservations_path(TOMORROW)}/{held.json()['reservationToken']}"
    assert (await client.patch(held_path, json={}, headers=auth)).status_code == 200
    seen.append(await timestamp(client, world, auth))
    assert (await client.delete(held_path, headers=auth)).status_code == 204
    seen.append(await timestamp(client, world, auth))
    token = (await hold(client, world, auth, 600)).json()["reservationToken"]
    seen.append(await timestamp(client, world, auth))
    with_hold = await book(client, world, auth, 600, reservationToken=token)
    assert with_hold.status_code == 201, with_hold.text
    seen.append(await timestamp(client, world, auth))

    # A reschedule to another date moves both calendar-days' stamps.
    day_after = TOMORROW + timedelta(days=1)
    other_day = [await timestamp(client, world, auth, day_after)]
    moved = await client.post(
        f"{world.appointments_path(TOMORROW)}/{with_hold.json()['caseId']}/actions/reschedule",
        json={"date": str(day_after), "cuIndex": world.cu_index, "startTime": 600},
        headers=auth,
    )
    assert moved.status_code == 200, moved.text
    seen.append(await timestamp(client, world, auth))
    other_day.append(await timestamp(client, world, auth, day_after))
    assert other_day[1] > other_day[0]

    assert (await cancel(client, world, auth, booked.json()["caseId"])).status_code == 200
    seen.append(await timestamp(client, world, auth))

    changed = copy.deepcopy(configured)
    changed["services"][0]["name"] = "Passport renewal (new office)"
    async with engine.begin() as conn:
        await builders.load(conn, changed)
    seen.append(await timestamp(client, world, auth))

    assert seen == sorted(set(seen)), seen  # each one later than the one before


async def test_a_write_moves_only_its_own_calendar_days_timestamp(
    client: httpx.AsyncClient, configured_world: World, configured_auth: dict[str, str]
) -> None:
    world, auth = configured_world, configured_auth
    day_after = TOMORROW + timedelta(days=1)
    before = await timestamp(client, world, auth, day_after)
    assert (await book(client, world, auth, 570)).status_code == 201
    assert await timestamp(client, world, auth, day_after) == before
    assert await timestamp(client, world, auth) > before


async def test_reloading_the_same_configuration_keeps_the_timestamp(
    client: httpx.AsyncClient,
    configured: dict[str, Any],
    configured_world: World,
    configured_auth: dict[str, str],
    engine: AsyncEngine,
) -> None:
    before = await timestamp(client, configured_world, configured_auth)
    async with engine.begin() as conn:
        await builders.load(conn, configured)
    assert await timestamp(client, configured_world, configured_auth) == before


@pytest.mark.committed  # counts the round trips of the real store's connections
async def test_a_booking_moves_the_stamp_in_its_lock_statement_four_round_trips_in_all(
    client: httpx.AsyncClient, app: FastAPI, world: World, auth: dict[str, str]
) -> None:
    token = (await hold(client, world, auth, 600)).json()["reservationToken"]
    runtime = app.state.runtime
    real = runtime.db
    runtime.db = counting = CountingDatabase(real)
    try:
        assert (await book(client, world, auth, 570)).status_code == 201
        plain = list(counting.sent)
        counting.sent.clear()
        with_hold = await book(client, world, auth, 600, reservationToken=token)
        assert with_hold.status_code == 201, with_hold.text
    finally:
        runtime.db = real
    begin, intervals, insert, commit = plain
    assert "pg_advisory_xact_lock" in begin
    assert "calendar_day_stamp" in begin
    assert "FROM appointment" in intervals
    assert "FROM slot_hold" in intervals  # live holds, in the same statement
    assert "INSERT INTO appointment" in insert
    assert commit == "COMMIT"
    # With a hold: one more, the UPDATE that consumes it.
    begin, consume, intervals, insert, commit = counting.sent
    assert "UPDATE slot_hold" in consume


# --- ETag and If-None-Match ------------------------------------------------------------------


def _reads(world: World) -> list[tuple[str, dict[str, str]]]:
    return [
        (calendars_path(world), {}),
        (world.appointments_path(TOMORROW), {}),
        (
            world.calendar_path(TOMORROW) + "/vacancies",
            {"serviceTypeId": str(world.service_type_id)},
        ),
    ]


@pytest.mark.parametrize("read", [0, 1, 2], ids=["calendars", "appointments", "vacancies"])
async def test_a_calendar_read_answers_304_to_its_own_etag_until_a_write_changes_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], read: int
) -> None:
    path, params = _reads(world)[read]
    first = await client.get(path, params=params, headers=auth)
    assert first.status_code == 200, first.text
    tag = first.headers["etag"]
    assert tag[0] == tag[-1] == '"'  # strong: no W/

    again = await client.get(path, params=params, headers=auth | {"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    for listed in (f'"other", {tag}', f"W/{tag}", "*"):
        matched = await client.get(path, params=params, headers=auth | {"If-None-Match": listed})
        assert matched.status_code == 304, listed

    assert (await book(client, world, auth, 570)).status_code == 201
    after = await client.get(path, params=params, headers=auth | {"If-None-Match": tag})
    assert after.status_code == 200
    assert after.headers["etag"] != tag
    assert after.content != first.content


async def test_an_etag_of_another_answer_gets_the_full_answer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(
        calendars_path(world), headers=auth | {"If-None-Match": '"not-this-one"'}
    )
    assert response.status_code == 200
    assert response.json()[0]["cuIndex"] == 0
