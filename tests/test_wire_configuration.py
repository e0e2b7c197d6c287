"""The configuration behind the original's fields: service categories, inboxes, the two booking
windows, no-show rates and colors of service types, and the issues a calendar reports; plus
the formats the original writes (microseconds, unrounded rates)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.loader import ConfigFileError, parse_config
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer
from tests.kit import TOMORROW, assert_problem, book, hold

CATEGORY = "6f1c2a4e-0000-4000-8000-00000000c001"
INBOX = "6f1c2a4e-0000-4000-8000-00000000c101"


async def configure(
    engine: AsyncEngine,
    settings: Settings,
    *,
    service: dict[str, Any] | None = None,
    service_type: dict[str, Any] | None = None,
    categories: list[dict[str, str]] | None = None,
) -> tuple[dict[str, Any], World, dict[str, str]]:
    config = builders.organization_config(service=service, service_type=service_type)
    if categories is not None:
        config["serviceCategories"] = categories
    async with engine.begin() as conn:
        await builders.load(conn, config)
    world = builders.world_of(config)
    return config, world, bearer(settings, world.client_id)


async def calendar(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date = TOMORROW
) -> dict[str, Any]:
    response = await client.get(
        f"/{world.application_id}/calendars/{world.service_id}/{on_date}", headers=auth
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()[0]
    return found


async def vacancies(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date = TOMORROW
) -> list[int]:
    response = await client.get(
        world.calendar_path(on_date) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    slots: list[int] = response.json()["slots"]
    return slots


# --- what the configuration says, in the calendars and the appointments ------------------------


async def test_category_inbox_color_and_flags_come_from_the_configuration(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(
        engine,
        settings,
        categories=[{"id": CATEGORY, "name": "Documents"}],
        service={
            "serviceCategoryId": CATEGORY,
            "inbox": {"id": INBOX, "name": "Front desk"},
            "allowAnonymousAgentBooking": True,
        },
        service_type={"colorCode": "orange", "noShowRate": 0.2},
    )
    found = await calendar(client, world, auth)
    assert (found["serviceCategoryId"], found["serviceCategoryName"]) == (CATEGORY, "Documents")
    assert (found["inboxId"], found["inboxName"]) == (INBOX, "Front desk")
    assert found["allowAnonymousAgentBooking"] is True

    booked = (await book(client, world, auth, 570)).json()
    assert (booked["serviceCategoryId"], booked["serviceCategoryName"]) == (CATEGORY, "Documents")
    assert booked["serviceTypeColorCode"] == "orange"
    assert booked["appointment"]["noShowProbability"] == 0.2
    assert (booked["assignedTo"], booked["lockedBy"], booked["onlineMeeting"]) == (None,) * 3


async def test_without_category_inbox_or_color_the_fields_are_null(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(engine, settings)
    found = await calendar(client, world, auth)
    assert [found[k] for k in ("serviceCategoryId", "inboxId", "inboxName", "user")] == [None] * 4
    assert found["allowAnonymousAgentBooking"] is False
    booked = (await book(client, world, auth, 570)).json()
    assert booked["serviceCategoryId"] is None
    assert booked["serviceTypeColorCode"] is None
    assert booked["appointment"]["noShowProbability"] == 0.0


async def test_comp_minutes_weigh_booked_minutes_by_the_no_show_rate_as_the_original_sample(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """The original's sample: 15 minutes booked of 480, at a 20 % no-show rate."""
    _, world, auth = await configure(
        engine, settings, service_type={"durationMinutes": 15, "noShowRate": 0.2}
    )
    assert (await book(client, world, auth, 570)).status_code == 201
    stats = (await calendar(client, world, auth))["stats"]
    assert stats["capacityMinutes"] == 480
    assert stats["minutesBooked"] == 15
    assert stats["bookingRate"] == 0.03125
    assert stats["compMinutesBooked"] == 12.0
    assert stats["compBookingRate"] == 12 / 480


