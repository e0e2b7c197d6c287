"""Hostile values in every place a request can carry one: each body member, each `fields` value
of each kind (a booking's, a customer record's), each tag id, each query and path parameter of
every route of the published OpenAPI.
Control characters, lone surrogates, integers past 64 bits or 400 digits long, non-finite numbers
and dates at the ends of the calendar: the answer is never a 5xx.

The other members of each request are valid and name real data (a New York calendar open all day
with no booking window, so far dates reach the time arithmetic), against a real uvicorn server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.settings import Settings
from tests import builders
from tests.conftest import TEST_SECRET, bearer

SETTINGS = Settings(jwt_dev_secret=TEST_SECRET)
DOCUMENT = create_app(SETTINGS, "postgresql+asyncpg://unused@/unused").openapi()
FIELD_KINDS = ("text", "number", "boolean", "date", "choice")
# A customer record's fields, by kind: (the `People` attribute, a valid value as JSON)
CUSTOMER_FIELDS = {
    "text": ("first_name", '"Ada"'),
    "number": ("member_number", "7"),
    "boolean": ("vip", "true"),
    "date": ("born", '"1990-01-01"'),
    "choice": ("tier", '"Gold"'),
    "phone": ("phone", '"+12025550143"'),
    "email": ("email", '"ada@example.com"'),
}

# The values at the edges, each tried in every place: dates at the ends of the calendar and
# past them, numbers past 64 bits or 400 digits long, non-finite ones, integral floats.
EDGE_DATES = ("9999-12-31", "0001-01-01", "9999-12-30", "10000-01-01", "2026-W01-1", "2026-02-30")
EDGE_NUMBERS = (
    "18446744073709551616",
    "-9223372036854775809",
    "1" + "0" * 399,
    "-" + "9" * 400,
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1439.0",
    "570.5",
)
EDGE_JSON = (
    *EDGE_NUMBERS,
    *(json.dumps(d) for d in EDGE_DATES),
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"\\udfff"',
    '"\\ud800\\udc00"',
    '"\\u001b[31m"',
    "true",
    "null",
    "[]",
    "{}",
)
# A path or query parameter goes percent-encoded on the wire; a lone surrogate only as the bytes
# a UTF-8 encoder would write for it (an invalid sequence).
EDGE_PARAMETERS = (*EDGE_DATES, *EDGE_NUMBERS, "-1", "%00", "a%00b", "%ED%A0%80", "%C0%80", "%1B")

# Generated: strings of control characters (NUL included) and lone surrogates, json.dumps writing
# both as \u escapes as a client would, and integers just past the 64-bit range.
hostile_text = st.text(
    alphabet=st.characters(categories=("Cc", "Cs")) | st.sampled_from("a0-:"),
    min_size=1,
    max_size=6,
)
huge_integers = st.integers(min_value=2**63 - 1, max_value=2**70) | st.integers(
    min_value=-(2**70), max_value=-(2**63)
)
generated_json = hostile_text.map(json.dumps) | huge_integers.map(str)
generated_parameter = hostile_text.map(
    lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
) | huge_integers.map(str)


@pytest.fixture
async def hostile_world(engine: AsyncEngine) -> dict[str, str]:
    """The valid value of every parameter and body member, as raw URL or JSON text."""
    async with engine.begin() as conn:
        world = await builders.world(
            conn,
            time_zone="America/New_York",
            hours=((0, 1440),),
            duration=10,
            service_options={"booking_window_days": None},
        )
        customer = await builders.customer(conn, world.organization_id)
        people = await builders.people(conn, world)
        tag = await builders.tag(conn, world.organization_id)
        field_types = {
            kind: await builders.field_type(
                conn,
                world.organization_id,
                kind=kind,
                options=["A", "B"] if kind == "choice" else (),
            )
            for kind in FIELD_KINDS
        }
    tomorrow = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=1)
    return {
        "client_id": world.client_id,
        # path and query parameters
        "applicationId": str(world.application_id),
        "serviceId": str(world.service_id),
        "date": str(tomorrow),
        "cuIndex": "0",
        "caseId": str(uuid.uuid4()),
        "eventId": str(uuid.uuid4()),
        "serviceTypeId": str(world.service_type_id),
        "customerRecordId": str(customer),
        "from": str(tomorrow),
        "to": str(tomorrow),
        "days": "5",
        "channel": "FaceToFace",
        "reservationToken": "unknown-token_0123456789",
        # the booking body (10 minutes at 23:50: the latest start, the farthest instant)
        "body.serviceTypeId": json.dumps(str(world.service_type_id)),
        "body.startTime": "1430",
        "body.channel": '"FaceToFace"',
        "body.language": '"en"',
        "body.customerRecordId": json.dumps(str(customer)),
        "body.contactEmail": '"ada@example.com"',
        "body.preventSelfCheckIn": "false",
        # past capacity: every booking that passes the checks reaches the INSERT
        "body.bypassTimeslotCheck": "true",
        # the other bodies: a hold, a reschedule, a check-in
        "body.holdSeconds": "300",
        "body.date": json.dumps(str(tomorrow)),
        "body.cuIndex": "0",
        "body.mode": '"Agent"',
        "tag": json.dumps(str(tag)),
        **{f"fields.{kind}": str(field_types[kind]) for kind in FIELD_KINDS},
        # the customer routes' bodies (the last name is required)
        "body.queryType": '"KeyField"',
        "body.recordId": json.dumps(str(customer)),
        "body.fieldSlug": '"member-number"',
        "body.fieldValue": '"7"',
        "customer.last_name": str(people.last_name),
        **{
            f"customer.{kind}": str(getattr(people, attribute))
            for kind, (attribute, _) in CUSTOMER_FIELDS.items()
        },
    }


def body_members(operation: dict[str, Any]) -> list[str]:
    if "requestBody" not in operation:
        return []
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return list(model["properties"])


def targets(operation: dict[str, Any]) -> list[str]:
    """Every place of this operation a hostile value can go."""
    places = [
        f"{p['in']}:{p['name']}" for p in operation.get("parameters", []) if p["in"] != "header"
    ]
    members = body_members(operation)
    places += [f"body:{member}" for member in members]
    if "fields" in members:
        kinds = CUSTOMER_FIELDS if "customers" in operation["tags"] else FIELD_KINDS
        places += [f"fields:{kind}" for kind in kinds]
    if "tagIds" in members:
        places.append("tag:")
    return places


def request_with(
    path: str, operation: dict[str, Any], valid: dict[str, str], target: str, hostile: str
) -> tuple[str, bytes | None]:
    """The operation's URL and raw body: every value valid but the targeted one."""
    place, name = target.split(":", 1)
    query = []
    for parameter in operation.get("parameters", []):
        key = parameter["name"]
        if parameter["in"] == "header":
            continue
        value = hostile if target == f"{parameter['in']}:{key}" else valid[key]
        if parameter["in"] == "path":
            path = path.replace("{" + key + "}", value)
        else:
            query.append(f"{key}={value}")
    url = path + ("?" + "&".join(query) if query else "")
    members = body_members(operation)
    if not members:
        return url, None
    body = {m: valid[f"body.{m}"] for m in members if f"body.{m}" in valid}
    if "customers" in operation["tags"]:
        if "fields" in members:
            body["fields"] = customer_fields(
                operation, valid, name if place == "fields" else None, hostile
            )
    else:
        fields = {
            valid[f"fields.{kind}"]: {"text": '"x"', "number": "2", "boolean": "true"}.get(
                kind, '"2026-01-01"' if kind == "date" else '"A"'
            )
            for kind in FIELD_KINDS
        }
        if place == "fields":
            fields[valid[f"fields.{name}"]] = hostile
        body["fields"] = "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
        body["tagIds"] = f"[{hostile if place == 'tag' else valid['tag']}]"
    if place == "body":
        body[name] = hostile
    raw = "{" + ", ".join(f'"{member}": {value}' for member, value in body.items()) + "}"
    return url, raw.encode()


