"""Vacancies of a calendar, and a service's calendars on a date, through the HTTP API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.models import Organization
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer
from tests.kit import assert_problem, book, cancel

TOMORROW = TODAY + timedelta(days=1)
# The default world: 08:00-12:00 and 13:00-17:00, 10-minute grid, a 30-minute service type.
EMPTY_DAY_30 = [*range(480, 691, 10), *range(780, 991, 10)]


async def get_vacancies(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    on_date: date | str = TOMORROW,
    service_type_id: object = None,
    cu_index: int | None = None,
) -> httpx.Response:
    type_id = service_type_id or world.service_type_id
    return await client.get(
        world.calendar_path(on_date, cu_index) + "/vacancies",
        params={"serviceTypeId": str(type_id)},
        headers=auth,
    )


async def slots(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    on_date: date = TOMORROW,
    service_type_id: object = None,
    cu_index: int | None = None,
) -> list[int]:
    response = await get_vacancies(client, world, auth, on_date, service_type_id, cu_index)
    assert response.status_code == 200, response.text
    found: list[int] = response.json()["slots"]
    return found


async def get_calendars(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date | str = TOMORROW
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/{world.application_id}/calendars/{world.service_id}/{on_date}", headers=auth
    )
    assert response.status_code == 200, response.text
    calendars: list[dict[str, Any]] = response.json()
    return calendars


async def only_calendar(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: date = TOMORROW
) -> dict[str, Any]:
    calendars = await get_calendars(client, world, auth, on_date)
    assert len(calendars) == 1, calendars
    return calendars[0]


# --- vacancies ---------------------------------------------------------------------------------


async def test_vacancies_of_an_empty_day_are_every_grid_start_that_fits(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await get_vacancies(client, world, auth)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "serviceTypeId": str(world.service_type_id),
        "serviceTypeName": "30-minute visit",
        "duration": 30,
        "slots": EMPTY_DAY_30,
    }


async def test_vacancies_depend_on_the_service_type_duration(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        hour = await builders.service_type(conn, world.service_id, duration=60, name="Long")
    response = await get_vacancies(client, world, auth, service_type_id=hour)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["serviceTypeName"], body["duration"]) == ("Long", 60)
    assert body["slots"] == [*range(480, 661, 10), *range(780, 961, 10)]


async def test_booked_interval_removes_every_overlapping_start(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 570)).status_code == 201
    vacant = await slots(client, world, auth)
    # [570, 600) is taken: 550..590 would overlap it; 540 ends and 600 starts at its edges.
    assert vacant == [s for s in EMPTY_DAY_30 if not 550 <= s <= 590]


async def test_off_grid_bypass_booking_occupies_its_real_interval(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 575, bypassTimeslotCheck=True)).status_code == 201
    vacant = await slots(client, world, auth)
    assert vacant == [s for s in EMPTY_DAY_30 if not 550 <= s <= 600]  # [575, 605) is taken


async def test_capacity_two_lists_a_start_until_two_bookings_overlap_it(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, capacity=2)
    auth = bearer(settings, world.client_id)
    assert (await book(client, world, auth, 570)).status_code == 201
    assert await slots(client, world, auth) == EMPTY_DAY_30
    assert (await book(client, world, auth, 590)).status_code == 201
    # Only [590, 600) is covered twice; every start whose interval touches it is full.
    assert await slots(client, world, auth) == [s for s in EMPTY_DAY_30 if not 570 <= s <= 590]


async def test_past_start_times_of_today_are_not_listed(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # London is on UTC in December
    assert await slots(client, world, auth, TODAY) == [s for s in EMPTY_DAY_30 if s > 600]
    clock.set(datetime(2026, 12, 1, 16, 31, tzinfo=UTC))
    assert await slots(client, world, auth, TODAY) == []


async def test_closed_date_gives_an_empty_list(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
    assert await slots(client, world, auth) == []
    assert await slots(client, world, auth, TOMORROW + timedelta(days=1)) == EMPTY_DAY_30


async def test_weekday_without_working_hours_gives_an_empty_list(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn)
        await builders.calendar_unit(conn, world.service_id, cu_index=1, weekdays=[1])  # Mondays
    auth = bearer(settings, world.client_id)
    assert await slots(client, world, auth, TOMORROW, cu_index=1) == []  # a Wednesday
    assert await slots(client, world, auth, date(2026, 12, 7), cu_index=1) == EMPTY_DAY_30


async def test_special_hours_replace_the_weekly_hours(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(1200, 1260)])
    assert await slots(client, world, auth) == [1200, 1210, 1220, 1230]


@pytest.mark.parametrize("days", [-1, -30, 61, 365])
async def test_past_date_or_date_outside_the_booking_window_gives_an_empty_list(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], days: int
) -> None:
    assert await slots(client, world, auth, TODAY + timedelta(days=days)) == []


async def test_last_day_of_the_booking_window_is_listed(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert await slots(client, world, auth, TODAY + timedelta(days=60)) == EMPTY_DAY_30


async def test_unknown_service_type_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await get_vacancies(client, world, auth, service_type_id=uuid.uuid4())
    assert_problem(response, 404, "service_type_not_found")


async def test_service_type_of_another_service_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        other_service = await builders.service(conn, world.organization_id, name="Other")
        other_type = await builders.service_type(conn, other_service)
    response = await get_vacancies(client, world, auth, service_type_id=other_type)
    assert_problem(response, 404, "service_type_not_found")


async def test_unknown_service_type_is_404_even_on_a_closed_date(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
    response = await get_vacancies(client, world, auth, service_type_id=uuid.uuid4())
    assert_problem(response, 404, "service_type_not_found")
    past = await get_vacancies(client, world, auth, TODAY - timedelta(days=1), uuid.uuid4())
    assert_problem(past, 404, "service_type_not_found")


async def test_missing_service_type_id_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(world.calendar_path(TOMORROW) + "/vacancies", headers=auth)
    problem = assert_problem(response, 422, "validation_failed", field="serviceTypeId")
    assert any(e["message"] == "required" for e in problem["errors"])


async def test_malformed_service_type_id_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await get_vacancies(client, world, auth, service_type_id="nope")
    assert_problem(response, 422, "validation_failed", field="serviceTypeId")


async def test_vacancies_of_unknown_service_or_calendar_unit_are_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await get_vacancies(client, world, auth, cu_index=3)
    assert_problem(response, 404, "calendar_unit_not_found")
    path = f"/{world.application_id}/calendars/{uuid.uuid4()}/{TOMORROW}/0/vacancies"
    response = await client.get(
        path, params={"serviceTypeId": str(world.service_type_id)}, headers=auth
    )
    assert_problem(response, 404, "service_not_found")


@pytest.mark.parametrize(("on_date", "field"), [("2026-02-30", "date"), ("x", "date")])
async def test_vacancies_of_a_bad_date_are_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], on_date: str, field: str
) -> None:
    response = await get_vacancies(client, world, auth, on_date)
    assert_problem(response, 422, "validation_failed", field=field)


async def test_vacancies_need_the_role(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    response = await get_vacancies(client, world, bearer(settings, world.client_id, roles=[]))
    assert_problem(response, 403, "role_missing")
    response = await get_vacancies(client, world, {})
    assert_problem(response, 401, "token_missing")


# --- calendars on a date -----------------------------------------------------------------------


async def test_calendar_on_a_date_describes_the_unit_and_the_service(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        configured_at = await conn.scalar(
            select(Organization.configured_at).where(Organization.id == world.organization_id)
        )
        customers_table_id = await builders.customers_table_id(conn, world.organization_id)
    assert configured_at is not None
    # Never written: the calendar-day's version is the configuration's.
    calendar_timestamp = configured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert await get_calendars(client, world, auth) == [
        {
            "serviceId": str(world.service_id),
            "date": "2026-12-02T00:00:00",
            "cuIndex": 0,
            "calendarTimestamp": calendar_timestamp,
            "serviceName": "Passport renewal",
            "serviceCategoryId": None,
            "serviceCategoryName": None,
            "capacity": 1,
            "slotMinutes": 10,
            "timeZoneId": "GMT Standard Time",
            "ianaTimeZoneId": "Europe/London",
            "isCustomerRequired": False,
            "customersDataTableId": str(customers_table_id),
            "isPhoneNumberRequired": False,
            "phoneNumberFieldTypeId": None,  # the organization has no customer field types
            "isEmailRequired": False,
            "emailFieldTypeId": None,
            "workingHours": [{"start": 480, "end": 720}, {"start": 780, "end": 1020}],
            "user": None,
            "allowAnonymousAgentBooking": False,
            "inboxId": None,
            "inboxName": None,
            "isInAgentsBookingWindow": True,
            "agentsBookingActive": True,
            "isInSelfBookingWindow": True,
            "selfBookingActive": True,
            "isClosed": False,
            "isPastDate": False,
            "bookingWindowDays": 60,
            "stats": {
                "appointmentCount": 0,
                "capacityMinutes": 480,
                "minutesBooked": 0,
                "bookingRate": 0.0,
                "compMinutesBooked": 0.0,
                "compBookingRate": 0.0,
                "isFullyBooked": False,
            },
            "issues": [],
        }
    ]


async def test_required_data_flags_come_from_the_service(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(
            conn,
            service_options={
                "requires_customer": True,
                "requires_phone": False,
                "requires_email": True,
            },
        )
    calendar = await only_calendar(client, world, bearer(settings, world.client_id))
    assert calendar["isCustomerRequired"] is True
    assert calendar["isPhoneNumberRequired"] is False
    assert calendar["isEmailRequired"] is True


async def test_stats_count_live_appointments_and_their_minutes(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        hour = await builders.service_type(conn, world.service_id, duration=60)
        three_quarters = await builders.service_type(conn, world.service_id, duration=45)
    assert (await book(client, world, auth, 480)).status_code == 201  # 30
    assert (await book(client, world, auth, 540, serviceTypeId=str(hour))).status_code == 201
    assert (
        await book(client, world, auth, 780, serviceTypeId=str(three_quarters))
    ).status_code == 201
    cancelled = (await book(client, world, auth, 900)).json()["caseId"]
    assert (await cancel(client, world, auth, cancelled)).status_code == 200
    # Another date and another unit do not count.
    assert (await book(client, world, auth, 600, on_date=TOMORROW + timedelta(days=1))).is_success

    stats = (await only_calendar(client, world, auth))["stats"]
    assert stats["appointmentCount"] == 3
    assert stats["capacityMinutes"] == 480
    assert stats["minutesBooked"] == 30 + 60 + 45
    assert stats["bookingRate"] == pytest.approx(135 / 480, abs=1e-4)
    assert stats["isFullyBooked"] is False


async def test_capacity_two_doubles_capacity_minutes(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, capacity=2)
    auth = bearer(settings, world.client_id)
    assert (await book(client, world, auth, 480)).status_code == 201
    assert (await book(client, world, auth, 480)).status_code == 201
    calendar = await only_calendar(client, world, auth)
    assert calendar["capacity"] == 2
    assert calendar["stats"]["capacityMinutes"] == 960
    assert calendar["stats"]["minutesBooked"] == 60
    assert calendar["stats"]["bookingRate"] == pytest.approx(60 / 960, abs=1e-4)


async def test_each_calendar_unit_is_listed_with_its_own_hours_and_stats(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.calendar_unit(
            conn, world.service_id, cu_index=2, capacity=3, slot_minutes=15, hours=[(540, 600)]
        )
    assert (await book(client, world, auth, 480)).status_code == 201
    calendars = await get_calendars(client, world, auth)
    assert [c["cuIndex"] for c in calendars] == [0, 2]
    second = calendars[1]
    assert second["workingHours"] == [{"start": 540, "end": 600}]
    assert (second["capacity"], second["slotMinutes"]) == (3, 15)
    assert second["stats"] == {
        "appointmentCount": 0,
        "capacityMinutes": 180,
        "minutesBooked": 0,
        "bookingRate": 0.0,
        "compMinutesBooked": 0.0,
        "compBookingRate": 0.0,
        "isFullyBooked": False,
    }
    assert calendars[0]["stats"]["appointmentCount"] == 1


async def test_closed_date_has_no_working_hours_and_no_capacity(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
    calendar = await only_calendar(client, world, auth)
    assert calendar["workingHours"] == []
    assert calendar["isClosed"] is True
    assert calendar["stats"]["capacityMinutes"] == 0
    assert calendar["stats"]["bookingRate"] == 0.0
    # Closed is not "fully booked": nothing was booked, there was nothing to book.
    assert calendar["stats"]["isFullyBooked"] is False


async def test_special_hours_are_the_working_hours_of_that_date(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(660, 720), (540, 600)])
    calendar = await only_calendar(client, world, auth)
    assert calendar["workingHours"] == [{"start": 540, "end": 600}, {"start": 660, "end": 720}]
    assert calendar["stats"]["capacityMinutes"] == 120


async def test_small_calendar_booked_full_is_fully_booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(600, 660)])
        hour = await builders.service_type(conn, world.service_id, duration=60)

    assert (await book(client, world, auth, 600)).status_code == 201
    calendar = await only_calendar(client, world, auth)
    # The 60-minute type has nothing left, but the 30-minute type can still start at 630.
    assert await slots(client, world, auth, service_type_id=hour) == []
    assert await slots(client, world, auth) == [630]
    assert calendar["stats"]["isFullyBooked"] is False

    assert (await book(client, world, auth, 630)).status_code == 201
    calendar = await only_calendar(client, world, auth)
    assert calendar["stats"] == {
        "appointmentCount": 2,
        "capacityMinutes": 60,
        "minutesBooked": 60,
        "bookingRate": 1.0,
        "compMinutesBooked": 60.0,
        "compBookingRate": 1.0,
        "isFullyBooked": True,
    }


async def test_cancelling_makes_a_full_calendar_not_fully_booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(600, 630)])
    case_id = (await book(client, world, auth, 600)).json()["caseId"]
    assert (await only_calendar(client, world, auth))["stats"]["isFullyBooked"] is True
    assert (await cancel(client, world, auth, case_id)).status_code == 200
    stats = (await only_calendar(client, world, auth))["stats"]
    assert (stats["appointmentCount"], stats["isFullyBooked"]) == (0, False)


@pytest.mark.parametrize(
    ("days", "is_past_date", "is_in_booking_window"),
    [(-1, True, False), (0, False, True), (60, False, True), (61, False, False)],
)
async def test_past_date_and_booking_window_flags(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    days: int,
    is_past_date: bool,
    is_in_booking_window: bool,
) -> None:
    calendar = await only_calendar(client, world, auth, TODAY + timedelta(days=days))
    assert calendar["isPastDate"] is is_past_date
    assert calendar["isInAgentsBookingWindow"] is is_in_booking_window


async def test_service_without_booking_window_is_always_in_the_window(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, service_options={"booking_window_days": None})
    calendar = await only_calendar(
        client, world, bearer(settings, world.client_id), TODAY + timedelta(days=3650)
    )
    assert calendar["isInAgentsBookingWindow"] is True
    assert calendar["bookingWindowDays"] is None


async def test_calendars_of_an_unknown_service_are_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(
        f"/{world.application_id}/calendars/{uuid.uuid4()}/{TOMORROW}", headers=auth
    )
    assert_problem(response, 404, "service_not_found")


async def test_calendars_of_a_bad_date_are_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(
        f"/{world.application_id}/calendars/{world.service_id}/2026-13-01", headers=auth
    )
    assert_problem(response, 422, "validation_failed", field="date")


async def test_calendars_need_the_role(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    response = await client.get(
        f"/{world.application_id}/calendars/{world.service_id}/{TOMORROW}",
        headers=bearer(settings, world.client_id, roles=["Reader"]),
    )
    assert_problem(response, 403, "role_missing")


async def test_open_calendar_of_a_service_without_service_types_is_not_fully_booked(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        org = await builders.organization(conn)
        app_id, client_id = await builders.application(conn, org)
        service_id = await builders.service(conn, org)
        await builders.calendar_unit(conn, service_id)
    response = await client.get(
        f"/{app_id}/calendars/{service_id}/{TOMORROW}", headers=bearer(settings, client_id)
    )
    assert response.status_code == 200, response.text
    stats = response.json()[0]["stats"]
    assert (stats["appointmentCount"], stats["isFullyBooked"]) == (0, False)


async def test_start_that_does_not_exist_on_a_spring_forward_day_is_no_vacancy_left(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    clock: FakeClock,
) -> None:
    """London 2027-03-28: 01:00-01:59 does not exist. Open 00:30-02:30 with a 30-minute type,
    bookings at 00:30 and 02:00 leave only starts inside the gap: nothing can be booked."""
    spring = date(2027, 3, 28)
    clock.set(datetime(2027, 3, 27, 12, 0, tzinfo=UTC))
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, spring, hours=[(30, 150)])
    assert (await book(client, world, auth, 30, on_date=spring)).status_code == 201
    assert (await book(client, world, auth, 120, on_date=spring)).status_code == 201
    assert await slots(client, world, auth, spring) == []
    calendar = await only_calendar(client, world, auth, spring)
    assert calendar["stats"]["isFullyBooked"] is True


async def test_time_passing_does_not_make_a_calendar_fully_booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 16, 45, tzinfo=UTC))  # every start of today has passed
    assert await slots(client, world, auth, TODAY) == []
    calendar = await only_calendar(client, world, auth, TODAY)
    assert calendar["stats"]["isFullyBooked"] is False
    assert calendar["isPastDate"] is False


# --- where a booking's customer comes from --------------------------------------------------


async def test_calendars_name_the_first_phone_and_email_customer_field_types_by_position(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        people = await builders.people(conn, world)  # phone at position 2, email at 3
        work_phone = await builders.customer_field_type(
            conn, world.organization_id, "work-phone", kind="phone", position=1
        )
        await builders.customer_field_type(
            conn, world.organization_id, "work-email", kind="email", position=9
        )

    (calendar,) = await get_calendars(client, world, auth)

    assert calendar["phoneNumberFieldTypeId"] == str(work_phone)
    assert calendar["emailFieldTypeId"] == str(people.email)
