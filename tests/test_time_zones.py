"""Wall-clock times across daylight-saving changes and time zones, through the HTTP API.

The contract: `startTime` is minutes after local midnight as read on the wall clock. A wall time
inside a spring-forward gap does not exist and is rejected; an ambiguous one (fall-back overlap)
means its first occurrence. Wall-clock minutes are the grid, so appointments occupy
`[start, start + duration)` wall-clock minutes whatever the clocks do.

Every expected UTC instant below is written out by hand from the zone's offsets (and was checked
against zoneinfo): the test does not reuse the code it checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import FakeClock, bearer

ALL_DAY = ((0, 1440),)
SLOT = 10
DURATION = 30  # the world's service type
EVERY_START = list(range(0, 1440 - DURATION + 1, SLOT))  # 0, 10, ..., 1410

# The Windows ids of CLDR's windowsZones table, as the original writes `timeZoneId`.
WINDOWS_ID = {
    "Europe/London": "GMT Standard Time",
    "America/New_York": "Eastern Standard Time",
    "America/Los_Angeles": "Pacific Standard Time",
}


@dataclass(frozen=True)
class SpringForward:
    zone: str
    on_date: date
    gap: range  # wall-clock minutes that do not exist on that date
    before: int  # a grid start just before the gap ...
    before_utc: str
    after: int  # ... and the first one after it
    after_utc: str


@dataclass(frozen=True)
class FallBack:
    zone: str
    on_date: date
    overlap: range  # wall-clock minutes that happen twice
    ambiguous: int
    ambiguous_utc: str  # its first occurrence (still on summer time)
    after: int  # just after the overlap: unambiguous, winter time
    after_utc: str


SPRING = [
    # 01:00 GMT -> 02:00 BST
    SpringForward(
        "Europe/London",
        date(2027, 3, 28),
        range(60, 120),
        50,
        "2027-03-28T00:50:00Z",  # 00:50 GMT (UTC+0)
        120,
        "2027-03-28T01:00:00Z",  # 02:00 BST (UTC+1)
    ),
    # 02:00 EST -> 03:00 EDT
    SpringForward(
        "America/New_York",
        date(2027, 3, 14),
        range(120, 180),
        110,
        "2027-03-14T06:50:00Z",  # 01:50 EST (UTC-5)
        180,
        "2027-03-14T07:00:00Z",  # 03:00 EDT (UTC-4)
    ),
]

FALL = [
    # 02:00 BST -> 01:00 GMT: 01:00-01:59 happens twice
    FallBack(
        "Europe/London",
        date(2027, 10, 31),
        range(60, 120),
        90,
        "2027-10-31T00:30:00Z",  # 01:30 BST (UTC+1), not 01:30 GMT (01:30Z)
        120,
        "2027-10-31T02:00:00Z",  # 02:00 GMT
    ),
    # 02:00 EDT -> 01:00 EST: 01:00-01:59 happens twice
    FallBack(
        "America/New_York",
        date(2027, 11, 7),
        range(60, 120),
        90,
        "2027-11-07T05:30:00Z",  # 01:30 EDT (UTC-4), not 01:30 EST (06:30Z)
        120,
        "2027-11-07T07:00:00Z",  # 02:00 EST (UTC-5)
    ),
]


def ids(case: SpringForward | FallBack) -> str:
    return case.zone.split("/")[-1]


def noon_the_day_before(on_date: date) -> datetime:
    return datetime.combine(on_date - timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        hours=12
    )


def overlapping(start: int, duration: int, starts: list[int], length: int = DURATION) -> set[int]:
    """The starts whose `[s, s + length)` shares a wall-clock minute with `[start, start + d)`."""
    return {s for s in starts if s < start + duration and start < s + length}


async def night_world(
    engine: AsyncEngine, settings: Settings, zone: str, **options: object
) -> tuple[World, dict[str, str]]:
    """Open round the clock, no booking window, capacity 1, 10-minute grid, 30-minute type."""
    async with engine.begin() as conn:
        world = await builders.world(
            conn,
            time_zone=zone,
            hours=ALL_DAY,
            service_options={"booking_window_days": None},
            **options,  # type: ignore[arg-type]
        )
    return world, bearer(settings, world.client_id)


async def vacancies(
    client: httpx.AsyncClient,
    world: World,
    on_date: date,
    auth: dict[str, str],
    service_type_id: object = None,
    cu_index: int | None = None,
) -> list[int]:
    type_id = service_type_id or world.service_type_id
    response = await client.get(
        world.calendar_path(on_date, cu_index) + f"/vacancies?serviceTypeId={type_id}",
        headers=auth,
    )
    assert response.status_code == 200, response.text
    slots: list[int] = response.json()["slots"]
    return slots


async def book(
    client: httpx.AsyncClient,
    world: World,
    on_date: date,
    start: int,
    auth: dict[str, str],
    cu_index: int | None = None,
    **overrides: object,
) -> httpx.Response:
    return await client.post(
        world.appointments_path(on_date, cu_index),
        json=world.body(start, **overrides),
        headers=auth,
    )


async def listed(
    client: httpx.AsyncClient, world: World, on_date: date, auth: dict[str, str]
) -> list[dict[str, Any]]:
    response = await client.get(world.appointments_path(on_date), headers=auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


# --- spring forward ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", SPRING, ids=ids)
async def test_start_in_the_spring_forward_gap_is_rejected_as_nonexistent(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: SpringForward,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    for start in [*case.gap[::SLOT], case.gap[-1]]:
        response = await book(client, world, case.on_date, start, auth)
        assert response.status_code == 422, (start, response.text)
        problem = response.json()
        assert problem["code"] == "nonexistent_local_time", (start, problem)
    # bypassTimeslotCheck skips the grid and vacancy, not the existence of the time
    response = await book(
        client, world, case.on_date, case.gap[0] + 5, auth, bypassTimeslotCheck=True
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "nonexistent_local_time"
    assert await listed(client, world, case.on_date, auth) == []


@pytest.mark.parametrize("case", SPRING, ids=ids)
async def test_vacancies_skip_the_spring_forward_gap(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: SpringForward,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    slots = await vacancies(client, world, case.on_date, auth)
    assert not [s for s in slots if s in case.gap]
    assert slots == [s for s in EVERY_START if s not in case.gap]
    # The day before and the day after have no gap.
    assert await vacancies(client, world, case.on_date + timedelta(days=1), auth) == EVERY_START


@pytest.mark.parametrize("case", SPRING, ids=ids)
async def test_starts_either_side_of_the_gap_map_to_their_utc_instants(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: SpringForward,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    expected = {case.before: case.before_utc, case.after: case.after_utc}
    for start, time_utc in expected.items():
        response = await book(client, world, case.on_date, start, auth)
        assert response.status_code == 201, (start, response.text)
        appointment = response.json()["appointment"]
        assert appointment["start"] == start
        assert appointment["timeUtc"] == time_utc
        assert appointment["timeLocal"] == f"{case.on_date}T{start // 60:02d}:{start % 60:02d}:00"
        assert appointment["ianaTimeZoneId"] == case.zone
        assert appointment["timeZoneId"] == WINDOWS_ID[case.zone]
        assert response.json()["referenceDate"] == time_utc
    # The stored instant reads back the same.
    items = await listed(client, world, case.on_date, auth)
    stored = {a["appointment"]["start"]: a["appointment"]["timeUtc"] for a in items}
    assert stored == expected


@pytest.mark.parametrize("case", SPRING, ids=ids)
async def test_appointment_across_the_spring_gap_occupies_its_wall_clock_minutes(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: SpringForward,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    # Starts 10 minutes before the gap; on the wall clock it runs 30 minutes into the gap.
    response = await book(client, world, case.on_date, case.before, auth)
    assert response.status_code == 201, response.text
    assert response.json()["appointment"]["duration"] == DURATION

    taken = overlapping(case.before, DURATION, EVERY_START)
    assert taken == {
        case.before - 20,
        case.before - 10,
        case.before,
        case.before + 10,
        case.before + 20,
    }
    slots = await vacancies(client, world, case.on_date, auth)
    assert slots == [s for s in EVERY_START if s not in case.gap and s not in taken]

    # What the listing says is what booking does.
    clash = await book(client, world, case.on_date, case.before - 20, auth)
    assert clash.status_code == 409, clash.text
    assert clash.json()["code"] == "slot_not_vacant"
    assert (await book(client, world, case.on_date, case.before - 30, auth)).status_code == 201
    assert (await book(client, world, case.on_date, case.after, auth)).status_code == 201


# --- fall back --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FALL, ids=ids)
async def test_ambiguous_fall_back_start_means_its_first_occurrence(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: FallBack,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    response = await book(client, world, case.on_date, case.ambiguous, auth)
    assert response.status_code == 201, response.text
    body = response.json()
    appointment = body["appointment"]
    assert appointment["start"] == case.ambiguous
    assert appointment["timeUtc"] == case.ambiguous_utc
    assert appointment["timeLocal"] == f"{case.on_date}T01:30:00"
    assert appointment["ianaTimeZoneId"] == case.zone
    assert appointment["timeZoneId"] == WINDOWS_ID[case.zone]
    assert appointment["date"] == f"{case.on_date}T00:00:00"
    assert body["referenceDate"] == case.ambiguous_utc

    after = await book(client, world, case.on_date, case.after, auth)
    assert after.status_code == 201, after.text
    assert after.json()["appointment"]["timeUtc"] == case.after_utc


@pytest.mark.parametrize("case", FALL, ids=ids)
async def test_fall_back_overlap_is_one_slot_not_two(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: FallBack,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    clock.set(noon_the_day_before(case.on_date))
    # Every wall time of the day is listed once: the repeated hour gives no extra slots.
    assert await vacancies(client, world, case.on_date, auth) == EVERY_START

    first = await book(client, world, case.on_date, case.ambiguous, auth)
    assert first.status_code == 201, first.text
    second = await book(client, world, case.on_date, case.ambiguous, auth)
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "slot_not_vacant"
    assert case.ambiguous not in second.json()["nearestVacancies"]
    assert len(await listed(client, world, case.on_date, auth)) == 1


@pytest.mark.parametrize("case", FALL, ids=ids)
async def test_appointment_across_the_fall_back_occupies_its_wall_clock_minutes(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
    case: FallBack,
) -> None:
    world, auth = await night_world(engine, settings, case.zone)
    async with engine.begin() as conn:
        hour_type = await builders.service_type(conn, world.service_id, duration=60)
    clock.set(noon_the_day_before(case.on_date))

    # 01:30 (first occurrence) for 60 wall-clock minutes: it crosses the end of the overlap.
    response = await book(
        client, world, case.on_date, case.ambiguous, auth, serviceTypeId=str(hour_type)
    )
    assert response.status_code == 201, response.text
    appointment = response.json()["appointment"]
    assert appointment["duration"] == 60
    assert appointment["timeUtc"] == case.ambiguous_utc

    half_hour_taken = overlapping(case.ambiguous, 60, EVERY_START, DURATION)
    assert half_hour_taken == set(range(case.ambiguous - 20, case.ambiguous + 60, SLOT))
    assert await vacancies(client, world, case.on_date, auth) == [
        s for s in EVERY_START if s not in half_hour_taken
    ]
    every_hour_start = list(range(0, 1440 - 60 + 1, SLOT))
    hour_taken = overlapping(case.ambiguous, 60, every_hour_start, 60)
    assert hour_taken == set(range(case.ambiguous - 50, case.ambiguous + 60, SLOT))
    assert await vacancies(client, world, case.on_date, auth, service_type_id=hour_type) == [
        s for s in every_hour_start if s not in hour_taken
    ]

    # The minute after it ends is free, the last minute of it is not.
    clash = await book(client, world, case.on_date, case.ambiguous + 50, auth)
    assert clash.status_code == 409, clash.text
    assert (await book(client, world, case.on_date, case.ambiguous + 60, auth)).status_code == 201


# --- a calendar unit in another zone than its organization -------------------------------------


async def test_calendar_unit_time_zone_overrides_the_organizations(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
) -> None:
    async with engine.begin() as conn:
        org_id = await builders.organization(conn, time_zone="Europe/London")
        app_id, client_id = await builders.application(conn, org_id)
        service_id = await builders.service(conn, org_id, booking_window_days=None)
        type_id = await builders.service_type(conn, service_id, duration=DURATION)
        await builders.calendar_unit(
            conn, service_id, cu_index=0, time_zone="America/New_York", hours=ALL_DAY
        )
        await builders.calendar_unit(conn, service_id, cu_index=1, hours=ALL_DAY)  # London
    world = World(org_id, app_id, client_id, service_id, type_id)
    auth = bearer(settings, client_id)
    today = date(2026, 12, 1)
    # Now is 07:00Z: 02:00 in New York, 07:00 in London.
    clock.set(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))

    new_york = await book(client, world, today, 600, auth, cu_index=0)
    assert new_york.status_code == 201, new_york.text
    appointment = new_york.json()["appointment"]
    assert appointment["ianaTimeZoneId"] == "America/New_York"
    assert appointment["timeZoneId"] == WINDOWS_ID["America/New_York"]
    assert appointment["timeLocal"] == "2026-12-01T10:00:00"
    assert appointment["timeUtc"] == "2026-12-01T15:00:00Z"  # 10:00 EST (UTC-5)

    london = await book(client, world, today, 600, auth, cu_index=1)
    assert london.status_code == 201, london.text
    appointment = london.json()["appointment"]
    assert appointment["ianaTimeZoneId"] == "Europe/London"
    assert appointment["timeZoneId"] == WINDOWS_ID["Europe/London"]
    assert appointment["timeUtc"] == "2026-12-01T10:00:00Z"  # 10:00 GMT

    # "Passed" is read on each unit's own clock.
    ny_slots = await vacancies(client, world, today, auth, cu_index=0)
    assert ny_slots[0] == 130  # 02:10 New York; 02:00 is now
    london_slots = await vacancies(client, world, today, auth, cu_index=1)
    assert london_slots[0] == 430  # 07:10 London
    early = await book(client, world, today, 300, auth, cu_index=0)  # 05:00 New York
    assert early.status_code == 201, early.text
    assert early.json()["appointment"]["timeUtc"] == "2026-12-01T10:00:00Z"
    passed = await book(client, world, today, 300, auth, cu_index=1)  # 05:00 London
    assert passed.status_code == 422, passed.text
    assert passed.json()["code"] == "start_time_passed"

    # The DST gap is the unit's: 2027-03-14 02:30 does not exist in New York, but does in London.
    spring = date(2027, 3, 14)
    clock.set(noon_the_day_before(spring))
    gap = await book(client, world, spring, 150, auth, cu_index=0)
    assert gap.status_code == 422, gap.text
    assert gap.json()["code"] == "nonexistent_local_time"
    fine = await book(client, world, spring, 150, auth, cu_index=1)
    assert fine.status_code == 201, fine.text
    assert fine.json()["appointment"]["timeUtc"] == "2027-03-14T02:30:00Z"
    assert 150 not in await vacancies(client, world, spring, auth, cu_index=0)


# --- "today" is the calendar's date ------------------------------------------------------------


async def test_today_is_computed_in_the_calendars_time_zone(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    clock: FakeClock,
) -> None:
    tokyo, tokyo_auth = await night_world(engine, settings, "Asia/Tokyo")
    los_angeles, la_auth = await night_world(engine, settings, "America/Los_Angeles")
    clock.set(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    # 08:30 on 2026-12-02 in Tokyo; 15:30 on 2026-12-01 in Los Angeles.
    utc_date = date(2026, 12, 1)

    past = await book(client, tokyo, utc_date, 960, tokyo_auth)
    assert past.status_code == 422, past.text
    assert past.json()["code"] == "date_in_past"
    assert await vacancies(client, tokyo, utc_date, tokyo_auth) == []
    assert (await vacancies(client, tokyo, date(2026, 12, 2), tokyo_auth))[0] == 520  # 08:40
    tokyo_today = await book(client, tokyo, date(2026, 12, 2), 540, tokyo_auth)  # 09:00 JST
    assert tokyo_today.status_code == 201, tokyo_today.text
    assert tokyo_today.json()["appointment"]["timeUtc"] == "2026-12-02T00:00:00Z"

    passed = await book(client, los_angeles, utc_date, 900, la_auth)  # 15:00 PST
    assert passed.status_code == 422, passed.text
    assert passed.json()["code"] == "start_time_passed"
    at_now = await book(client, los_angeles, utc_date, 930, la_auth)  # 15:30 PST: now
    assert at_now.status_code == 422, at_now.text
    assert at_now.json()["code"] == "start_time_passed"
    later = await book(client, los_angeles, utc_date, 960, la_auth)  # 16:00 PST
    assert later.status_code == 201, later.text
    appointment = later.json()["appointment"]
    assert appointment["timeUtc"] == "2026-12-02T00:00:00Z"
    assert appointment["timeLocal"] == "2026-12-01T16:00:00"
    assert appointment["ianaTimeZoneId"] == "America/Los_Angeles"
    assert appointment["timeZoneId"] == WINDOWS_ID["America/Los_Angeles"]
    assert await vacancies(client, los_angeles, utc_date, la_auth) == [
        s for s in range(940, 1411, SLOT) if s not in overlapping(960, DURATION, EVERY_START)
    ]
