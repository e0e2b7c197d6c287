"""Every answer carries every field of the original's documented samples: the field lists are
read from the contract itself (`../shared/contract.md`, "The original's documented fields"), so a
field missing from an answer, or added to the contract, fails here."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import builders
from tests.builders import World
from tests.conftest import ROOT
from tests.kit import TOMORROW, book, cancel

# In CI the shared folder is a copy beside the clone; in a worktree it sits beside it too.
CONTRACT = ROOT.parent / "shared" / "contract.md"

Sample = dict[str, "Sample"]  # field name -> the sample's nested fields ({} for a leaf)

# A backticked span, or one of the marks that structure a field list.
_TOKEN = re.compile(r"`([^`]*)`|([(){}.])")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _index_outside_parentheses(text: str, char: str) -> int:
    depth = 0
    for index, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == char and depth == 0:
            return index
    raise ValueError(f"no {char!r} outside parentheses in {text[:80]!r}")


def sample_fields(contract: str, title: str) -> Sample:
    """The fields of the sample titled `**title**`: the backticked names after its first colon,
    up to the first full stop outside parentheses. `name {a, b}` nests a and b under name;
    names in parentheses are comments (`customer (null or {...})` still nests), and a span
    `{a, b}` lists fields itself."""
    heading = f"**{title}**"
    start = contract.index(heading) + len(heading)
    end = contract.find("\n\n", start)
    text = contract[start : end if end != -1 else len(contract)]
    text = text[_index_outside_parentheses(text, ":") + 1 :]
    root: Sample = {}
    stack: list[tuple[Sample, int]] = [(root, 0)]  # (fields, parentheses depth they sit at)
    parentheses, last = 0, ""
    for match in _TOKEN.finditer(text):
        span, mark = match.groups()
        fields, depth = stack[-1]
        if span is not None:
            if span.startswith("{") and span.endswith("}"):
                fields.update({name.strip(): {} for name in span[1:-1].split(",")})
            elif _FIELD_NAME.fullmatch(span) and parentheses == depth:
                fields[span] = {}
                last = span
        elif mark in "()":
            parentheses += 1 if mark == "(" else -1
        elif mark == "{":
            fields[last] = {}
            stack.append((fields[last], parentheses))
        elif mark == "}":
            stack.pop()
        elif parentheses == 0 and len(stack) == 1:  # "." ends the sample
            break
    return root


@cache
def original_sample(title: str) -> Sample:
    sample = sample_fields(CONTRACT.read_text(encoding="utf-8"), title)
    assert len(sample) >= 4, f"could not read the sample {title!r} from {CONTRACT}"
    return sample


def missing_fields(answer: Any, sample: Sample, at: str = "") -> list[str]:
    """The sample's fields that `answer` lacks, by dotted path; nested samples are checked in
    objects and in each item of lists (null stands for an absent object, as in the original)."""
    if isinstance(answer, list):
        return [m for item in answer for m in missing_fields(item, sample, at)]
    if not isinstance(answer, dict):
        return []
    missing = []
    for name, nested in sample.items():
        if name not in answer:
            missing.append(at + name)
        elif nested:
            missing.extend(missing_fields(answer[name], nested, f"{at}{name}."))
    return missing


def test_the_contract_samples_are_read_with_their_nested_fields() -> None:
    calendars = original_sample("List Calendars of a Service")
    assert {"calendarTimestamp", "issues", "user"} <= calendars.keys()
    assert "compBookingRate" in calendars["stats"]
    appointment = original_sample("The appointment")
    assert "noShowProbability" in appointment["appointment"]
    assert appointment["customer"].keys() == {"dataTableId", "recordId", "displayName"}
    assert "language" in appointment  # named again in the heading's comment: read once
    assert original_sample("List Vacancies in a Calendar").keys() == {
        "serviceTypeId",
        "serviceTypeName",
        "duration",
        "slots",
    }


async def _booked_with_customer(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> httpx.Response:
    async with engine.begin() as conn:
        customer_id = await builders.customer(conn, world.organization_id)
    response = await book(client, world, auth, 570, customerRecordId=str(customer_id))
    assert response.status_code == 201, response.text
    return response


async def test_book_answer_carries_every_field_of_the_original_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    booked = await _booked_with_customer(client, world, auth, engine)
    assert missing_fields(booked.json(), original_sample("The appointment")) == []


async def test_list_appointments_answer_carries_every_field_of_the_original_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await _booked_with_customer(client, world, auth, engine)
    listed = await client.get(world.appointments_path(TOMORROW), headers=auth)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()) == 1
    assert missing_fields(listed.json(), original_sample("The appointment")) == []


async def test_get_appointment_answer_carries_every_field_of_the_original_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    booked = await _booked_with_customer(client, world, auth, engine)
    read = await client.get(booked.headers["location"], headers=auth)
    assert read.status_code == 200, read.text
    assert missing_fields(read.json(), original_sample("The appointment")) == []


async def test_cancel_answer_carries_every_field_of_the_original_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    booked = await _booked_with_customer(client, world, auth, engine)
    cancelled = await cancel(client, world, auth, booked.json()["caseId"])
    assert cancelled.status_code == 200, cancelled.text
    assert missing_fields(cancelled.json(), original_sample("The appointment")) == []


async def test_list_calendars_answer_carries_every_field_of_the_original_sample(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    path = f"/{world.application_id}/calendars/{world.service_id}/{TOMORROW}"
    calendars = await client.get(path, headers=auth)
    assert calendars.status_code == 200, calendars.text
    assert len(calendars.json()) == 1
    assert missing_fields(calendars.json(), original_sample("List Calendars of a Service")) == []


async def test_vacancies_answer_carries_every_field_of_the_original_sample(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    vacancies = await client.get(
        world.calendar_path(TOMORROW) + "/vacancies",
        params={"serviceTypeId": str(world.service_type_id)},
        headers=auth,
    )
    assert vacancies.status_code == 200, vacancies.text
    assert missing_fields(vacancies.json(), original_sample("List Vacancies in a Calendar")) == []


# The fields this server added for the original's samples, by schema: OpenAPI gives each its
# type, nullability and meaning; timestamps are date-times.
ADDED_FIELDS = {
    "CalendarOut": [
        "calendarTimestamp",
        "serviceCategoryId",
        "serviceCategoryName",
        "timeZoneId",
        "ianaTimeZoneId",
        "customersDataTableId",
        "phoneNumberFieldTypeId",
        "emailFieldTypeId",
        "user",
        "allowAnonymousAgentBooking",
        "inboxId",
        "inboxName",
        "isInAgentsBookingWindow",
        "agentsBookingActive",
        "isInSelfBookingWindow",
        "selfBookingActive",
        "issues",
    ],
    "CalendarStatsOut": ["capacityMinutes", "bookingRate", "compMinutesBooked", "compBookingRate"],
    "AppointmentTime": ["timeZoneId", "ianaTimeZoneId", "noShowProbability"],
    "AppointmentOut": [
        "serviceCategoryId",
        "serviceCategoryName",
        "serviceTypeColorCode",
        "statusDate",
        "dateOpened",
        "dateClosed",
        "dateCancelled",
        "assignedTo",
        "lockedBy",
        "onlineMeeting",
    ],
    "CustomerRef": ["dataTableId"],
    "CalendarIssueOut": ["code", "text"],
}
TIMESTAMPS = {"calendarTimestamp", "statusDate", "dateOpened", "dateClosed", "dateCancelled"}


def _types(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


async def test_openapi_gives_every_added_field_a_type_and_a_meaning(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for model, names in ADDED_FIELDS.items():
        # Always sent, null or not: a typed client generated from the schema requires each.
        assert set(schemas[model]["required"]) == schemas[model]["properties"].keys(), model
        for name in names:
            schema = schemas[model]["properties"][name]
            assert schema.get("description"), (model, name)
            assert all("type" in t or "$ref" in t for t in _types(schema)), (model, name)
            if name in TIMESTAMPS:
                strings = [t for t in _types(schema) if t.get("type") == "string"]
                assert strings[0]["format"] == "date-time", (model, name)
    nullable = {
        "user",
        "assignedTo",
        "lockedBy",
        "onlineMeeting",
    }  # customersDataTableId: always a table
    for model in ("CalendarOut", "AppointmentOut"):
        for name in nullable & schemas[model]["properties"].keys():
            types = _types(schemas[model]["properties"][name])
            assert {"type": "null"} in [{"type": t.get("type")} for t in types], (model, name)


async def test_openapi_documents_the_conditional_calendar_reads(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/{applicationId}/calendars/{serviceId}/{date}",
        "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments",
        "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/vacancies",
    ):
        read = paths[path]["get"]
        assert "304" in read["responses"], path
        assert "If-None-Match" in [p["name"] for p in read["parameters"]], path
