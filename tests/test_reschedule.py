"""Reschedule: an appointment moves to another start, calendar unit or date of its service,
keeping its case id and service type; the new place is taken and the old one freed at once,
and a refusal changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import builders
from tests.builders import World
from tests.kit import TOMORROW, assert_problem, book, cancel, hold, inject_fault, vacancies

LATER = TOMORROW + timedelta(days=1)


async def booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: int = 570, **body: Any
) -> dict[str, Any]:
    response = await book(client, world, auth, start, **body)
    assert response.status_code == 201, response.text
    appointment: dict[str, Any] = response.json()
    return appointment


async def reschedule(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    case_id: str,
    start: int,
    on_date: Any = TOMORROW,
    cu_index: int = 0,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        f"{world.appointments_path(TOMORROW)}/{case_id}/actions/reschedule",
        json={"date": str(on_date), "cuIndex": cu_index, "startTime": start, **body},
        headers=auth | (headers or {}),
    )


async def test_a_move_within_the_day_keeps_the_case_and_ticket_and_says_where_it_was(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    original = await booked(client, world, auth, 570)

    moved = await reschedule(client, world, auth, original["caseId"], 660)

    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["caseId"] == original["caseId"]
    assert body["appointment"]["start"] == 660
    assert body["appointment"]["timeLocal"] == f"{TOMORROW}T11:00:00"
    assert body["ticket"] == original["ticket"]
    assert body["serviceTypeId"] == original["serviceTypeId"]
    assert body["rescheduledFrom"] == {"date": f"{TOMORROW}T00:00:00", "cuIndex": 0, "start": 570}
    slots = await vacancies(client, world, auth)
    assert 570 in slots
    assert 660 not in slots
    listed = (await client.get(world.appointments_path(TOMORROW), headers=auth)).json()
    assert [a["caseId"] for a in listed] == [original["caseId"]]


async def test_a_move_onto_its_own_place_shifted_is_no_conflict(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    moved = await reschedule(client, world, auth, case_id, 580)
    assert moved.status_code == 200, moved.text


async def test_a_move_to_another_date_takes_that_dates_next_ticket(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    await booked(client, world, auth, 480, on_date=LATER)  # ticket 1 of LATER
    original = await booked(client, world, auth, 570)

    moved = await reschedule(client, world, auth, original["caseId"], 600, LATER)

    assert moved.status_code == 200, moved.text
    assert moved.json()["ticket"]["number"] == 2
    assert moved.json()["appointment"]["date"] == f"{LATER}T00:00:00"
    assert 570 in await vacancies(client, world, auth)
    assert 600 not in await vacancies(client, world, auth, LATER)
    assert (await booked(client, world, auth, 800))["ticket"]["number"] == 2  # TOMORROW's next


async def test_a_move_to_another_calendar_unit(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.calendar_unit(conn, world.service_id, cu_index=1)
    case_id = (await booked(client, world, auth, 570))["caseId"]
    moved = await reschedule(client, world, auth, case_id, 570, cu_index=1)
    assert moved.json()["appointment"]["cuIndex"] == 1
    assert 570 in await vacancies(client, world, auth)
    # It lives in its new calendar now: cancelling it there works.
    assert (await cancel(client, world, auth, case_id, cu_index=1)).status_code == 200


async def test_a_move_onto_a_taken_slot_is_409_and_changes_nothing(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    await booked(client, world, auth, 660)

    refused = await reschedule(client, world, auth, case_id, 670)

    problem = assert_problem(refused, 409, "slot_not_vacant")
    assert problem["nearestVacancies"] == [690, 630, 620]
    read = await client.get(f"/{world.application_id}/appointments/{case_id}", headers=auth)
    assert read.json()["appointment"]["start"] == 570
    assert read.json()["rescheduledFrom"] is None
    assert 570 not in await vacancies(client, world, auth)


@pytest.mark.parametrize(
    ("start", "on_date", "code"),
    [
        (575, TOMORROW, "start_not_on_grid"),
        (1000, TOMORROW, "outside_working_hours"),
        (570, TOMORROW + timedelta(days=61), "outside_booking_window"),
        (570, TOMORROW - timedelta(days=2), "date_in_past"),
    ],
)
async def test_a_move_that_breaks_a_booking_rule_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    start: int,
    on_date: Any,
    code: str,
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    assert_problem(await reschedule(client, world, auth, case_id, start, on_date), 422, code)
    read = await client.get(f"/{world.application_id}/appointments/{case_id}", headers=auth)
    assert read.json()["appointment"]["start"] == 570


async def test_a_move_with_a_hold_takes_the_held_place(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    held = (await hold(client, world, auth, 660, on_date=LATER)).json()
    token = held["reservationToken"]

    moved = await reschedule(client, world, auth, case_id, 660, LATER, reservationToken=token)

    assert moved.status_code == 200, moved.text
    assert moved.json()["appointment"]["reservationToken"] == token
    again = await book(client, world, auth, 660, on_date=LATER, reservationToken=token)
    assert_problem(again, 409, "reservation_expired")


async def test_a_move_with_a_hold_of_another_place_is_409_and_keeps_the_hold(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    token = (await hold(client, world, auth, 660)).json()["reservationToken"]
    mismatch = await reschedule(client, world, auth, case_id, 800, reservationToken=token)
    assert_problem(mismatch, 409, "reservation_mismatch")
    assert 660 not in await vacancies(client, world, auth)


async def test_a_cancelled_appointment_cannot_be_rescheduled(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    await cancel(client, world, auth, case_id)
    assert_problem(
        await reschedule(client, world, auth, case_id, 660), 422, "appointment_cancelled"
    )


async def test_an_appointment_of_another_calendar_is_not_found(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570, on_date=LATER))["caseId"]
    missing = await reschedule(client, world, auth, case_id, 660)  # path says TOMORROW
    assert_problem(missing, 404, "appointment_not_found")


async def test_a_retried_reschedule_with_an_idempotency_key_replays_the_answer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    key = {"Idempotency-Key": "move-1"}
    first = await reschedule(client, world, auth, case_id, 660, headers=key)
    retry = await reschedule(client, world, auth, case_id, 660, headers=key)
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    other = await reschedule(client, world, auth, case_id, 800, headers=key)
    assert_problem(other, 422, "idempotency_key_reused")


async def test_a_failure_after_the_move_leaves_the_appointment_where_it_was(
    app: FastAPI, client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    case_id = (await booked(client, world, auth, 570))["caseId"]
    token = (await hold(client, world, auth, 660, on_date=LATER)).json()["reservationToken"]

    async def move_then_fail(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> int:
        await conn.fetchval(sql, *args)
        raise RuntimeError("injected failure after the move")

    async with inject_fault(app, "rescheduled_from_date=appointment.on_date", move_then_fail):
        failed = await reschedule(client, world, auth, case_id, 660, LATER, reservationToken=token)
    assert_problem(failed, 500, "internal_error")

    read = await client.get(f"/{world.application_id}/appointments/{case_id}", headers=auth)
    assert (read.json()["appointment"]["date"], read.json()["appointment"]["start"]) == (
        f"{TOMORROW}T00:00:00",
        570,
    )
    assert 570 not in await vacancies(client, world, auth)
    assert 660 not in await vacancies(client, world, auth, LATER)  # the hold is still live
    moved = await reschedule(client, world, auth, case_id, 660, LATER, reservationToken=token)
    assert moved.status_code == 200, moved.text
    assert moved.json()["ticket"]["number"] == 1  # the failed move gave LATER's number back
