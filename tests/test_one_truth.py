"""One truth: what the vacancies endpoint lists is exactly what a booking accepts.

A property test with hypothesis against the real database, through the HTTP API. Each time the
calendar-day's vacancies are read, the range vacancies and the first vacancies are read too and
must list the same starts, so what they list is also exactly what a booking accepts. For a random
calendar (grid, capacity, hours with breaks, 1-3 service types) on a random date and moment
(including today with past starts, daylight-saving days, past dates and dates beyond the booking
window), it plays a random sequence of bookings (some with bypassTimeslotCheck), slot holds
(booked with their token, released, or left to expire while the clock moves on), reschedules and
cancellations, and checks, before every booking, hold and reschedule and at the end, that

- every start the vacancies endpoint lists books (and holds) with 201, and a live appointment
  moved to a listed start answers 200,
- every start it does not list is refused with 409 or 422 (for a reason the contract names),
  and a 409's `nearestVacancies` are starts the endpoint lists, and
- a hold's token books its place while the hold is live, and only then.

Each example builds its own organization and service, so examples need no clean-up between them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from hypothesis import HealthCheck, event, given, settings
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
LONDON = ZoneInfo("Europe/London")  # the builders' organization time zone
# Ordinary, spring-forward (01:00-01:59 does not exist) and fall-back (01:00-01:59 twice) days.
DAYS = [date(2026, 12, 2), date(2027, 3, 28), date(2026, 10, 25)]
# At the end, per service type: listed starts near the live bookings (where a wrongly listed
# start would be) and elsewhere, each booked (201) and cancelled again ...
SAMPLE_LISTED_NEAR = 6
SAMPLE_LISTED_ELSEWHERE = 4
SAMPLE_UNLISTED = 16  # ... and starts it does not list, each refused


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
    start: int  # a minute of the day, or with `from_listed` an index into the listed starts
    bypass: bool
    from_listed: bool = False


@dataclass(frozen=True)
class Fill:
    """Book up to `count` of the listed starts, spread over the day: calendars get full."""

    type_index: int
    count: int


@dataclass(frozen=True)
class Cancel:
    index: int


@dataclass(frozen=True)
class Hold:
    """Hold a listed start (`from_listed`, an index into them) or any minute."""

    type_index: int
    start: int
    from_listed: bool
    seconds: int


@dataclass(frozen=True)
class BookHeld:
    index: int


@dataclass(frozen=True)
class Release:
    index: int


@dataclass(frozen=True)
class Advance:
    """Let the clock run: holds expire, today's earlier starts pass."""

    seconds: int


@dataclass(frozen=True)
class Reschedule:
    """Move a live appointment within the day to a start listed for its type, or any minute."""

    index: int
    start: int
    from_listed: bool


@dataclass
class Held:
    token: str
    type_id: uuid.UUID
    start: int
    duration: int
    expires_at: datetime
    ended: bool = False  # released or consumed
    consumed: bool = False


@dataclass(frozen=True)
class Live:
    case_id: str
    start: int
    duration: int
    type_id: uuid.UUID


@dataclass(frozen=True)
class Case:
    calendar: Calendar
    on_date: date
    now: datetime
    operations: list[Operation]