def customer_fields(
    operation: dict[str, Any], valid: dict[str, str], hostile_kind: str | None, hostile: str
) -> str:
    """A customer body's `fields`: an object on create, an array of changes on update."""
    values = {valid[f"customer.{kind}"]: value for kind, (_, value) in CUSTOMER_FIELDS.items()}
    values[valid["customer.last_name"]] = '"Lovelace"'
    if hostile_kind is not None:
        values[valid[f"customer.{hostile_kind}"]] = hostile
    if operation["operationId"] == "updateCustomer":
        changes = [f'{{"fieldTypeId": "{k}", "value": {v}}}' for k, v in values.items()]
        return "[" + ", ".join(changes) + "]"
    return "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"


# Every operation with somewhere to put a value (/healthz and /readyz take none).
OPERATIONS = [
    (method, path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if targets(operation)
]


@pytest.fixture
def http(live_servers: list[str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_servers[0], timeout=10) as client:
        yield client


CASES = [
    (method, path, operation, target)
    for method, path, operation in OPERATIONS
    for target in targets(operation)
]
CASE_IDS = [f"{operation['operationId']}-{target}" for _, _, operation, target in CASES]


def in_body(target: str) -> bool:
    return target.split(":")[0] in ("body", "fields", "tag")


def assert_no_server_error(
    http: httpx.Client,
    method: str,
    path: str,
    operation: dict[str, Any],
    valid: dict[str, str],
    target: str,
    hostile: str,
) -> None:
    url, body = request_with(path, operation, valid, target, hostile)
    roles = [builders.MANAGER, builders.CUSTOMERS_MANAGER]
    headers = {**bearer(SETTINGS, valid["client_id"], roles), "content-type": "application/json"}
    response = http.request(method.upper(), url, content=body, headers=headers)
    assert response.status_code < 500, (target, hostile, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("method", "path", "operation", "target"), CASES, ids=CASE_IDS)
def test_edge_values_anywhere_in_a_request_never_get_a_5xx(
    method: str,
    path: str,
    operation: dict[str, Any],
    target: str,
    hostile_world: dict[str, str],
    http: httpx.Client,
) -> None:
    for hostile in EDGE_JSON if in_body(target) else EDGE_PARAMETERS:
        assert_no_server_error(http, method, path, operation, hostile_world, target, hostile)


@pytest.mark.parametrize(("method", "path", "operation", "target"), CASES, ids=CASE_IDS)
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_control_characters_surrogates_and_huge_integers_never_get_a_5xx(
    method: str,
    path: str,
    operation: dict[str, Any],
    target: str,
    hostile_world: dict[str, str],
    http: httpx.Client,
    data: st.DataObject,
) -> None:
    hostile = data.draw(generated_json if in_body(target) else generated_parameter)
    assert_no_server_error(http, method, path, operation, hostile_world, target, hostile)
