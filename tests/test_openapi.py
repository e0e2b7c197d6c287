"""The published OpenAPI document is what generated clients and linters read: readable operation
ids, declared tags, the response headers, shared enums, timestamps typed as such, examples that
work against the demo data, and docs that load without a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.settings import Settings
from booking.store.loader import load_file
from booking.store.models import CHANNELS, STATUSES
from tests.builders import CUSTOMERS_MANAGER, MANAGER
from tests.conftest import ROOT, TEST_SECRET, bearer

DEMO = ROOT / "examples" / "demo.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(jwt_dev_secret=TEST_SECRET), "postgresql+asyncpg://unused@/unused")
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_operation_ids_are_the_names_a_generated_client_should_use(
    document: dict[str, Any],
) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations(document)}
    calendar_unit = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}"
    assert ids == {
        ("get", "/healthz"): "healthz",
        ("get", "/readyz"): "readyz",
        ("post", calendar_unit + "/appointments"): "bookAppointment",
        ("get", calendar_unit + "/appointments"): "listAppointments",
        ("get", "/{applicationId}/appointments/{caseId}"): "getAppointment",
        ("delete", calendar_unit + "/appointments/{caseId}"): "cancelAppointment",
        ("post", calendar_unit + "/appointments/{caseId}/actions/checkIn"): "checkInAppointment",
        ("post", calendar_unit + "/appointments/{caseId}/actions/reschedule"): (
            "rescheduleAppointment"
        ),
        ("post", calendar_unit + "/reservations"): "holdSlot",
        ("delete", calendar_unit + "/reservations/{reservationToken}"): "releaseReservation",
        ("patch", calendar_unit + "/reservations/{reservationToken}"): "extendReservation",
        ("get", calendar_unit + "/vacancies"): "listVacancies",
        ("get", "/{applicationId}/calendars/{serviceId}/{date}"): "listCalendars",
        ("get", "/{applicationId}/calendars/{serviceId}/vacancies"): "listRangeVacancies",
        ("get", "/{applicationId}/calendars/{serviceId}/first-vacancies"): "listFirstVacancies",
        ("get", "/{applicationId}/services"): "listServices",
        ("get", "/{applicationId}/field-types"): "listFieldTypes",
        ("get", "/{applicationId}/tags"): "listTags",
        ("get", "/{applicationId}/languages"): "listLanguages",
        ("post", "/{applicationId}/customers"): "createCustomer",
        ("post", "/{applicationId}/customers/query"): "queryCustomer",
        ("get", "/{applicationId}/customers/{customerRecordId}"): "getCustomer",
        ("patch", "/{applicationId}/customers/{customerRecordId}"): "updateCustomer",
        ("delete", "/{applicationId}/customers/{customerRecordId}"): "eraseCustomer",
        ("get", "/{applicationId}/customers/{customerRecordId}/appointments"): (
            "listCustomerAppointments"
        ),
        ("get", "/{applicationId}/webhooks/undelivered"): "listUndeliveredWebhookEvents",
        (
            "post",
            "/{applicationId}/webhooks/events/{eventId}/redeliver",
        ): "redeliverWebhookEvent",
    }


def test_every_tag_used_is_declared_with_a_description(document: dict[str, Any]) -> None:
    declared = {tag["name"]: tag.get("description") for tag in document["tags"]}
    used = {tag for _, _, op in operations(document) for tag in op["tags"]}
    assert used == set(declared)
    assert all(declared.values()), declared


def test_servers_are_declared(document: dict[str, Any]) -> None:
    assert document["servers"] == [{"url": "/", "description": "This server"}]


def test_every_utc_timestamp_is_a_date_time(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    timestamps = {
        "AppointmentOut": [
            "statusDate",
            "referenceDate",
            "dateOpened",
            "dateClosed",
            "dateCancelled",
        ],
        "AppointmentTime": ["timeUtc", "reservationExpiryDate"],
    }
    for model, names in timestamps.items():
        for name in names:
            prop = schemas[model]["properties"][name]
            variants = prop.get("anyOf", [prop])
            assert {"type": "string", "format": "date-time"}.items() <= variants[0].items(), (
                model,
                name,
            )
    # Wall-clock readings carry no offset: a pattern, not the RFC 3339 date-time format.
    for model, name in [("AppointmentTime", "timeLocal"), ("CalendarOut", "date")]:
        prop = schemas[model]["properties"][name]
        assert "format" not in prop
        assert re.fullmatch(prop["pattern"], "2026-12-01T09:30:00")


def test_channel_is_one_enum_for_request_and_response_and_status_is_an_enum(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Channel"]["enum"] == list(CHANNELS)
    assert schemas["AppointmentStatus"]["enum"] == list(STATUSES)
    channel = "#/components/schemas/Channel"
    assert schemas["BookAppointmentRequest"]["properties"]["channel"]["$ref"] == channel
    assert schemas["AppointmentOut"]["properties"]["channel"]["$ref"] == channel
    status = schemas["AppointmentOut"]["properties"]["status"]
    assert status["$ref"] == "#/components/schemas/AppointmentStatus"


def header_names(response: dict[str, Any]) -> set[str]:
    return set(response.get("headers", {}))


def test_response_headers_are_documented(document: dict[str, Any]) -> None:
    components = document["components"]["headers"]
    by_id = {op["operationId"]: op for _, _, op in operations(document)}
    assert {"Location", "Idempotent-Replayed"} <= header_names(
        by_id["bookAppointment"]["responses"]["201"]
    )
    assert "Idempotent-Replayed" in header_names(by_id["cancelAppointment"]["responses"]["200"])
    for _, _, op in operations(document):
        for status, response in op["responses"].items():
            names = header_names(response)
            assert {"RateLimit", "RateLimit-Policy"} <= names, (op["operationId"], status)
            if status == "401":
                assert "WWW-Authenticate" in names
            if status in ("429", "503"):
                assert "Retry-After" in names
            for name, header in response.get("headers", {}).items():
                assert header["$ref"] == f"#/components/headers/{name}"
                assert components[name]["description"]


def test_errors_are_problem_json(document: dict[str, Any]) -> None:
    for _, _, op in operations(document):
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert set(response["content"]) == {"application/problem+json"}


# --- the examples work against the demo organization ---------------------------------------


def parameter_example(parameter: dict[str, Any]) -> object:
    if "example" in parameter:
        return parameter["example"]
    examples = parameter["schema"].get("examples")
    return examples[0] if examples else None


def example_request(operation: dict[str, Any], path: str) -> tuple[str, dict[str, str]] | None:
    """The operation's path and query from the examples, or None if a required parameter has
    no example (a caseId cannot have one: the demo data has no appointments)."""
    query: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] not in ("path", "query"):
            continue
        value = parameter_example(parameter)
        if value is None:
            if parameter.get("required"):
                return None
            continue
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", str(value))
        else:
            query[parameter["name"]] = str(value)
    return path, query


def body_examples(operation: dict[str, Any], document: dict[str, Any]) -> list[Any]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return []
    ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
    examples: list[Any] = document["components"]["schemas"][ref]["examples"]
    return examples


@pytest.fixture
async def demo_app(app: FastAPI, engine: AsyncEngine) -> FastAPI:
    await load_file(engine, DEMO)
    return app


async def test_every_example_request_succeeds_against_the_demo_data(
    demo_app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    document = demo_app.openapi()
    auth = bearer(settings, "demo-partner", [MANAGER, CUSTOMERS_MANAGER, "Webhooks Operator"])
    tried = set()
    # An erasure last: it takes away the customer record the other examples read.
    for method, path, operation in sorted(operations(document), key=lambda o: o[0] == "delete"):
        request = example_request(operation, path)
        if request is None:
            continue
        url, query = request
        bodies = body_examples(operation, document) if method in ("post", "patch") else [None]
        assert bodies, f"{operation['operationId']} has no body example"
        for body in bodies:
            response = await client.request(method, url, params=query, json=body, headers=auth)
            assert response.status_code < 300, (operation["operationId"], response.text)
        tried.add(operation["operationId"])
    assert tried == {
        "healthz",
        "readyz",
        "bookAppointment",
        "listAppointments",
        "holdSlot",
        "listVacancies",
        "listCalendars",
        "listRangeVacancies",
        "listFirstVacancies",
        "listServices",
        "listFieldTypes",
        "listTags",
        "listLanguages",
        "createCustomer",
        "queryCustomer",
        "getCustomer",
        "updateCustomer",
        "eraseCustomer",
        "listCustomerAppointments",
        "listUndeliveredWebhookEvents",
    }


# --- /docs works offline -------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_assets_the_server_serves(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html
    assert "https://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert not asset.startswith("//"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
