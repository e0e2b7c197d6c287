"""One truth: what the vacancies endpoint lists is exactly what a booking accepts.

A property test with hypothesis against the real database, through the HTTP API. For a random
calendar (grid, capacity, hours with breaks, 1-3 service types) on a random date and moment
(including today with past starts, daylight-saving days, past dates and dates beyond the booking
window), it plays a random sequence of bookings (some with bypassTimeslotCheck) and cancellations
and checks, before every booking and at the end, that

- every start the vacancies endpoint lists books with 201, and
- every start it does not list is refused with 409 or 422 (for a reason the contract names),
  and a 409's `nearestVacancies` are starts the endpoint lists.

Each example builds its own organization and service, so examples need no clean-up between them.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import FakeClock, bearer

# A refusal of a start the endpoint did not list must be one of these (never e.g. a 500).
REFUSALS = {
    409: {"slot_not_vacant"},
    422: {
        "start_time_passed",
        "nonexistent_local_time",
        "outside_working_hours",
        "start_not_on_grid",
        "closed_date",
        "date_in_past",
        "outside_booking_window",
    },
}
# Ordinary, spring-forward (01:00-01:59 does not exist) and fall-back (01:00-01:59 twice) days.
DAYS = [date(2026, 12, 2), date(2027, 3, 28), date(2026, 10, 25)]
SAMPLE_LISTED = 8  # per service type, at the end: each booked (201) and cancelled again
SAMPLE_UNLISTED = 16  # per service type, at the end: each refused


@dataclass(frozen=True)
class Calendar:
    slot_minutes: int
    capacity: int
    hours: list[tuple[int, int]]
    durations: list[int]
    as_special_hours: bool  # the hours come from a date exception instead of the weekly hours


@dataclass(frozen=True)
class Book:
    type_index: int
    start: int
    bypass: bool


@dataclass(frozen=True)
class Cancel:
    index: int


@dataclass(frozen=True)
class Case:
    calendar: Calendar
    on_date: date
    now: datetime
    operations: list[Book | Cancel]


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    count = draw(st.integers(1, 3))
    edges = sorted(
        draw(st.lists(st.integers(0, 1440), min_size=2 * count, max_size=2 * count, unique=True))
    )
    hours = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
    # Sometimes configure one interval as two touching pieces: they are one working interval,
    # with one grid anchored at its start.
    split = draw(st.integers(0, len(hours)))
    if split < len(hours) and hours[split][1] - hours[split][0] >= 2:
        start, end = hours[split]
        middle = draw(st.integers(start + 1, end - 1))
        hours[split : split + 1] = [(middle, end), (start, middle)]
    return Calendar(
        slot_minutes=draw(st.integers(5, 30)),
        capacity=draw(st.integers(1, 3)),
        hours=hours,
        durations=draw(st.lists(st.integers(10, 90), min_size=1, max_size=3)),
        as_special_hours=draw(st.booleans()),
    )


def interesting_starts(calendar: Calendar) -> list[int]:
    """Grid-looking starts inside the hours, and their neighbours: where mistakes would show."""
    starts: set[int] = set()
    for start, end in calendar.hours:
        for s in range(start, end + 1, calendar.slot_minutes):
            starts.update({s - 1, s, s + 1})
        for d in calendar.durations:
            starts.update({end - d - 1, end - d, end - d + 1})
    return sorted(s for s in starts if 0 <= s <= 1439)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    calendar = draw(calendars())
    on_date = draw(st.sampled_from(DAYS))
    midnight = datetime(on_date.year, on_date.month, on_date.day, tzinfo=UTC)
    when = draw(st.sampled_from(["before", "before", "during", "during", "past", "far"]))
    if when == "before":  # some hours before the date
        now = midnight - timedelta(minutes=draw(st.integers(1, 3 * 1440)))
    elif when == "during":  # today: the earlier starts have passed
        now = midnight + timedelta(minutes=draw(st.integers(0, 1439)))
    elif when == "past":  # the date is yesterday or earlier
        now = midnight + timedelta(days=draw(st.integers(1, 3)), hours=12)
    else:  # beyond the 60-day booking window
        now = midnight - timedelta(days=draw(st.integers(62, 90)))
    start = st.one_of(st.integers(0, 1439), st.sampled_from(interesting_starts(calendar)))
    book = st.builds(Book, st.integers(0, 2), start, st.sampled_from([False, False, False, True]))
    cancel = st.builds(Cancel, st.integers(0, 20))
    operations = draw(st.lists(st.one_of(book, book, cancel), max_size=12))
    return Case(calendar, on_date, now, operations)


async def build_world(engine: AsyncEngine, case: Case) -> tuple[World, list[uuid.UUID]]:
    calendar = case.calendar
    weekly = [(0, 1440)] if calendar.as_special_hours else calendar.hours
    async with engine.begin() as conn:
        world = await builders.world(
            conn,
            slot_minutes=calendar.slot_minutes,
            capacity=calendar.capacity,
            duration=calendar.durations[0],
            hours=weekly,
        )
        type_ids = [world.service_type_id]
        for i, duration in enumerate(calendar.durations[1:], start=1):
            type_ids.append(
                await builders.service_type(
                    conn, world.service_id, duration=duration, name=f"type {i}"
                )
            )
        if calendar.as_special_hours:
            await builders.exception(conn, world.service_id, case.on_date, hours=calendar.hours)
    return world, type_ids


class Driver:
    """Talks to the API for one example and checks the property at every step."""

    def __init__(
        self, client: httpx.AsyncClient, world: World, auth: dict[str, str], case: Case
    ) -> None:
        self.client, self.world, self.auth, self.case = client, world, auth, case
        self.requests = 0

    async def vacancies(self, type_id: uuid.UUID) -> list[int]:
        self.requests += 1
        response = await self.client.get(
            self.world.calendar_path(self.case.on_date) + "/vacancies",
            params={"serviceTypeId": str(type_id)},
            headers=self.auth,
        )
        assert response.status_code == 200, response.text
        slots: list[int] = response.json()["slots"]
        assert slots == sorted(set(slots)), slots
        return slots

    async def book(self, type_id: uuid.UUID, start: int, bypass: bool = False) -> httpx.Response:
        self.requests += 1
        body: dict[str, Any] = {
            "serviceTypeId": str(type_id),
            "startTime": start,
            "channel": "FaceToFace",
        }
        if bypass:
            body["bypassTimeslotCheck"] = True
        return await self.client.post(
            self.world.appointments_path(self.case.on_date), json=body, headers=self.auth
        )

    async def cancel(self, case_id: str) -> None:
        self.requests += 1
        response = await self.client.delete(
            f"{self.world.appointments_path(self.case.on_date)}/{case_id}", headers=self.auth
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Cancelled"

    def assert_refused(self, response: httpx.Response, start: int, listed: list[int]) -> None:
        what = (start, listed, response.text)
        assert response.status_code in REFUSALS, what
        problem = response.json()
        assert problem["code"] in REFUSALS[response.status_code], what
        if response.status_code == 409:
            assert set(problem["nearestVacancies"]) <= set(listed), what


async def check_every_listed_start_books_and_others_are_refused(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], case: Case, types: list[Any]
) -> int:
    driver = Driver(client, world, auth, case)
    live: list[str] = []

    for operation in case.operations:
        if isinstance(operation, Cancel):
            if live:
                await driver.cancel(live.pop(operation.index % len(live)))
            continue
        type_id = types[operation.type_index % len(types)]
        listed = await driver.vacancies(type_id)
        response = await driver.book(type_id, operation.start, operation.bypass)
        if operation.start in listed:
            assert response.status_code == 201, (operation, listed, response.text)
        elif operation.bypass:
            # Bypass skips the grid and the vacancy check only: a refusal is never a 409.
            assert response.status_code in (201, 422), (operation, listed, response.text)
            if response.status_code == 422:
                driver.assert_refused(response, operation.start, listed)
        else:
            driver.assert_refused(response, operation.start, listed)
        if response.status_code == 201:
            live.append(response.json()["caseId"])

    rng = random.Random(repr(case))  # noqa: S311  (deterministic sampling, not security)
    candidates = interesting_starts(case.calendar)
    for type_id in types:
        listed = await driver.vacancies(type_id)
        for start in rng.sample(listed, min(SAMPLE_LISTED, len(listed))):
            response = await driver.book(type_id, start)
            assert response.status_code == 201, (start, listed, response.text)
            await driver.cancel(response.json()["caseId"])
        listed_set = set(listed)
        unlisted = [s for s in candidates if s not in listed_set]
        unlisted = rng.sample(unlisted, min(SAMPLE_UNLISTED // 2, len(unlisted)))
        unlisted += [s for s in rng.sample(range(1440), SAMPLE_UNLISTED) if s not in listed_set]
        for start in unlisted:
            driver.assert_refused(await driver.book(type_id, start), start, listed)
    return driver.requests


STATS = {"examples": 0, "requests": 0, "seconds": 0.0}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_vacancies_and_booking_agree_on_every_start(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    clock: FakeClock,
    case: Case,
) -> None:
    started = time.perf_counter()
    world, types = await build_world(engine, case)
    clock.set(case.now)
    auth = bearer(settings, world.client_id)
    requests = await check_every_listed_start_books_and_others_are_refused(
        client, world, auth, case, types
    )
    STATS["examples"] += 1
    STATS["requests"] += requests
    STATS["seconds"] += time.perf_counter() - started
