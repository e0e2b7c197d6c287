"""Vacancies across dates and calendar units in one call (`GET .../calendars/{serviceId}/vacancies`)
and the first dates with vacant time (`.../first-vacancies`), through the HTTP API."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import builders
from tests.builders import World
from tests.conftest import TODAY, bearer
from tests.kit import TOMORROW, CountingDatabase, assert_problem, book, hold

# The default world: 08:00-12:00 and 13:00-17:00 every day, 10-minute grid, 30-minute type,
# a 60-day booking window, capacity 1; "now" is 07:00 UTC (07:00 in London) on TODAY.
EMPTY_DAY_30 = [*range(480, 691, 10), *range(780, 991, 10)]


def range_path(world: World, route: str = "vacancies") -> str:
    return f"/{world.application_id}/calendars/{world.service_id}/{route}"


async def get_range(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    first: date = TOMORROW,
    last: date = TOMORROW,
    **params: Any,
) -> httpx.Response:
    query = {"serviceTypeId": str(world.service_type_id), "from": str(first), "to": str(last)}
    return await client.get(range_path(world), params=query | params, headers=auth)


async def range_items(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    first: date = TOMORROW,
    last: date = TOMORROW,
    **params: Any,
) -> list[dict[str, Any]]:
    response = await get_range(client, world, auth, first, last, **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def first_items(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    query = {"serviceTypeId": str(world.service_type_id), "from": str(TODAY)} | params
    response = await client.get(range_path(world, "first-vacancies"), params=query, headers=auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def single_day(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date, cu_index: int
) -> list[int]:
    response = await client.get(
        world.calendar_path(on_date, cu_index) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    slots: list[int] = response.json()["slots"]
    return slots


@pytest.fixture
async def two_units(engine: AsyncEngine, world: World) -> World:
    """The default world with a second unit, open 09:00-10:00 on weekdays only."""
    async with engine.begin() as conn:
        await builders.calendar_unit(
            conn, world.service_id, cu_index=1, hours=((540, 600),), weekdays=range(1, 6)
        )
    return world


# --- range vacancies ---------------------------------------------------------------------------


async def test_range_lists_every_unit_and_date_with_what_each_single_day_lists(
    client: httpx.AsyncClient, two_units: World, auth: dict[str, str]
) -> None:
    world = two_units
    assert (await book(client, world, auth, 570)).status_code == 201
    assert (
        await hold(client, world, auth, 600, on_date=TOMORROW + timedelta(days=1))
    ).status_code == 201
    last = TOMORROW + timedelta(days=6)
    items = await range_items(client, world, auth, TOMORROW, last)

    # 2026-12-02 is a Wednesday: unit 1 is closed on the Saturday and Sunday.
    expected = [
        (TOMORROW + timedelta(days=n), cu)
        for n in range(7)
        for cu in (0, 1)
        if cu == 0 or (TOMORROW + timedelta(days=n)).isoweekday() <= 5
    ]
    assert [(date.fromisoformat(i["date"]), i["cuIndex"]) for i in items] == expected
    for item in items:
        on_date = date.fromisoformat(item["date"])
        assert item["duration"] == 30
        assert item["slots"] == await single_day(client, world, auth, on_date, item["cuIndex"])
    assert items[0]["slots"] == [s for s in EMPTY_DAY_30 if not 550 <= s <= 590]  # booked
    assert [s for s in EMPTY_DAY_30 if s not in items[2]["slots"]] == [580, 590, 600, 610, 620]


async def test_closed_past_and_out_of_window_dates_give_no_item(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    closed = TODAY + timedelta(days=3)
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, closed)
    first, last = TODAY - timedelta(days=2), TODAY + timedelta(days=5)
    dates = [i["date"] for i in await range_items(client, world, auth, first, last)]
    assert dates == [str(TODAY + timedelta(days=n)) for n in (0, 1, 2, 4, 5)]

    window_end = TODAY + timedelta(days=60)  # the 60-day window's last date, then beyond it
    beyond = await range_items(
        client, world, auth, window_end - timedelta(days=1), window_end + timedelta(days=5)
    )
    assert [i["date"] for i in beyond] == [str(window_end - timedelta(days=1)), str(window_end)]


async def test_an_open_date_whose_starts_have_all_passed_gives_an_item_without_slots(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: Any
) -> None:
    clock.advance(hours=11)  # 18:00 in London: today's hours are over
    items = await range_items(client, world, auth, TODAY, TODAY)
    assert items == [{"date": str(TODAY), "cuIndex": 0, "duration": 30, "slots": []}]


async def test_range_of_more_than_31_days_is_422_naming_the_limit(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (
        len(await range_items(client, world, auth, TOMORROW, TOMORROW + timedelta(days=30))) == 31
    )
    response = await get_range(client, world, auth, TOMORROW, TOMORROW + timedelta(days=31))
    assert_problem(response, 422, "date_range_too_long")
    assert "31 days" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "to"


async def test_range_ending_before_it_starts_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await get_range(client, world, auth, TOMORROW, TODAY)
    assert_problem(response, 422, "invalid_date_range")


async def test_range_of_chosen_units_lists_only_them_and_an_unknown_unit_is_404(
    client: httpx.AsyncClient, two_units: World, auth: dict[str, str]
) -> None:
    items = await range_items(client, two_units, auth, cuIndex=[1])
    assert [i["cuIndex"] for i in items] == [1]
    assert items[0]["slots"] == [540, 550, 560, 570]
    response = await get_range(client, two_units, auth, cuIndex=[0, 7])
    assert_problem(response, 404, "calendar_unit_not_found")


async def test_range_for_a_channel_the_service_type_does_not_offer_is_empty(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        video_only = await builders.service_type(
            conn, world.service_id, duration=30, channels=("Video",), name="Video call"
        )
    type_id = str(video_only)
    assert await range_items(client, world, auth, channel="Video", serviceTypeId=type_id) != []
    assert await range_items(client, world, auth, channel="Phone", serviceTypeId=type_id) == []
    response = await get_range(client, world, auth, channel="Fax")
    assert_problem(response, 422, "validation_failed")


@pytest.mark.committed  # counts the statements of the real store's connections
async def test_range_reads_every_interval_of_the_range_in_one_statement(
    client: httpx.AsyncClient, app: FastAPI, two_units: World, auth: dict[str, str]
) -> None:
    assert (await hold(client, two_units, auth, 600)).status_code == 201
    runtime = app.state.runtime
    real = runtime.db
    runtime.db = counting = CountingDatabase(real)
    try:
        items = await range_items(client, two_units, auth, TOMORROW, TOMORROW + timedelta(days=30))
    finally:
        runtime.db = real
    assert len(items) > 31
    (statement,) = counting.sent
    assert "FROM appointment" in statement
    assert "FROM slot_hold" in statement  # live holds, in the same statement


async def test_range_answers_304_to_its_etag_until_a_booking_changes_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    first = await get_range(client, world, auth, TOMORROW, TOMORROW + timedelta(days=3))
    tag = first.headers["etag"]
    assert tag[0] == tag[-1] == '"'  # strong
    params = {
        "serviceTypeId": str(world.service_type_id),
        "from": str(TOMORROW),
        "to": str(TOMORROW + timedelta(days=3)),
    }
    conditional = auth | {"If-None-Match": tag}
    unchanged = await client.get(range_path(world), params=params, headers=conditional)
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert (await book(client, world, auth, 570)).status_code == 201
    changed = await client.get(range_path(world), params=params, headers=conditional)
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag


async def test_vacancies_after_a_service_is_the_range_and_a_date_there_is_its_calendars(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    # Declared first, the range route takes `vacancies`; a date still lists the calendars, and
    # anything else there is a bad date.
    response = await get_range(client, world, auth)
    assert response.status_code == 200, response.text
    assert response.json()[0]["slots"] == EMPTY_DAY_30
    calendars = await client.get(f"{range_path(world, str(TOMORROW))}", headers=auth)
    assert calendars.status_code == 200, calendars.text
    assert calendars.json()[0]["cuIndex"] == 0
    bad = await client.get(range_path(world, "vacancy"), headers=auth)
    assert_problem(bad, 422, "validation_failed")
    assert bad.json()["errors"][0]["field"] == "date"


# --- first vacancies ---------------------------------------------------------------------------


async def test_first_vacancies_give_the_first_dates_with_vacant_time_and_each_units_earliest(
    client: httpx.AsyncClient,
    two_units: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    clock: Any,
) -> None:
    world = two_units
    clock.advance(hours=11)  # 18:00: nothing left today
    async with engine.begin() as conn:  # tomorrow closed for unit 0, ...
        await builders.exception(conn, world.service_id, TOMORROW)
    for start in (540, 570):  # ... and unit 1 booked full
        response = await client.post(
            world.appointments_path(TOMORROW, 1), json=world.body(start), headers=auth
        )
        assert response.status_code == 201, response.text
    items = await first_items(client, world, auth, days=3)
    # Tomorrow (Wednesday) has nothing: the next three dates are Thursday to Saturday, and
    # unit 1 is closed on Saturdays.
    day = [TOMORROW + timedelta(days=n) for n in (1, 2, 3)]
    assert items == [
        {"date": str(day[0]), "cuIndex": 0, "duration": 30, "start": 480},
        {"date": str(day[0]), "cuIndex": 1, "duration": 30, "start": 540},
        {"date": str(day[1]), "cuIndex": 0, "duration": 30, "start": 480},
        {"date": str(day[1]), "cuIndex": 1, "duration": 30, "start": 540},
        {"date": str(day[2]), "cuIndex": 0, "duration": 30, "start": 480},
    ]


@pytest.mark.committed  # counts the statements of the real store's connections
async def test_first_vacancies_look_at_most_90_days_ahead_in_at_most_four_statements(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Any
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, service_options={"booking_window_days": None})
        for n in range(89):  # every date of the 90 days closed but the last
            await builders.exception(conn, world.service_id, TODAY + timedelta(days=n))
    auth = bearer(settings, world.client_id)
    runtime = app.state.runtime
    real = runtime.db
    runtime.db = counting = CountingDatabase(real)
    try:
        items = await first_items(client, world, auth, days=2)
    finally:
        runtime.db = real
    assert [i["date"] for i in items] == [str(TODAY + timedelta(days=89))]
    assert len(counting.sent) == 1  # only the chunk holding an open date is read

    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TODAY + timedelta(days=89))
    assert await first_items(client, world, auth) == []


@pytest.mark.committed  # counts the statements of the real store's connections
async def test_first_vacancies_read_the_horizon_in_at_most_four_statements(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Any
) -> None:
    async with engine.begin() as conn:  # open all day, every 10 minutes, booked full below
        world = await builders.world(
            conn, duration=1440, hours=((0, 1440),), service_options={"booking_window_days": None}
        )
    auth = bearer(settings, world.client_id)
    for n in range(1, 90):
        response = await book(client, world, auth, 0, on_date=TODAY + timedelta(days=n))
        assert response.status_code == 201, response.text
    runtime = app.state.runtime
    real = runtime.db
    runtime.db = counting = CountingDatabase(real)
    try:
        assert await first_items(client, world, auth) == []
    finally:
        runtime.db = real
    assert len(counting.sent) == 4  # 7 + 14 + 28 + 41 dates


async def test_first_vacancies_days_must_be_1_to_31(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    for days in (0, 32):
        response = await client.get(
            range_path(world, "first-vacancies"),
            params={"serviceTypeId": str(world.service_type_id), "from": str(TODAY), "days": days},
            headers=auth,
        )
        assert_problem(response, 422, "validation_failed")
        assert response.json()["errors"][0]["field"] == "days"
