"""Values that JSON allows but the server cannot store or compute with (NUL, lone surrogates,
integers past 64 bits, far dates) are a 422 naming the field, never a 500."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.service.wallclock import EARLIEST_DATE, LATEST_DATE, instant_of
from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, bearer

DAY = TODAY + timedelta(days=1)
JSON = {"content-type": "application/json"}
FAR_DATE = "9999-12-31"


def assert_422_naming(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    return problem


def with_raw_member(body: dict[str, Any], member: str, raw_json: str) -> bytes:
    """The body as JSON text with one more member written verbatim (1e400, a 400-digit integer
    and a lone surrogate escape are valid JSON text that json.dumps would not write)."""
    return (json.dumps(body)[:-1] + f', "{member}": {raw_json}}}').encode()


async def post_raw(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], raw: bytes
) -> httpx.Response:
    return await client.post(world.appointments_path(DAY), content=raw, headers={**auth, **JSON})


@pytest.mark.parametrize(
    ("kind", "raw_value"),
    [
        ("text", '"a\\u0000b"'),
        ("text", '"\\ud800"'),
        ("text", '"a\\udfffb"'),
        ("number", "18446744073709551616"),
        ("number", "-9223372036854775809"),
        ("number", "1" + "0" * 399),
        ("number", "1e400"),
        ("number", "NaN"),
        ("number", "-Infinity"),
    ],
    ids=[
        "nul",
        "lone-high-surrogate",
        "lone-low-surrogate",
        "2^64",
        "below-int64",
        "400-digits",
        "1e400",
        "nan",
        "-infinity",
    ],
)
async def test_field_value_json_cannot_carry_is_422_naming_the_field(
    client: httpx.AsyncClient,
    conn: AsyncConnection,
    world: World,
    auth: dict[str, str],
    kind: str,
    raw_value: str,
) -> None:
    async with conn.begin():
        field_type_id = await builders.field_type(conn, world.organization_id, kind=kind)
    raw = with_raw_member(world.body(570), "fields", f'{{"{field_type_id}": {raw_value}}}')
    assert_422_naming(await post_raw(client, world, auth, raw), f"fields.{field_type_id}")


async def test_a_64_bit_number_field_value_is_stored(
    client: httpx.AsyncClient, conn: AsyncConnection, world: World, auth: dict[str, str]
) -> None:
    async with conn.begin():
        field_type_id = await builders.field_type(conn, world.organization_id, kind="number")
    body = world.body(570, fields={str(field_type_id): 2**63 - 1})
    response = await client.post(world.appointments_path(DAY), json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["fields"] == {str(field_type_id): 2**63 - 1}


@pytest.mark.parametrize(
    ("member", "raw_value"),
    [
        ("language", '"e\\u0000n"'),
        ("contactPhoneNumber", '"+1 202 555 0143\\u0000"'),
        ("contactEmail", '"ada\\u0000@example.com"'),
        ("language", '"\\ud800"'),
        ("contactEmail", '"\\udc00@example.com"'),
    ],
)
async def test_nul_or_lone_surrogate_in_a_string_is_422_naming_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], member: str, raw_value: str
) -> None:
    raw = with_raw_member(world.body(570), member, raw_value)
    problem = assert_422_naming(await post_raw(client, world, auth, raw), member)
    assert problem["code"] == "validation_failed"


@pytest.mark.parametrize("raw_value", ["1" + "0" * 399, "18446744073709551616", "1e400"])
async def test_start_time_beyond_any_minute_is_422_naming_it(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], raw_value: str
) -> None:
    body = world.body(570)
    del body["startTime"]
    raw = with_raw_member(body, "startTime", raw_value)
    assert_422_naming(await post_raw(client, world, auth, raw), "startTime")


# --- far dates: 23:50 on 9999-12-31 in New York is 04:50 UTC in year 10000 -----------------------


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "America/New_York", "UTC"])
def test_every_wall_time_of_the_accepted_dates_has_an_instant(zone: str) -> None:
    tz = ZoneInfo(zone)
    assert instant_of(EARLIEST_DATE, 0, tz) is not None
    assert instant_of(LATEST_DATE, 1439, tz) is not None


def test_the_day_after_the_last_accepted_date_would_overflow_west_of_utc() -> None:
    """Why dates past LATEST_DATE are refused where they come in."""
    with pytest.raises(OverflowError):
        instant_of(LATEST_DATE + timedelta(days=1), 1430, ZoneInfo("America/New_York"))


@pytest.fixture
async def far_future_world(conn: AsyncConnection) -> World:
    """New York, no booking window, open all day: every date is bookable."""
    async with conn.begin():
        return await builders.world(
            conn,
            time_zone="America/New_York",
            hours=((0, 1440),),
            service_options={"booking_window_days": None},
        )


@pytest.mark.parametrize("on_date", [FAR_DATE, "0001-01-01"])
async def test_booking_on_a_date_past_the_representable_range_is_422_naming_the_date(
    client: httpx.AsyncClient, far_future_world: World, settings: Settings, on_date: str
) -> None:
    auth = bearer(settings, far_future_world.client_id)
    response = await client.post(
        far_future_world.appointments_path(on_date), json=far_future_world.body(1430), headers=auth
    )
    assert_422_naming(response, "date")


@pytest.mark.parametrize("on_date", [FAR_DATE, "0001-01-01"])
async def test_vacancies_on_a_date_past_the_representable_range_are_422_naming_the_date(
    client: httpx.AsyncClient, far_future_world: World, settings: Settings, on_date: str
) -> None:
    auth = bearer(settings, far_future_world.client_id)
    path = far_future_world.calendar_path(on_date) + "/vacancies"
    response = await client.get(
        path, params={"serviceTypeId": str(far_future_world.service_type_id)}, headers=auth
    )
    assert_422_naming(response, "date")


async def test_the_last_representable_date_still_has_vacancies(
    client: httpx.AsyncClient, far_future_world: World, settings: Settings
) -> None:
    auth = bearer(settings, far_future_world.client_id)
    path = far_future_world.calendar_path("9999-12-30") + "/vacancies"
    response = await client.get(
        path, params={"serviceTypeId": str(far_future_world.service_type_id)}, headers=auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["slots"][-1] == 1410


# --- field kind `date` -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2026-W01-1", "20260101", "2026-001", "2026-1-01", "\uff12\uff10\uff12\uff16-01-01"]
)
async def test_date_field_takes_only_yyyy_mm_dd(
    client: httpx.AsyncClient,
    conn: AsyncConnection,
    world: World,
    auth: dict[str, str],
    value: str,
) -> None:
    async with conn.begin():
        field_type_id = await builders.field_type(conn, world.organization_id, kind="date")
    body = world.body(570, fields={str(field_type_id): value})
    response = await client.post(world.appointments_path(DAY), json=body, headers=auth)
    problem = assert_422_naming(response, f"fields.{field_type_id}")
    assert problem["code"] == "invalid_field_value"


async def test_date_field_takes_a_calendar_date(
    client: httpx.AsyncClient, conn: AsyncConnection, world: World, auth: dict[str, str]
) -> None:
    async with conn.begin():
        field_type_id = await builders.field_type(conn, world.organization_id, kind="date")
    body = world.body(570, fields={str(field_type_id): "1990-02-28"})
    response = await client.post(world.appointments_path(DAY), json=body, headers=auth)
    assert response.status_code == 201, response.text


# --- startTime is a JSON integer, however it is written --------------------------------------


@pytest.mark.parametrize("raw_start", ["570.0", "5.7e2", "57E1"])
async def test_start_time_written_as_an_integral_number_is_accepted(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], raw_start: str
) -> None:
    body = world.body(570)
    del body["startTime"]
    response = await post_raw(client, world, auth, with_raw_member(body, "startTime", raw_start))
    assert response.status_code == 201, response.text
    assert response.json()["appointment"]["start"] == 570


@pytest.mark.parametrize("start", [570.5, "570", True, False, None, [570], 1439.0000001])
async def test_start_time_that_is_no_integer_is_refused(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], start: object
) -> None:
    response = await client.post(
        world.appointments_path(DAY), json=world.body(570, startTime=start), headers=auth
    )
    assert_422_naming(response, "startTime")
