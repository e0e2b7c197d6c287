"""Listing a calendar's appointments, reading one, and cancelling, through the HTTP API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.models import Appointment
from tests import builders
from tests.builders import World
from tests.conftest import NOW, TODAY, FakeClock, bearer
from tests.kit import assert_problem, book, cancel

TOMORROW = TODAY + timedelta(days=1)


async def booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: int, **body: Any
) -> dict[str, Any]:
    response = await book(client, world, auth, start, **body)
    assert response.status_code == 201, response.text
    appointment: dict[str, Any] = response.json()
    return appointment


async def listing(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    on_date: date = TOMORROW,
    cu_index: int | None = None,
    **params: str,
) -> list[dict[str, Any]]:
    response = await client.get(
        world.appointments_path(on_date, cu_index),
        params=params,
        headers=auth,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def vacant(client: httpx.AsyncClient, world: World, auth: dict[str, str]) -> list[int]:
    response = await client.get(
        world.calendar_path(TOMORROW) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    found: list[int] = response.json()["slots"]
    return found


async def stored_row(engine: AsyncEngine, case_id: str) -> Any:
    """The appointment's row as stored (every column), or None."""
    a = Appointment
    async with engine.connect() as conn:
        return (
            await conn.execute(select(*a.__table__.c).where(a.id == uuid.UUID(case_id)))
        ).one_or_none()


# --- list ---------------------------------------------------------------------------------------