async def test_a_live_hold_weighs_in_comp_minutes_by_its_service_types_no_show_rate(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(
        engine, settings, service_type={"durationMinutes": 15, "noShowRate": 0.2}
    )
    assert (await hold(client, world, auth, 570)).status_code == 201
    stats = (await calendar(client, world, auth))["stats"]
    assert (stats["minutesBooked"], stats["appointmentCount"]) == (15, 0)
    assert stats["compMinutesBooked"] == 12.0


async def test_no_show_probability_is_the_rate_when_booked(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    config, world, auth = await configure(engine, settings, service_type={"noShowRate": 0.5})
    first = (await book(client, world, auth, 570)).json()
    changed = copy.deepcopy(config)
    changed["services"][0]["serviceTypes"][0]["noShowRate"] = 0.1
    async with engine.begin() as conn:
        await builders.load(conn, changed)
    second = (await book(client, world, auth, 630)).json()
    assert second["appointment"]["noShowProbability"] == 0.1
    listed = await client.get(world.appointments_path(TOMORROW), headers=auth)
    assert [a["appointment"]["noShowProbability"] for a in listed.json()] == [0.5, 0.1]
    assert first["caseId"] == listed.json()[0]["caseId"]
    stats = (await calendar(client, world, auth))["stats"]
    assert stats["compMinutesBooked"] == pytest.approx(30 * 0.5 + 30 * 0.9)


async def test_booking_rate_is_not_rounded(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, duration=20)
    auth = bearer(settings, world.client_id)
    assert (await book(client, world, auth, 570)).status_code == 201
    stats = (await calendar(client, world, auth))["stats"]
    assert stats["bookingRate"] == 20 / 480  # 0.041666..., not 0.0417
    assert stats["compBookingRate"] == 20 / 480


# --- the two booking windows -------------------------------------------------------------------


async def test_minimum_notice_refuses_and_hides_starts_too_soon(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, clock: FakeClock
) -> None:
    _, world, auth = await configure(engine, settings, service={"minimumNoticeMinutes": 120})
    # 07:00 in London: 120 minutes of notice reach 09:00.
    response = await book(client, world, auth, 530, on_date=TODAY)
    assert_problem(response, 422, "short_notice", field="startTime")
    assert (await book(client, world, auth, 540, on_date=TODAY)).status_code == 201
    assert (await vacancies(client, world, auth, TODAY))[0] == 570
    clock.advance(minutes=30)
    assert (await vacancies(client, world, auth, TODAY))[0] == 570
    assert (await calendar(client, world, auth, TODAY))["isInAgentsBookingWindow"] is True


async def test_a_notice_past_the_end_of_today_puts_today_outside_the_window(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(
        engine,
        settings,
        service={"minimumNoticeMinutes": 24 * 60, "selfMinimumNoticeMinutes": 0},
    )
    today = await calendar(client, world, auth, TODAY)
    assert today["isInAgentsBookingWindow"] is False
    assert today["isInSelfBookingWindow"] is True
    assert (await calendar(client, world, auth))["isInAgentsBookingWindow"] is True
    assert await vacancies(client, world, auth, TODAY) == []


async def test_each_window_has_its_own_days_ahead(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(
        engine, settings, service={"bookingWindowDays": 30, "selfBookingWindowDays": 7}
    )
    week = await calendar(client, world, auth, TODAY + timedelta(days=7))
    assert (week["isInAgentsBookingWindow"], week["isInSelfBookingWindow"]) == (True, True)
    later = await calendar(client, world, auth, TODAY + timedelta(days=8))
    assert (later["isInAgentsBookingWindow"], later["isInSelfBookingWindow"]) == (True, False)
    beyond = await calendar(client, world, auth, TODAY + timedelta(days=31))
    assert beyond["isInAgentsBookingWindow"] is False
    assert beyond["bookingWindowDays"] == 30
    # This API books in the agents' window, not the customers' own.
    assert (await book(client, world, auth, 570, on_date=TODAY + timedelta(days=8))).is_success


async def test_inactive_agents_booking_refuses_bookings_and_lists_no_vacancies(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    _, world, auth = await configure(
        engine, settings, service={"agentsBookingActive": False, "selfBookingActive": False}
    )
    assert_problem(await book(client, world, auth, 570), 422, "agents_booking_inactive")
    assert await vacancies(client, world, auth) == []
    found = await calendar(client, world, auth)
    assert (found["agentsBookingActive"], found["selfBookingActive"]) == (False, False)


# --- issues ------------------------------------------------------------------------------------


async def test_a_well_configured_calendar_has_no_issues(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await calendar(client, world, auth))["issues"] == []


async def test_a_unit_open_on_no_weekday_and_a_service_without_types_are_issues(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.begin() as conn:
        org = await builders.organization(conn)
        app_id, client_id = await builders.application(conn, org)
        service_id = await builders.service(conn, org)
        await builders.calendar_unit(conn, service_id, hours=())
    response = await client.get(
        f"/{app_id}/calendars/{service_id}/{TOMORROW}", headers=bearer(settings, client_id)
    )
    issues = response.json()[0]["issues"]
    assert [i["code"] for i in issues] == ["no_working_hours", "no_service_types"]
    assert all(i["text"] for i in issues)


async def test_working_hours_that_no_service_type_fits_in_are_an_issue_of_that_date(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(600, 620)])
        await builders.exception(conn, world.service_id, TOMORROW + timedelta(days=1))
    issues = (await calendar(client, world, auth))["issues"]
    assert [i["code"] for i in issues] == ["no_service_type_fits"]
    # A closed date is no problem: it was configured so.
    assert (await calendar(client, world, auth, TOMORROW + timedelta(days=1)))["issues"] == []


# --- formats -----------------------------------------------------------------------------------


async def test_timestamps_carry_microseconds_so_two_bookings_of_one_second_are_ordered(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 7, 26, 21, 123456, tzinfo=UTC))
    first = (await book(client, world, auth, 570)).json()
    clock.set(datetime(2026, 12, 1, 7, 26, 21, 654321, tzinfo=UTC))
    second = (await book(client, world, auth, 630)).json()
    assert first["statusDate"] == first["dateOpened"] == "2026-12-01T07:26:21.123456Z"
    assert second["dateOpened"] == "2026-12-01T07:26:21.654321Z"
    stored = await client.get(
        f"/{world.application_id}/appointments/{first['caseId']}", headers=auth
    )
    assert stored.json()["dateOpened"] == "2026-12-01T07:26:21.123456Z"  # stored so
    assert first["appointment"]["timeUtc"] == "2026-12-02T09:30:00Z"  # a wall-clock instant


async def test_time_zone_ids_are_windows_ids_beside_the_iana_names(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, time_zone="Asia/Jerusalem")
    auth = bearer(settings, world.client_id)
    found = await calendar(client, world, auth)
    assert (found["timeZoneId"], found["ianaTimeZoneId"]) == (
        "Israel Standard Time",
        "Asia/Jerusalem",
    )
    appointment = (await book(client, world, auth, 570)).json()["appointment"]
    assert appointment["timeZoneId"] == "Israel Standard Time"  # the original's sample
    assert appointment["ianaTimeZoneId"] == "Asia/Jerusalem"


# --- the loader's rules on these keys ----------------------------------------------------------


def _document(**service: Any) -> dict[str, Any]:
    return {"organizations": [builders.organization_config(service=service)]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"serviceCategoryId": str(uuid.uuid4())}, "is not one of this organization's"),
        ({"minimumNoticeMinutes": -1}, "minimumNoticeMinutes"),
        ({"selfBookingWindowDays": -1}, "selfBookingWindowDays"),
        ({"inbox": {"id": INBOX}}, "inbox.name"),
    ],
)
def test_the_loader_refuses_bad_service_keys(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        parse_config(yaml.safe_dump(_document(**change)))


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.2", True])
def test_the_loader_refuses_a_no_show_rate_outside_0_to_1(rate: object) -> None:
    document = _document()
    document["organizations"][0]["services"][0]["serviceTypes"][0]["noShowRate"] = rate
    with pytest.raises(ConfigFileError, match="noShowRate"):
        parse_config(yaml.safe_dump(document))


def test_the_loader_refuses_a_time_zone_without_a_windows_id() -> None:
    document = _document()
    document["organizations"][0]["timeZone"] = "EST5EDT"
    with pytest.raises(ConfigFileError, match="no Windows id"):
        parse_config(yaml.safe_dump(document))
