"""Book Appointment: the contract's body rules and answers, one behaviour per test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.models import Appointment, TicketCounter
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer
from tests.kit import TOMORROW, assert_problem, book, inject_fault


async def appointment_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Appointment))).scalar_one())


# --- the 201 -----------------------------------------------------------------------------------


async def test_booking_answers_201_location_and_the_listing_shape(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        customer_id = await builders.customer(conn, world.organization_id)
        field_id = await builders.field_type(conn, world.organization_id, kind="number")
        tag_id = await builders.tag(conn, world.organization_id)
        table_id = await builders.customers_table_id(conn, world.organization_id)

    response = await book(
        client,
        world,
        auth,
        570,
        language="fr",
        customerRecordId=str(customer_id),
        contactPhoneNumber="(202) 555-0143",
        contactEmail="Ada@Example.COM",
        channel="Video",
        preventSelfCheckIn=True,
        fields={str(field_id): 42},
        tagIds=[str(tag_id)],
    )

    assert response.status_code == 201, response.text
    body = response.json()
    case_id = body["caseId"]
    assert response.headers["location"] == f"/{world.application_id}/appointments/{case_id}"
    assert body["appointment"] == {
        "serviceId": str(world.service_id),
        "date": "2026-12-02T00:00:00",
        "cuIndex": 0,
        "start": 570,
        "duration": 30,
        "timeLocal": "2026-12-02T09:30:00",
        "timeUtc": "2026-12-02T09:30:00Z",
        "timeZoneId": "GMT Standard Time",
        "ianaTimeZoneId": "Europe/London",
        "noShowProbability": 0.0,
        "reservationToken": None,
        "reservationExpiryDate": None,
    }
    assert body["ticket"] == {"prefix": "A", "suffix": None, "number": 1}
    assert body["serviceTypeId"] == str(world.service_type_id)
    assert body["serviceTypeName"] == "30-minute visit"
    assert body["status"] == "Planned"
    assert body["referenceDate"] == "2026-12-02T09:30:00Z"
    assert body["dateOpened"] == "2026-12-01T07:00:00.000000Z"
    assert body["statusDate"] == "2026-12-01T07:00:00.000000Z"
    assert body["dateClosed"] is None
    assert body["customer"] == {
        "dataTableId": str(table_id),
        "recordId": str(customer_id),
        "displayName": "Ada Lovelace",
    }
    assert body["channel"] == "Video"
    assert body["language"] == "fr"
    assert body["contactPhoneNumber"] == "+12025550143"
    assert body["contactEmail"] == "Ada@example.com"
    assert body["preventSelfCheckIn"] is True
    assert body["bypassedTimeslotCheck"] is False
    assert body["fields"] == {str(field_id): 42}
    assert body["tagIds"] == [str(tag_id)]

    stored = await client.get(response.headers["location"], headers=auth)
    assert stored.status_code == 200
    assert stored.json() == body


async def test_absent_or_empty_language_means_the_organization_default(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 480)).json()["language"] == "en"
    assert (await book(client, world, auth, 540, language="")).json()["language"] == "en"


async def test_misspelled_customer_record_id_is_accepted(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        customer_id = await builders.customer(conn, world.organization_id)
    response = await book(client, world, auth, cusotmerRecordId=str(customer_id))
    assert response.status_code == 201, response.text
    assert response.json()["customer"]["recordId"] == str(customer_id)


async def test_both_spellings_with_different_values_are_rejected(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(
        client, world, auth, customerRecordId=str(uuid.uuid4()), cusotmerRecordId=str(uuid.uuid4())
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert "cusotmerRecordId" in problem["detail"]


async def test_ticket_numbers_are_sequential_per_service_and_date(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    numbers = [
        (await book(client, world, auth, s)).json()["ticket"]["number"] for s in (480, 540, 600)
    ]
    assert numbers == [1, 2, 3]
    other_day = await book(client, world, auth, 480, on_date=TOMORROW + timedelta(days=1))
    assert other_day.json()["ticket"]["number"] == 1


# --- the body's shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"startTime": 1440}, "startTime"),
        ({"startTime": -1}, "startTime"),
        ({"startTime": "570"}, "startTime"),
        ({"startTime": 570.5}, "startTime"),
        ({"serviceTypeId": "not-a-guid"}, "serviceTypeId"),
        ({"channel": "Carrier pigeon"}, "channel"),
        ({"bypassTimeslotCheck": "yes"}, "bypassTimeslotCheck"),
        ({"tagIds": ["x"]}, "tagIds.0"),
        ({"fields": {"not-a-guid": 1}}, "fields.not-a-guid"),
        ({"fields": {str(uuid.UUID(int=1)): {"nested": 1}}}, f"fields.{uuid.UUID(int=1)}"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_malformed_body_is_422_naming_the_field(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    change: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(
        world.appointments_path(TOMORROW), json={**world.body(570), **change}, headers=auth
    )
    problem = assert_problem(response, 422, "validation_failed")
    # Named as the client wrote it, like the service's rule errors (no `body.` prefix).
    assert field in [e["field"] for e in problem["errors"]], problem["errors"]
    assert await appointment_count(engine) == 0


@pytest.mark.parametrize("missing", ["serviceTypeId", "startTime", "channel"])
async def test_missing_required_field_is_422_naming_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], missing: str
) -> None:
    body = world.body(570)
    del body[missing]
    response = await client.post(world.appointments_path(TOMORROW), json=body, headers=auth)
    problem = assert_problem(response, 422, "validation_failed", field=missing)
    assert any(e["message"] == "required" for e in problem["errors"])


@pytest.mark.parametrize(
    ("date", "cu_index", "field"),
    [
        ("2026-02-30", "0", "date"),
        ("2026-12-1", "0", "date"),
        ("tomorrow", "0", "date"),
        ("2026-12-02", "-1", "cuIndex"),
        ("2026-12-02", "x", "cuIndex"),
    ],
)
async def test_bad_route_parameters_are_422_naming_them(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    date: str,
    cu_index: str,
    field: str,
) -> None:
    path = f"/{world.application_id}/calendars/{world.service_id}/{date}/{cu_index}/appointments"
    response = await client.post(path, json=world.body(570), headers=auth)
    assert_problem(response, 422, "validation_failed", field=field)


async def test_service_id_must_be_a_guid(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path = f"/{world.application_id}/calendars/nope/{TOMORROW}/0/appointments"
    response = await client.post(path, json=world.body(570), headers=auth)
    assert_problem(response, 422, "validation_failed", field="serviceId")


async def test_body_that_is_not_json_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.post(
        world.appointments_path(TOMORROW),
        content=b"{not json",
        headers={**auth, "content-type": "application/json"},
    )
    assert_problem(response, 422, "validation_failed")


# --- 404s ------------------------------------------------------------------------------------


async def test_unknown_service_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path = f"/{world.application_id}/calendars/{uuid.uuid4()}/{TOMORROW}/0/appointments"
    assert_problem(
        await client.post(path, json=world.body(570), headers=auth), 404, "service_not_found"
    )


async def test_unknown_calendar_unit_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.post(
        world.appointments_path(TOMORROW, 7), json=world.body(570), headers=auth
    )
    assert_problem(response, 404, "calendar_unit_not_found")


async def test_service_type_of_another_service_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        other_service = await builders.service(conn, world.organization_id, name="Other")
        other_type = await builders.service_type(conn, other_service)
    response = await book(client, world, auth, serviceTypeId=str(other_type))
    assert_problem(response, 404, "service_type_not_found")


async def test_unknown_customer_record_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(client, world, auth, customerRecordId=str(uuid.uuid4()))
    assert_problem(response, 404, "customer_record_not_found")


async def test_customer_record_of_another_organization_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        other_org = await builders.organization(conn)
        stranger = await builders.customer(conn, other_org)
    response = await book(client, world, auth, customerRecordId=str(stranger))
    assert_problem(response, 404, "customer_record_not_found")


async def test_unknown_field_type_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(client, world, auth, fields={str(uuid.uuid4()): "x"})
    assert_problem(response, 404, "field_type_not_found")


async def test_unknown_tag_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    tag_id = uuid.uuid4()
    response = await book(client, world, auth, tagIds=[str(tag_id)])
    assert_problem(response, 404, "tag_not_found")
    assert response.content == orjson.dumps(  # as it always was, byte for byte
        {
            "type": "urn:booking-api:problem:tag_not_found",
            "title": "Not found",
            "status": 404,
            "detail": f"No such tag: {tag_id}.",
            "code": "tag_not_found",
        }
    )


# --- 422 rules -------------------------------------------------------------------------------


async def test_a_booking_breaking_six_rules_answers_one_422_listing_each(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        video_only = await builders.service_type(conn, world.service_id, channels=["Video"])
        choice = await builders.field_type(
            conn, world.organization_id, kind="choice", options=("New", "Renewal")
        )
    response = await book(
        client,
        world,
        auth,
        serviceTypeId=str(video_only),
        channel="Phone",
        language="de",
        contactPhoneNumber="12",
        contactEmail="ada@",
        fields={str(choice): "Other"},
        tagIds=[str(uuid.uuid4())],
    )
    problem = assert_problem(response, 422, "channel_not_supported")
    assert problem["type"] == "urn:booking-api:problem:channel_not_supported"
    assert [(e["code"], e["field"]) for e in problem["errors"]] == [
        ("channel_not_supported", "channel"),
        ("language_not_supported", "language"),
        ("invalid_phone_number", "contactPhoneNumber"),
        ("invalid_email", "contactEmail"),
        ("invalid_field_value", f"fields.{choice}"),
        ("tag_not_found", "tagIds"),
    ]
    assert all(e["message"] and e["type"] == e["code"] for e in problem["errors"])
    assert problem["detail"].startswith("The request breaks 6 rules: ")


async def test_an_unknown_tag_with_another_broken_rule_is_listed_in_the_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(
        client, world, auth, on_date=TODAY - timedelta(days=1), tagIds=[str(uuid.uuid4())]
    )
    problem = assert_problem(response, 422, "tag_not_found")
    assert [(e["type"], e["field"]) for e in problem["errors"]] == [
        ("tag_not_found", "tagIds"),
        ("date_in_past", "date"),
    ]


async def test_an_unknown_service_type_is_404_whatever_else_is_broken(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(
        client, world, auth, serviceTypeId=str(uuid.uuid4()), language="de", contactEmail="a@"
    )
    problem = assert_problem(response, 404, "service_type_not_found")
    assert "errors" not in problem


async def test_channel_not_supported_by_the_service_type_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        video_only = await builders.service_type(conn, world.service_id, channels=["Video"])
    response = await book(client, world, auth, serviceTypeId=str(video_only), channel="Phone")
    assert_problem(response, 422, "channel_not_supported", field="channel")


async def test_language_the_organization_does_not_support_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert_problem(await book(client, world, auth, language="de"), 422, "language_not_supported")


@pytest.mark.parametrize(
    ("flag", "code", "field"),
    [
        ("requires_customer", "customer_required", "customerRecordId"),
        ("requires_phone", "phone_required", "contactPhoneNumber"),
        ("requires_email", "email_required", "contactEmail"),
    ],
)
async def test_data_the_service_requires_must_be_present(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    flag: str,
    code: str,
    field: str,
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, service_options={flag: True})
    response = await book(client, world, bearer(settings, world.client_id))
    assert_problem(response, 422, code, field=field)


@pytest.mark.parametrize("phone", ["12", "+1 000 000 0000", "call me", "+44 20"])
async def test_invalid_phone_number_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], phone: str
) -> None:
    response = await book(client, world, auth, contactPhoneNumber=phone)
    assert_problem(response, 422, "invalid_phone_number", field="contactPhoneNumber")


async def test_national_phone_number_is_parsed_in_the_organization_region(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, default_phone_region="GB")
    response = await book(
        client, world, bearer(settings, world.client_id), contactPhoneNumber="020 7946 0018"
    )
    assert response.status_code == 201, response.text
    assert response.json()["contactPhoneNumber"] == "+442079460018"


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com"])
async def test_invalid_email_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], email: str
) -> None:
    assert_problem(await book(client, world, auth, contactEmail=email), 422, "invalid_email")


@pytest.mark.parametrize(
    ("kind", "options", "value"),
    [
        ("text", (), 5),
        ("text", (), "x" * 2001),
        ("number", (), "5"),
        ("number", (), True),
        ("boolean", (), "true"),
        ("date", (), "2026-13-01"),
        ("date", (), 20261201),
        ("choice", ("New", "Renewal"), "Other"),
    ],
)
async def test_field_value_of_the_wrong_kind_is_422(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    kind: str,
    options: tuple[str, ...],
    value: Any,
) -> None:
    async with engine.begin() as conn:
        field_id = await builders.field_type(
            conn, world.organization_id, kind=kind, options=options
        )
    response = await book(client, world, auth, fields={str(field_id): value})
    assert_problem(response, 422, "invalid_field_value", field=f"fields.{field_id}")


@pytest.mark.parametrize(
    ("kind", "options", "value"),
    [
        ("text", (), "hello"),
        ("number", (), 2.5),
        ("boolean", (), False),
        ("date", (), "2026-12-24"),
        ("choice", ("New", "Renewal"), "Renewal"),
    ],
)
async def test_field_value_of_the_right_kind_is_stored(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    kind: str,
    options: tuple[str, ...],
    value: Any,
) -> None:
    async with engine.begin() as conn:
        field_id = await builders.field_type(
            conn, world.organization_id, kind=kind, options=options
        )
    response = await book(client, world, auth, fields={str(field_id): value})
    assert response.status_code == 201, response.text
    assert response.json()["fields"] == {str(field_id): value}


async def test_required_field_missing_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        field_id = await builders.field_type(conn, world.organization_id, required=True)
    assert_problem(
        await book(client, world, auth), 422, "required_field_missing", field=f"fields.{field_id}"
    )


async def test_duplicate_tag_ids_are_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        tag_id = str(await builders.tag(conn, world.organization_id))
    assert_problem(
        await book(client, world, auth, tagIds=[tag_id, tag_id]), 422, "duplicate_tag_ids"
    )


async def test_date_in_the_past_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(client, world, auth, on_date=TODAY - timedelta(days=1))
    assert_problem(response, 422, "date_in_past", field="date")


async def test_start_time_already_passed_today_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 10, 5, tzinfo=UTC))  # London is on UTC in December
    assert_problem(await book(client, world, auth, 600, on_date=TODAY), 422, "start_time_passed")
    assert (await book(client, world, auth, 610, on_date=TODAY)).status_code == 201


async def test_date_beyond_the_booking_window_is_422(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, service_options={"booking_window_days": 7})
    auth = bearer(settings, world.client_id)
    assert (await book(client, world, auth, on_date=TODAY + timedelta(days=7))).status_code == 201
    response = await book(client, world, auth, on_date=TODAY + timedelta(days=8))
    assert_problem(response, 422, "outside_booking_window", field="date")


async def test_closed_date_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
    assert_problem(await book(client, world, auth), 422, "closed_date")


async def test_special_hours_replace_the_weekly_hours(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW, hours=[(1200, 1260)])
    assert_problem(await book(client, world, auth, 570), 422, "outside_working_hours")
    assert (await book(client, world, auth, 1200)).status_code == 201


@pytest.mark.parametrize(
    "start",
    [
        470,  # before opening
        700,  # 11:40 + 30 runs past 12:00 into the lunch break
        730,  # inside the break
        1000,  # 16:40 + 30 runs past closing
        1030,  # after closing
    ],
)
async def test_start_outside_working_hours_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: int
) -> None:
    assert_problem(
        await book(client, world, auth, start), 422, "outside_working_hours", field="startTime"
    )


async def test_start_off_the_slot_grid_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert_problem(
        await book(client, world, auth, 575), 422, "start_not_on_grid", field="startTime"
    )


# --- 409 and bypass --------------------------------------------------------------------------


async def test_taken_slot_answers_409_with_nearest_vacancies(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 570)).status_code == 201
    problem = assert_problem(await book(client, world, auth, 570), 409, "slot_not_vacant")
    # 550 and 560 would overlap 570-600; 540 ends at 570, 600 starts as it ends.
    assert problem["nearestVacancies"] == [540, 600, 530]


async def test_overlapping_interval_is_409_even_at_another_start(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 570)).status_code == 201
    assert_problem(await book(client, world, auth, 580), 409, "slot_not_vacant")


async def test_cancelled_appointment_does_not_occupy_the_slot(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    first = (await book(client, world, auth, 570)).json()
    cancel = await client.delete(
        f"{world.appointments_path(TOMORROW)}/{first['caseId']}", headers=auth
    )
    assert cancel.status_code == 200, cancel.text
    assert (await book(client, world, auth, 570)).status_code == 201


async def test_bypass_books_a_taken_slot_and_off_the_grid(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert (await book(client, world, auth, 570)).status_code == 201
    assert (await book(client, world, auth, 570, bypassTimeslotCheck=True)).status_code == 201
    assert (await book(client, world, auth, 575, bypassTimeslotCheck=True)).status_code == 201


async def test_a_booking_past_capacity_with_the_bypass_says_so_in_every_answer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    """Capacity is 1: the second booking of 570 overlaps the first, which the bypass allows."""
    first = await book(client, world, auth, 570)
    assert first.status_code == 201, first.text
    assert first.json()["bypassedTimeslotCheck"] is False
    over = await book(client, world, auth, 570, bypassTimeslotCheck=True)
    assert over.status_code == 201, over.text
    assert over.json()["bypassedTimeslotCheck"] is True

    read = await client.get(over.headers["location"], headers=auth)
    assert read.json()["bypassedTimeslotCheck"] is True
    listed = await client.get(world.appointments_path(TOMORROW), headers=auth)
    by_case = {a["caseId"]: a["bypassedTimeslotCheck"] for a in listed.json()}
    assert by_case == {first.json()["caseId"]: False, over.json()["caseId"]: True}


async def test_bypass_still_refuses_outside_working_hours_and_closed_dates(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    response = await book(client, world, auth, 730, bypassTimeslotCheck=True)
    assert_problem(response, 422, "outside_working_hours")
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
    assert_problem(
        await book(client, world, auth, 570, bypassTimeslotCheck=True), 422, "closed_date"
    )


async def test_bypass_still_refuses_the_past_and_the_booking_window(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(
        client, world, auth, on_date=TODAY - timedelta(days=1), bypassTimeslotCheck=True
    )
    assert_problem(response, 422, "date_in_past")
    response = await book(
        client, world, auth, on_date=TODAY + timedelta(days=61), bypassTimeslotCheck=True
    )
    assert_problem(response, 422, "outside_booking_window")


async def test_capacity_two_admits_two_overlapping_bookings_then_409(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, capacity=2)
    auth = bearer(settings, world.client_id)
    assert (await book(client, world, auth, 570)).status_code == 201
    assert (await book(client, world, auth, 580)).status_code == 201
    assert_problem(await book(client, world, auth, 590), 409, "slot_not_vacant")
    assert (await book(client, world, auth, 600)).status_code == 201


# --- atomicity -------------------------------------------------------------------------------


async def test_failure_after_the_insert_leaves_no_appointment_and_no_ticket_consumed(
    app: FastAPI, client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async def insert_then_fail(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> int:
        await conn.fetchval(sql, *args)
        raise RuntimeError("injected failure after the insert")

    async with inject_fault(app, "INSERT INTO appointment", insert_then_fail):
        response = await book(client, world, auth, 570)
    assert_problem(response, 500, "internal_error")
    assert "injected" not in response.text
    assert "Traceback" not in response.text
    assert await appointment_count(engine) == 0
    async with engine.connect() as conn:
        assert (
            await conn.execute(select(func.count()).select_from(TicketCounter))
        ).scalar_one() == 0

    retry = await book(client, world, auth, 570)
    assert retry.status_code == 201
    assert retry.json()["ticket"]["number"] == 1


async def test_database_error_in_the_middle_leaves_nothing(
    app: FastAPI, client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async def insert_then_break(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> int:
        number: int = await conn.fetchval(sql, *args)
        await conn.execute("SELECT 1 / 0")  # a real database error after the insert
        return number

    async with inject_fault(app, "INSERT INTO appointment", insert_then_break):
        response = await book(client, world, auth, 570)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "division" not in response.text
    assert await appointment_count(engine) == 0