async def test_empty_calendar_lists_no_appointments(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert await listing(client, world, auth) == []


async def test_list_is_ordered_by_start_in_the_booking_shape(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    created = [await booked(client, world, auth, start) for start in (900, 480, 600)]
    items = await listing(client, world, auth)
    assert [i["appointment"]["start"] for i in items] == [480, 600, 900]
    by_start = {c["appointment"]["start"]: c for c in created}
    assert items == [by_start[480], by_start[600], by_start[900]]


async def test_same_start_is_ordered_by_ticket(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    first = await booked(client, world, auth, 600)
    second = await booked(client, world, auth, 600, bypassTimeslotCheck=True)
    items = await listing(client, world, auth)
    assert [i["caseId"] for i in items] == [first["caseId"], second["caseId"]]
    assert [i["ticket"]["number"] for i in items] == [1, 2]


async def test_list_includes_cancelled_appointments_with_their_status(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    kept = await booked(client, world, auth, 480)
    gone = await booked(client, world, auth, 540)
    assert (await cancel(client, world, auth, gone["caseId"])).status_code == 200
    items = await listing(client, world, auth)
    assert [(i["caseId"], i["status"]) for i in items] == [
        (kept["caseId"], "Planned"),
        (gone["caseId"], "Cancelled"),
    ]
    assert items[0]["dateCancelled"] is None
    assert items[1]["dateCancelled"] is not None


async def test_list_shows_only_that_calendar(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.calendar_unit(conn, world.service_id, cu_index=1)
    mine = await booked(client, world, auth, 480)
    await booked(client, world, auth, 480, on_date=TOMORROW + timedelta(days=1))
    response = await client.post(
        world.appointments_path(TOMORROW, 1), json=world.body(480), headers=auth
    )
    assert response.status_code == 201
    assert [i["caseId"] for i in await listing(client, world, auth)] == [mine["caseId"]]
    assert [i["caseId"] for i in await listing(client, world, auth, cu_index=1)] == [
        response.json()["caseId"]
    ]


async def test_customer_record_filter_lists_only_that_customers_appointments(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        ada = await builders.customer(conn, world.organization_id)
        grace = await builders.customer(conn, world.organization_id, display_name="Grace Hopper")
    a1 = await booked(client, world, auth, 480, customerRecordId=str(ada))
    await booked(client, world, auth, 540, customerRecordId=str(grace))
    a2 = await booked(client, world, auth, 600, cusotmerRecordId=str(ada))
    await booked(client, world, auth, 660)

    items = await listing(client, world, auth, customerRecordId=str(ada))
    assert [i["caseId"] for i in items] == [a1["caseId"], a2["caseId"]]
    assert {i["customer"]["displayName"] for i in items} == {"Ada Lovelace"}
    assert len(await listing(client, world, auth)) == 4
    assert await listing(client, world, auth, customerRecordId=str(uuid.uuid4())) == []


async def test_malformed_customer_record_filter_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(
        world.appointments_path(TOMORROW), params={"customerRecordId": "ada"}, headers=auth
    )
    assert_problem(response, 422, "validation_failed", field="customerRecordId")


async def test_list_of_an_unknown_calendar_unit_or_service_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(world.appointments_path(TOMORROW, 4), headers=auth)
    assert_problem(response, 404, "calendar_unit_not_found")
    path = f"/{world.application_id}/calendars/{uuid.uuid4()}/{TOMORROW}/0/appointments"
    assert_problem(await client.get(path, headers=auth), 404, "service_not_found")


async def test_list_needs_the_role(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    response = await client.get(
        world.appointments_path(TOMORROW), headers=bearer(settings, world.client_id, roles=[])
    )
    assert_problem(response, 403, "role_missing")


# --- read one -----------------------------------------------------------------------------------


async def test_location_of_a_booking_reads_the_same_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await book(client, world, auth, 570)
    assert response.status_code == 201
    read = await client.get(response.headers["location"], headers=auth)
    assert read.status_code == 200, read.text
    assert read.json() == response.json()
    by_id = await client.get(
        f"/{world.application_id}/appointments/{response.json()['caseId']}", headers=auth
    )
    assert by_id.json() == response.json()


async def test_unknown_case_id_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(
        f"/{world.application_id}/appointments/{uuid.uuid4()}", headers=auth
    )
    assert_problem(response, 404, "appointment_not_found")


async def test_malformed_case_id_is_422(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get(f"/{world.application_id}/appointments/nope", headers=auth)
    assert_problem(response, 422, "validation_failed", field="caseId")


async def test_read_one_needs_the_role(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], settings: Settings
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    response = await client.get(
        f"/{world.application_id}/appointments/{case_id}",
        headers=bearer(settings, world.client_id, roles=[]),
    )
    assert_problem(response, 403, "role_missing")


# --- cancel -------------------------------------------------------------------------------------


async def test_cancel_sets_cancelled_with_the_cancel_time(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
) -> None:
    original = await booked(client, world, auth, 570)
    clock.advance(minutes=90)
    response = await cancel(client, world, auth, original["caseId"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "Cancelled"
    assert body["dateCancelled"] == "2026-12-01T08:30:00.000000Z"
    assert body["statusDate"] == "2026-12-01T08:30:00.000000Z"
    # Everything else is the booking as it was.
    unchanged = {
        k: v for k, v in body.items() if k not in ("status", "statusDate", "dateCancelled")
    }
    assert unchanged == {
        k: v for k, v in original.items() if k not in ("status", "statusDate", "dateCancelled")
    }
    read = await client.get(f"/{world.application_id}/appointments/{body['caseId']}", headers=auth)
    assert read.json() == body


async def test_cancel_keeps_the_row_in_the_database(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    assert (await cancel(client, world, auth, case_id)).status_code == 200
    appointment = await stored_row(engine, case_id)
    assert appointment is not None
    assert appointment.status == "Cancelled"
    assert appointment.cancelled_at == NOW
    assert appointment.status_date == NOW
    assert appointment.start_minute == 570
    assert appointment.ticket_number == 1


async def test_cancelled_slot_is_vacant_again_and_can_be_booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    assert 570 not in await vacant(client, world, auth)
    assert (await cancel(client, world, auth, case_id)).status_code == 200
    assert 570 in await vacant(client, world, auth)
    again = await book(client, world, auth, 570)
    assert again.status_code == 201, again.text
    assert again.json()["ticket"]["number"] == 2  # the cancelled booking keeps its number


async def test_cancelling_twice_answers_200_with_the_same_body(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    first = await cancel(client, world, auth, case_id)
    clock.advance(minutes=5)
    second = await cancel(client, world, auth, case_id)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    # Even once its time has passed, a cancelled appointment stays cancelled.
    clock.set(datetime(2026, 12, 3, tzinfo=UTC))
    third = await cancel(client, world, auth, case_id)
    assert third.status_code == 200, third.text
    assert third.json() == first.json()


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 12, 2, 9, 30, tzinfo=UTC),  # at its start
        datetime(2026, 12, 2, 9, 45, tzinfo=UTC),  # while it runs
        datetime(2026, 12, 3, 8, 0, tzinfo=UTC),  # the next day
    ],
)
async def test_cancelling_an_appointment_that_has_started_is_422(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    engine: AsyncEngine,
    now: datetime,
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    clock.set(now)
    assert_problem(await cancel(client, world, auth, case_id), 422, "appointment_in_past")
    assert (await stored_row(engine, case_id)).status == "Planned"


async def test_cancelling_just_before_the_start_succeeds(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    clock.set(datetime(2026, 12, 2, 9, 29, 59, tzinfo=UTC))
    assert (await cancel(client, world, auth, case_id)).status_code == 200


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("Waiting", "appointment_checked_in"),
        ("Pending", "appointment_checked_in"),
        ("Completed", "appointment_closed"),
        ("NoShow", "appointment_closed"),
    ],
)
async def test_cancelling_a_checked_in_or_closed_appointment_is_422(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    status: str,
    code: str,
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE appointment SET status = :status WHERE id = :id"),
            {"status": status, "id": case_id},
        )
    assert_problem(await cancel(client, world, auth, case_id), 422, code)
    row = await stored_row(engine, case_id)
    assert (row.status, row.cancelled_at) == (status, None)
    # It still holds its slot.
    assert 570 not in await vacant(client, world, auth)


async def test_case_id_of_another_calendar_path_is_404_and_left_alone(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.calendar_unit(conn, world.service_id, cu_index=1)
        other_service = await builders.service(conn, world.organization_id, name="Other")
        await builders.calendar_unit(conn, other_service)
    case_id = (await booked(client, world, auth, 570))["caseId"]

    other_date = await cancel(client, world, auth, case_id, on_date=TOMORROW + timedelta(days=1))
    assert_problem(other_date, 404, "appointment_not_found")
    other_unit = await cancel(client, world, auth, case_id, cu_index=1)
    assert_problem(other_unit, 404, "appointment_not_found")
    other_path = (
        f"/{world.application_id}/calendars/{other_service}/{TOMORROW}/0/appointments/{case_id}"
    )
    assert_problem(await client.delete(other_path, headers=auth), 404, "appointment_not_found")
    assert (await stored_row(engine, case_id)).status == "Planned"


async def test_cancelling_an_unknown_case_id_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert_problem(
        await cancel(client, world, auth, str(uuid.uuid4())), 404, "appointment_not_found"
    )


async def test_cancel_on_an_unknown_calendar_unit_or_service_is_404(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    assert_problem(
        await cancel(client, world, auth, case_id, cu_index=9), 404, "calendar_unit_not_found"
    )
    path = f"/{world.application_id}/calendars/{uuid.uuid4()}/{TOMORROW}/0/appointments/{case_id}"
    assert_problem(await client.delete(path, headers=auth), 404, "service_not_found")


async def test_cancel_needs_the_role(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    response = await cancel(
        client, world, bearer(settings, world.client_id, roles=["Reader"]), case_id
    )
    assert_problem(response, 403, "role_missing")
    assert_problem(await cancel(client, world, {}, case_id), 401, "token_missing")
    assert (await stored_row(engine, case_id)).status == "Planned"
