"""Check-in: a planned appointment moves to the service's initial case status (Waiting or
Pending) inside its check-in window; a kiosk cannot check in an appointment that prevents self
check-in; a repeat answers the same, never a toggle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, FakeClock, bearer
from tests.kit import assert_problem, book, cancel, check_in

# Booked today at 09:00 London (09:00 UTC in December); the default window is 60 minutes before
# the start until 15 after.
START = 540
STARTS_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def booked(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await book(client, world, auth, START, on_date=TODAY, **body)
    assert response.status_code == 201, response.text
    appointment: dict[str, Any] = response.json()
    return appointment


async def test_checking_in_moves_the_case_to_waiting_and_a_repeat_answers_the_same(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))

    first = await check_in(client, world, auth, case_id)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "Waiting"
    assert first.json()["statusDate"] == "2026-12-01T08:30:00.000000Z"

    clock.set(datetime(2026, 12, 1, 8, 40, tzinfo=UTC))
    again = await check_in(client, world, auth, case_id)
    assert again.status_code == 200
    assert again.json() == first.json()
    read = await client.get(f"/{world.application_id}/appointments/{case_id}", headers=auth)
    assert read.json()["status"] == "Waiting"


async def test_a_service_whose_initial_case_status_is_pending_checks_in_to_pending(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, clock: FakeClock
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn, service_options={"initial_case_status": "Pending"})
    auth = bearer(settings, world.client_id)
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert (await check_in(client, world, auth, case_id)).json()["status"] == "Pending"


async def test_a_kiosk_cannot_check_in_an_appointment_that_prevents_self_check_in(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth, preventSelfCheckIn=True))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))

    kiosk = await check_in(client, world, auth, case_id, "Kiosk")
    assert_problem(kiosk, 403, "self_check_in_not_allowed")
    agent = await check_in(client, world, auth, case_id, "Agent")
    assert agent.json()["status"] == "Waiting"
    assert_problem(
        await check_in(client, world, auth, case_id, "Kiosk"), 403, "self_check_in_not_allowed"
    )


async def test_a_kiosk_checks_in_an_appointment_that_allows_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert (await check_in(client, world, auth, case_id, "Kiosk")).json()["status"] == "Waiting"


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (datetime(2026, 12, 1, 7, 59, 59, tzinfo=UTC), False),  # before the window opens
        (datetime(2026, 12, 1, 8, 0, tzinfo=UTC), True),  # 60 minutes before
        (datetime(2026, 12, 1, 9, 15, tzinfo=UTC), True),  # 15 minutes after
        (datetime(2026, 12, 1, 9, 15, 1, tzinfo=UTC), False),  # after it closed
    ],
)
async def test_the_check_in_window_is_enforced(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    now: datetime,
    allowed: bool,
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(now)
    response = await check_in(client, world, auth, case_id)
    if allowed:
        assert response.json()["status"] == "Waiting"
    else:
        assert_problem(response, 422, "outside_check_in_window")


async def test_the_check_in_window_is_configured_per_service(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, clock: FakeClock
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(
            conn, service_options={"check_in_minutes_before": 10, "check_in_minutes_after": 0}
        )
    auth = bearer(settings, world.client_id)
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 49, tzinfo=UTC))
    assert_problem(await check_in(client, world, auth, case_id), 422, "outside_check_in_window")
    clock.set(datetime(2026, 12, 1, 8, 50, tzinfo=UTC))
    assert (await check_in(client, world, auth, case_id)).status_code == 200


async def test_a_checked_in_appointment_can_be_neither_cancelled_nor_rescheduled(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    await check_in(client, world, auth, case_id)

    refused = await cancel(client, world, auth, case_id, TODAY)
    assert_problem(refused, 422, "appointment_checked_in")
    moved = await client.post(
        f"{world.appointments_path(TODAY)}/{case_id}/actions/reschedule",
        json={"date": str(TODAY), "cuIndex": 0, "startTime": 660},
        headers=auth,
    )
    assert_problem(moved, 422, "appointment_checked_in")


async def test_a_cancelled_appointment_cannot_be_checked_in(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    await cancel(client, world, auth, case_id, TODAY)
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert_problem(await check_in(client, world, auth, case_id), 422, "appointment_cancelled")


async def test_an_unknown_mode_or_appointment_is_refused(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    assert_problem(await check_in(client, world, auth, case_id, "Toggle"), 422, "validation_failed")
    missing = await check_in(client, world, auth, "6f1c2a4e-0000-4000-8000-000000000999")
    assert_problem(missing, 404, "appointment_not_found")


async def test_a_retried_check_in_with_an_idempotency_key_replays_the_answer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    case_id = (await booked(client, world, auth))["caseId"]
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    key = {"Idempotency-Key": "check-in-1"}
    first = await check_in(client, world, auth, case_id, **key)
    clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # past the window: a fresh one fails
    retry = await check_in(client, world, auth, case_id, **key)
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
