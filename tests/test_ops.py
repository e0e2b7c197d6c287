"""Operations: health, readiness, request ids, structured logs, the published OpenAPI."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from booking.api.middleware import JsonLogFormatter
from tests.builders import World
from tests.conftest import TODAY


async def test_healthz_and_readyz_answer_when_all_is_well(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_every_response_carries_a_request_id_and_server_timing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["server-timing"].startswith("app;dur=")
    other = await client.get("/healthz")
    assert other.headers["x-request-id"] != response.headers["x-request-id"]


async def test_a_sane_incoming_request_id_is_kept_and_an_insane_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "partner-42.a_b:c"})
    assert kept.headers["x-request-id"] == "partner-42.a_b:c"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"


async def test_access_log_is_one_json_line_per_request_with_its_request_id(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="booking.access")
    response = await client.get(
        world.calendar_path(TODAY) + f"/vacancies?serviceTypeId={world.service_type_id}",
        headers={**auth, "X-Request-ID": "trace-me"},
    )
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "booking.access"]
    assert len(records) == 1
    line = json.loads(JsonLogFormatter().format(records[0]))
    assert line["request_id"] == "trace-me"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["path"].endswith("/vacancies")
    assert isinstance(line["duration_ms"], float)


async def test_openapi_describes_every_route_with_models_and_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    book = paths["/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments"]["post"]
    body_schema = book["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_schema.endswith("/BookAppointmentRequest")
    assert spec["components"]["schemas"]["BookAppointmentRequest"]["examples"]
    assert book["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AppointmentOut"
    )
    for status in ("401", "403", "404", "409", "422"):
        content = book["responses"][status]["content"]
        assert list(content) == ["application/problem+json"], status
    assert {"HTTPBearer": []} in book["security"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    parameters = {(p["in"], p["name"]) for p in book["parameters"]}
    assert parameters == {
        ("path", "applicationId"),
        ("path", "serviceId"),
        ("path", "date"),
        ("path", "cuIndex"),
        ("header", "Idempotency-Key"),
    }
    cancel = paths["/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments/{caseId}"][
        "delete"
    ]
    assert ("header", "Idempotency-Key") in {(p["in"], p["name"]) for p in cancel["parameters"]}
    assert "security" not in paths["/healthz"]["get"]
    expected = {
        "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments",
        "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments/{caseId}",
        "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/vacancies",
        "/{applicationId}/calendars/{serviceId}/{date}",
        "/{applicationId}/appointments/{caseId}",
        "/{applicationId}/services",
        "/{applicationId}/field-types",
        "/{applicationId}/tags",
        "/{applicationId}/languages",
        "/healthz",
        "/readyz",
    }
    assert expected <= set(paths)
    assert "/bench/bare" not in paths


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
