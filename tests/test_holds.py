"""Slot holds: a held slot is not vacant to anyone else until it is released, consumed by the
booking that names its token, or expires; expiry is the reading statement's judgement, not a
sweeper's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.service.holds import HOLD_RETENTION
from booking.settings import Settings
from booking.store.db import Database
from booking.store.holds import purge_ended
from booking.store.models import SlotHold
from tests import builders
from tests.builders import World
from tests.conftest import NOW, TODAY, FakeClock, bearer
from tests.kit import TOMORROW, assert_problem, book, hold, vacancies

# The default world: 10-minute grid, 30-minute type, capacity 1, 08-12 and 13-17.
OVERLAPPING_570 = {550, 560, 570, 580, 590}


def expiry(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def token_of(client: httpx.AsyncClient, world: World, auth: dict[str, str]) -> str:
    response = await hold(client, world, auth, 570)
    assert response.status_code == 201, response.text
    token: str = response.json()["reservationToken"]
    return token


async def hold_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SlotHold))).scalar_one())


# --- holding ------------------------------------------------------------------------------------


async def test_a_hold_answers_201_with_an_unguessable_token_its_expiry_and_its_place(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    first = await hold(client, world, auth, 570)
    second = await hold(client, world, auth, 660)

    assert first.status_code == 201, first.text
    body = first.json()
    token = body.pop("reservationToken")
    assert len(token) >= 22
    assert token != second.json()["reservationToken"]
    assert body == {
        "reservationExpiryDate": expiry(300),  # the default: 5 minutes
        "serviceId": str(world.service_id),
        "date": f"{TOMORROW}T00:00:00",
        "cuIndex": 0,
        "start": 570,
        "duration": 30,
        "serviceTypeId": str(world.service_type_id),
        "channel": "FaceToFace",
    }


async def test_a_held_slot_is_neither_listed_nor_bookable_nor_holdable(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    await token_of(client, world, auth)

    assert not OVERLAPPING_570 & set(await vacancies(client, world, auth))
    taken = assert_problem(await book(client, world, auth, 570), 409, "slot_not_vacant")
    assert taken["nearestVacancies"] == [540, 600, 530]
    again = assert_problem(await hold(client, world, auth, 580), 409, "slot_not_vacant")
    assert again["nearestVacancies"] == [600, 610, 540]


async def test_a_live_hold_counts_in_the_calendars_minutes_but_is_no_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    await token_of(client, world, auth)
    response = await client.get(
        f"/{world.application_id}/calendars/{world.service_id}/{TOMORROW}", headers=auth
    )
    stats = response.json()[0]["stats"]
    assert (stats["minutesBooked"], stats["appointmentCount"]) == (30, 0)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"start": 575}, "start_not_on_grid"),
        ({"start": 1000}, "outside_working_hours"),
        ({"on_date": TODAY - timedelta(days=1)}, "date_in_past"),
        ({"on_date": TODAY + timedelta(days=61)}, "outside_booking_window"),
        ({"start": 420, "on_date": TODAY}, "start_time_passed"),
    ],
)
async def test_a_hold_obeys_every_booking_rule_that_needs_no_customer_data(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    changes: dict[str, Any],
    code: str,
) -> None:
    start = changes.pop("start", 570)
    assert_problem(await hold(client, world, auth, start, **changes), 422, code)


async def test_a_hold_on_a_closed_date_or_in_an_unsupported_channel_is_refused(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await builders.exception(conn, world.service_id, TOMORROW)
        video_only = await builders.service_type(conn, world.service_id, channels=("Video",))
    assert_problem(await hold(client, world, auth, 570), 422, "closed_date")
    assert_problem(
        await hold(
            client,
            world,
            auth,
            570,
            on_date=TOMORROW + timedelta(days=1),
            serviceTypeId=str(video_only),
        ),
        422,
        "channel_not_supported",
        "channel",
    )


async def test_hold_seconds_up_to_the_maximum_of_fifteen_minutes(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    longest = await hold(client, world, auth, 570, holdSeconds=900)
    assert longest.json()["reservationExpiryDate"] == expiry(900)
    assert_problem(
        await hold(client, world, auth, 660, holdSeconds=901), 422, "hold_too_long", "holdSeconds"
    )


async def test_hold_lengths_are_configured_per_application(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.begin() as conn:
        world = await builders.world(
            conn, application_options={"hold_default_seconds": 60, "hold_max_seconds": 120}
        )
    auth = bearer(settings, world.client_id)
    assert (await hold(client, world, auth, 570)).json()["reservationExpiryDate"] == expiry(60)
    assert_problem(await hold(client, world, auth, 660, holdSeconds=121), 422, "hold_too_long")


async def test_a_retried_hold_with_an_idempotency_key_answers_the_first_hold(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    key = auth | {"Idempotency-Key": "hold-1"}
    first = await client.post(world.reservations_path(TOMORROW), json=world.body(570), headers=key)
    retry = await client.post(world.reservations_path(TOMORROW), json=world.body(570), headers=key)

    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert await hold_rows(engine) == 1


# --- releasing and extending --------------------------------------------------------------------


async def test_releasing_frees_the_slot_at_once_and_again_answers_204(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    token = await token_of(client, world, auth)
    path = f"{world.reservations_path(TOMORROW)}/{token}"

    assert (await client.delete(path, headers=auth)).status_code == 204
    assert set(await vacancies(client, world, auth)) >= OVERLAPPING_570
    assert (await client.delete(path, headers=auth)).status_code == 204
    assert_problem(
        await book(client, world, auth, 570, reservationToken=token), 409, "reservation_expired"
    )


async def test_a_hold_is_extended_once_up_to_the_maximum(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    token = await token_of(client, world, auth)
    path = f"{world.reservations_path(TOMORROW)}/{token}"
    clock.advance(seconds=240)

    too_long = await client.patch(path, json={"holdSeconds": 661}, headers=auth)
    assert_problem(too_long, 422, "hold_too_long", "holdSeconds")  # 240 + 661 > 900
    extended = await client.patch(path, json={"holdSeconds": 660}, headers=auth)
    assert extended.status_code == 200, extended.text
    assert extended.json()["reservationExpiryDate"] == expiry(900)
    again = await client.patch(path, json={}, headers=auth)
    assert_problem(again, 409, "reservation_already_extended")


async def test_an_extension_without_a_length_lasts_until_the_maximum(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    token = await token_of(client, world, auth)
    path = f"{world.reservations_path(TOMORROW)}/{token}"
    extended = await client.patch(path, json={}, headers=auth)
    assert extended.json()["reservationExpiryDate"] == expiry(900)


# --- expiry -------------------------------------------------------------------------------------


async def test_an_expired_hold_frees_the_slot_one_second_later_with_no_purge_having_run(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    engine: AsyncEngine,
) -> None:
    token = await token_of(client, world, auth)
    calendars = f"/{world.application_id}/calendars/{world.service_id}/{TOMORROW}"

    clock.advance(seconds=299)  # one second before expiry: still held
    assert 570 not in await vacancies(client, world, auth)
    assert_problem(await book(client, world, auth, 570), 409, "slot_not_vacant")

    clock.advance(seconds=2)  # one second after expiry
    assert set(await vacancies(client, world, auth)) >= OVERLAPPING_570
    stats = (await client.get(calendars, headers=auth)).json()[0]["stats"]
    assert stats["minutesBooked"] == 0
    assert await hold_rows(engine) == 1  # nothing deleted it: the reading decided
    assert_problem(
        await book(client, world, auth, 570, reservationToken=token),
        409,
        "reservation_expired",
        None,
    )
    assert (await book(client, world, auth, 570)).status_code == 201


# --- booking with a hold ------------------------------------------------------------------------


async def test_booking_with_the_token_takes_the_held_place_and_shows_the_hold(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    held = (await hold(client, world, auth, 570)).json()

    booked = await book(client, world, auth, 570, reservationToken=held["reservationToken"])

    assert booked.status_code == 201, booked.text
    appointment = booked.json()["appointment"]
    assert appointment["reservationToken"] == held["reservationToken"]
    assert appointment["reservationExpiryDate"] == held["reservationExpiryDate"]
    assert not OVERLAPPING_570 & set(await vacancies(client, world, auth))
    listed = await client.get(world.appointments_path(TOMORROW), headers=auth)
    assert listed.json()[0]["appointment"]["reservationToken"] == held["reservationToken"]


async def test_a_hold_is_consumed_once(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    token = await token_of(client, world, auth)
    assert (await book(client, world, auth, 570, reservationToken=token)).status_code == 201
    again = await book(client, world, auth, 570, reservationToken=token)
    assert_problem(again, 409, "reservation_expired")


@pytest.mark.parametrize(
    "changes",
    [{"start": 600}, {"on_date": TOMORROW + timedelta(days=1)}, {"other_type": True}],
)
async def test_a_booking_unlike_its_hold_is_409_reservation_mismatch_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    changes: dict[str, object],
) -> None:
    token = await token_of(client, world, auth)
    body: dict[str, object] = {"reservationToken": token}
    if changes.pop("other_type", False):
        async with engine.begin() as conn:
            other = await builders.service_type(conn, world.service_id, duration=30)
        body["serviceTypeId"] = str(other)
    start = int(changes.pop("start", 570))  # type: ignore[call-overload]

    mismatch = await book(client, world, auth, start, **changes, **body)

    assert_problem(mismatch, 409, "reservation_mismatch")
    assert 570 not in await vacancies(client, world, auth)  # still held
    assert (await book(client, world, auth, 570, reservationToken=token)).status_code == 201


async def test_an_expired_token_is_409_reservation_expired_with_nearest_vacancies(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], clock: FakeClock
) -> None:
    token = await token_of(client, world, auth)
    assert (await book(client, world, auth, 600)).status_code == 201
    clock.advance(seconds=301)
    expired = await book(client, world, auth, 570, reservationToken=token)
    problem = assert_problem(expired, 409, "reservation_expired")
    assert problem["nearestVacancies"] == [570, 560, 550]


async def test_a_hold_of_another_application_is_unknown_to_this_one(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    token = await token_of(client, world, auth)
    async with engine.begin() as conn:
        other_app, other_client = await builders.application(conn, world.organization_id)
    other = World(
        world.organization_id, other_app, other_client, world.service_id, world.service_type_id
    )
    other_auth = bearer(settings, other_client)

    unknown = await book(client, other, other_auth, 570, reservationToken=token)
    assert_problem(unknown, 404, "reservation_not_found")
    release = await client.delete(
        f"{other.reservations_path(TOMORROW)}/{token}", headers=other_auth
    )
    assert_problem(release, 404, "reservation_not_found")
    assert 570 not in await vacancies(client, world, auth)
    assert (await book(client, world, auth, 570, reservationToken=token)).status_code == 201


async def test_the_purge_deletes_only_holds_long_expired(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    clock: FakeClock,
    db: Database,
    engine: AsyncEngine,
) -> None:
    await token_of(client, world, auth)  # expires at NOW + 300 s
    clock.advance(seconds=600)
    await hold(client, world, auth, 660)  # live
    async with db.transaction() as conn:
        assert await purge_ended(conn, clock() - HOLD_RETENTION) == 0  # not a day old yet
        assert await purge_ended(conn, clock()) == 1
    assert await hold_rows(engine) == 1