Operation = Book | Fill | Cancel | Hold | BookHeld | Release | Advance | Reschedule


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
    when = draw(st.sampled_from(["before"] * 4 + ["during"] * 2 + ["past"] + ["window"] * 2))
    if when == "before":  # from three days before the date up to its local midnight
        days_before, minute = draw(st.integers(1, 3)), draw(st.integers(0, 1439))
    elif when == "during":  # today: the earlier starts have passed
        days_before, minute = 0, draw(st.integers(0, 1439))
    elif when == "past":  # the date is yesterday or earlier
        days_before, minute = -draw(st.integers(1, 3)), draw(st.integers(0, 1439))
    else:  # the date is the last day of the 60-day booking window, or the first beyond it
        days_before, minute = draw(st.integers(60, 61)), draw(st.integers(0, 1439))
    today = on_date - timedelta(days=days_before)
    local_now = datetime(today.year, today.month, today.day, tzinfo=LONDON) + timedelta(
        minutes=minute
    )
    now = local_now.astimezone(UTC)
    bypass = st.sampled_from([False, False, False, True])
    start = st.one_of(st.integers(0, 1439), st.sampled_from(interesting_starts(calendar)))
    book_any = st.builds(Book, st.integers(0, 2), start, bypass)
    book_listed = st.builds(Book, st.integers(0, 2), st.integers(0, 200), bypass, st.just(True))
    fill = st.builds(Fill, st.integers(0, 2), st.integers(1, 8))
    cancel = st.builds(Cancel, st.integers(0, 20))
    seconds = st.sampled_from([30, 120, 300, 900])
    hold_any = st.builds(Hold, st.integers(0, 2), start, st.just(False), seconds)
    hold_listed = st.builds(Hold, st.integers(0, 2), st.integers(0, 200), st.just(True), seconds)
    book_held = st.builds(BookHeld, st.integers(0, 20))
    release = st.builds(Release, st.integers(0, 20))
    advance = st.builds(Advance, st.sampled_from([29, 31, 119, 121, 301, 600]))
    reschedule = st.builds(
        Reschedule,
        st.integers(0, 20),
        st.one_of(start, st.integers(0, 200)),
        st.booleans(),
    )
    operations = draw(
        st.lists(
            st.one_of(
                book_any,
                book_listed,
                book_listed,
                fill,
                cancel,
                hold_any,
                hold_listed,
                hold_listed,
                book_held,
                book_held,
                book_held,
                release,
                advance,
                reschedule,
                reschedule,
            ),
            min_size=3,
            max_size=16,
        )
    )
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
        self,
        client: httpx.AsyncClient,
        world: World,
        auth: dict[str, str],
        case: Case,
        clock: FakeClock,
    ) -> None:
        self.client, self.world, self.auth, self.case = client, world, auth, case
        self.clock = clock
        self.overbooked = False  # a bypassTimeslotCheck booking may overlap anything, holds too

    async def vacancies(self, type_id: uuid.UUID) -> list[int]:
        response = await self.client.get(
            self.world.calendar_path(self.case.on_date) + "/vacancies",
            params={"serviceTypeId": str(type_id)},
            headers=self.auth,
        )
        assert response.status_code == 200, response.text
        slots: list[int] = response.json()["slots"]
        assert slots == sorted(set(slots)), slots
        await self.check_range_routes(type_id, slots)
        return slots

    async def check_range_routes(self, type_id: uuid.UUID, slots: list[int]) -> None:
        """The range vacancies and the first vacancies list the same starts for the date: an
        item with exactly `slots` (none only when `slots` is empty), and that date's first
        start as the first vacancy (a later date when it has none)."""
        on_date = self.case.on_date
        service = f"/{self.world.application_id}/calendars/{self.world.service_id}"
        query = {"serviceTypeId": str(type_id), "from": str(on_date - timedelta(days=1))}
        in_range = await self.client.get(
            service + "/vacancies",
            params=query | {"to": str(on_date + timedelta(days=1))},
            headers=self.auth,
        )
        assert in_range.status_code == 200, in_range.text
        items = [item for item in in_range.json() if item["date"] == str(on_date)]
        listed = [item["slots"] for item in items]
        assert listed == [slots] or (not slots and listed == []), (slots, items)
        first = await self.client.get(
            service + "/first-vacancies",
            params=query | {"from": str(on_date), "days": 1},
            headers=self.auth,
        )
        assert first.status_code == 200, first.text
        earliest = first.json()[:1]
        if slots:
            assert earliest == [
                {"date": str(on_date), "cuIndex": 0, "duration": earliest[0]["duration"]}
                | {"start": slots[0]}
            ], (slots, earliest)
        else:
            assert all(item["date"] > str(on_date) for item in earliest), earliest

    async def book(
        self, type_id: uuid.UUID, start: int, bypass: bool = False, token: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "serviceTypeId": str(type_id),
            "startTime": start,
            "channel": "FaceToFace",
        }
        if bypass:
            body["bypassTimeslotCheck"] = True
        if token is not None:
            body["reservationToken"] = token
        return await self.client.post(
            self.world.appointments_path(self.case.on_date), json=body, headers=self.auth
        )

    async def hold(self, type_id: uuid.UUID, start: int, seconds: int) -> httpx.Response:
        body = {
            "serviceTypeId": str(type_id),
            "startTime": start,
            "channel": "FaceToFace",
            "holdSeconds": seconds,
        }
        return await self.client.post(
            self.world.reservations_path(self.case.on_date), json=body, headers=self.auth
        )

    async def release(self, hold: Held) -> None:
        response = await self.client.delete(
            f"{self.world.reservations_path(self.case.on_date)}/{hold.token}", headers=self.auth
        )
        if hold.consumed:  # a booking used it: cancel the appointment instead
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "reservation_consumed"
        else:
            assert response.status_code == 204, response.text

    async def reschedule(self, case_id: str, start: int) -> httpx.Response:
        on_date = self.case.on_date
        return await self.client.post(
            f"{self.world.appointments_path(on_date)}/{case_id}/actions/reschedule",
            json={"date": str(on_date), "cuIndex": 0, "startTime": start},
            headers=self.auth,
        )

    async def cancel(self, case_id: str) -> None:
        response = await self.client.delete(
            f"{self.world.appointments_path(self.case.on_date)}/{case_id}", headers=self.auth
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Cancelled"

    def assert_refused(
        self,
        response: httpx.Response,
        start: int,
        listed: list[int],
        stale: bool = False,
        compare_nearest: bool = True,
    ) -> None:
        what = (start, listed, response.text)
        assert response.status_code in REFUSALS, what
        problem = response.json()
        assert problem["code"] in REFUSALS[response.status_code], what
        if stale:
            assert response.status_code == 409, what
        elif response.status_code == 409 and compare_nearest:
            assert set(problem["nearestVacancies"]) <= set(listed), what


def near_live_bookings(listed: list[int], live: list[Live], duration: int, slack: int) -> list[int]:
    """The listed starts whose interval comes within `slack` minutes of a live booking: where
    a wrongly listed start would be."""
    return [
        s
        for s in listed
        if any(s < b.start + b.duration + slack and b.start < s + duration + slack for b in live)
    ]


async def play_hold_operation(
    driver: Driver,
    operation: BookHeld | Release | Advance | Reschedule,
    held: list[Held],
    live: list[Live],
    types: list[uuid.UUID],
) -> None:
    """The operations on holds and on the live appointments that are not a plain booking."""
    if isinstance(operation, Advance):
        driver.clock.advance(seconds=operation.seconds)
        return
    if isinstance(operation, Reschedule):
        if not live:
            return
        index = operation.index % len(live)
        moving = live[index]
        listed = await driver.vacancies(moving.type_id)
        start = operation.start
        if operation.from_listed:
            if not listed:
                return
            start = listed[operation.start % len(listed)]
        response = await driver.reschedule(moving.case_id, start)
        event(f"reschedule: {response.status_code}")
        if response.status_code == 422 and response.json()["code"] == "appointment_in_past":
            return  # it started while the clock ran: it can no longer move
        if start in listed:
            assert response.status_code == 200, (operation, start, listed, response.text)
        elif response.status_code != 200:  # its own place may make an unlisted start fit
            # ... and the refusal's nearest vacancies may be in its own place: not compared.
            driver.assert_refused(response, start, listed, compare_nearest=False)
        if response.status_code == 200:
            live[index] = Live(moving.case_id, start, moving.duration, moving.type_id)
        return
    if not held:
        return
    hold = held[operation.index % len(held)]
    is_live = not hold.ended and hold.expires_at > driver.clock()
    if isinstance(operation, Release):
        await driver.release(hold)
        hold.ended = hold.ended or is_live
        return
    response = await driver.book(hold.type_id, hold.start, token=hold.token)
    event(f"book with a {'live' if is_live else 'dead'} hold: {response.status_code}")
    if not is_live:
        assert response.status_code == 409, (hold, response.text)
        assert response.json()["code"] == "reservation_expired", response.text
        return
    if response.status_code == 422:  # the start passed while the clock ran
        assert response.json()["code"] == "start_time_passed", response.text
        return
    if response.status_code == 409 and driver.overbooked:
        assert response.json()["code"] == "slot_not_vacant", response.text
        return
    assert response.status_code == 201, (hold, response.text)
    hold.ended = hold.consumed = True
    live.append(Live(response.json()["caseId"], hold.start, hold.duration, hold.type_id))


async def check_every_listed_start_books_and_others_are_refused(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    case: Case,
    types: list[uuid.UUID],
    clock: FakeClock,
) -> None:
    driver = Driver(client, world, auth, case, clock)
    live: list[Live] = []
    held: list[Held] = []

    for operation in case.operations:
        if isinstance(operation, Cancel):
            if live:
                await driver.cancel(live.pop(operation.index % len(live)).case_id)
            continue
        if isinstance(operation, BookHeld | Release | Advance | Reschedule):
            await play_hold_operation(driver, operation, held, live, types)
            continue
        type_id = types[operation.type_index % len(types)]
        listed = await driver.vacancies(type_id)
        if isinstance(operation, Hold):
            start = operation.start
            if operation.from_listed:
                if not listed:
                    continue
                start = listed[operation.start % len(listed)]
            response = await driver.hold(type_id, start, operation.seconds)
            event(f"hold: {response.status_code}")
            if start in listed:
                assert response.status_code == 201, (operation, start, listed, response.text)
                body = response.json()
                expires_at = clock() + timedelta(seconds=operation.seconds)
                held.append(
                    Held(body["reservationToken"], type_id, start, body["duration"], expires_at)
                )
            else:
                driver.assert_refused(response, start, listed)
            continue
        if isinstance(operation, Fill):
            step = max(1, len(listed) // operation.count)
            for i, start in enumerate(listed[::step][: operation.count]):
                response = await driver.book(type_id, start)
                # Each start was listed before this fill began; an earlier one may have taken it.
                if i > 0 and response.status_code != 201:
                    driver.assert_refused(response, start, listed, stale=True)
                    continue
                assert response.status_code == 201, (operation, start, listed, response.text)
                duration = response.json()["appointment"]["duration"]
                live.append(Live(response.json()["caseId"], start, duration, type_id))
            continue
        start = operation.start
        if operation.from_listed:
            if not listed:
                continue
            start = listed[operation.start % len(listed)]
        response = await driver.book(type_id, start, operation.bypass)
        driver.overbooked |= operation.bypass and response.status_code == 201
        event(f"operation: {'bypass ' if operation.bypass else ''}{response.status_code}")
        if start in listed:
            assert response.status_code == 201, (operation, start, listed, response.text)
        elif operation.bypass:
            # Bypass skips the grid and the vacancy check only: a refusal is never a 409.
            assert response.status_code in (201, 422), (operation, listed, response.text)
            if response.status_code == 422:
                driver.assert_refused(response, start, listed)
        else:
            driver.assert_refused(response, start, listed)
        if response.status_code == 201:
            appointment = response.json()
            duration = appointment["appointment"]["duration"]
            live.append(Live(appointment["caseId"], start, duration, type_id))

    rng = random.Random(repr(case))  # deterministic: the same case samples the same starts
    candidates = interesting_starts(case.calendar)
    event(f"live bookings at the end: {min(len(live), 5)}{'+' if len(live) >= 5 else ''}")
    for type_id, duration in zip(types, case.calendar.durations, strict=True):
        listed = await driver.vacancies(type_id)
        event(f"listed starts: {'none' if not listed else 'some'}")
        live_holds = [
            Live(h.token, h.start, h.duration, h.type_id)
            for h in held
            if not h.ended and h.expires_at > clock()
        ]
        near = near_live_bookings(listed, live + live_holds, duration, case.calendar.slot_minutes)
        sample = rng.sample(near, min(SAMPLE_LISTED_NEAR, len(near)))
        rest = [s for s in listed if s not in sample]
        sample += rng.sample(rest, min(SAMPLE_LISTED_ELSEWHERE, len(rest)))
        for start in sample:
            response = await driver.book(type_id, start)
            assert response.status_code == 201, (start, listed, response.text)
            await driver.cancel(response.json()["caseId"])
        listed_set = set(listed)
        unlisted = [s for s in candidates if s not in listed_set]
        unlisted = rng.sample(unlisted, min(SAMPLE_UNLISTED // 2, len(unlisted)))
        unlisted += [s for s in rng.sample(range(1440), SAMPLE_UNLISTED) if s not in listed_set]
        for start in unlisted:
            response = await driver.book(type_id, start)
            event(f"unlisted start: {response.status_code} {response.json().get('code')}")
            driver.assert_refused(response, start, listed)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_every_listed_start_books_and_every_other_start_is_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    clock: FakeClock,
    case: Case,
) -> None:
    world, types = await build_world(engine, case)
    clock.set(case.now)
    auth = bearer(settings, world.client_id)
    await check_every_listed_start_books_and_others_are_refused(
        client, world, auth, case, types, clock
    )
