"""The published OpenAPI document: what FastAPI generates from the routes, plus what generated
clients and linters need and the routes do not say: readable operation ids, declared tags,
servers, the response headers, problem+json error bodies and shared enums."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.alias_generators import to_camel

from booking.api.conditional import ETAG_HEADER
from booking.api.deps import BEARER_SCHEME
from booking.api.schemas import ENUM_COMPONENTS

TAGS: list[dict[str, str]] = [
    {
        "name": "appointments",
        "description": "Book, list, read, cancel, check in and reschedule the appointments "
        "of a calendar unit.",
    },
    {
        "name": "calendars",
        "description": "A service's calendars on a date and their vacant start times.",
    },
    {
        "name": "customers",
        "description": "Customer records (role Customers Manager): create, find by id or key "
        "field, read, update, erase; and a customer's appointments across calendars.",
    },
    {
        "name": "discovery",
        "description": "What a booking can name: services, field types, tags and languages.",
    },
    {
        "name": "reservations",
        "description": "Slot holds: keep a vacant slot for a while, for a booking to take.",
    },
    {"name": "ops", "description": "Liveness and readiness probes for the deployment."},
    {
        "name": "webhooks",
        "description": "The organization's webhook events not delivered, and their redelivery.",
    },
]

# Relative: the server that serves this document, wherever it is deployed.
SERVERS: list[dict[str, str]] = [{"url": "/", "description": "This server"}]


# Where a route function's name does not say what the operation is called.
def operation_id(route: APIRoute) -> str:
    """The `generate_unique_id_function` of the app: `bookAppointment` from `book_appointment`
    (FastAPI's default, `book_appointment__applicationId__calendars_..._post`, becomes a
    generated client's function name)."""
    return to_camel(route.name)


# Examples of the path and query parameters: the demo organization's (examples/demo.yaml),
# so that each example request of this document succeeds against the demo data.
PARAMETER_EXAMPLES: dict[str, object] = {
    "applicationId": "6f1c2a4e-0000-4000-8000-000000000101",
    "serviceId": "6f1c2a4e-0000-4000-8000-000000000201",
    "cuIndex": 0,
    "serviceTypeId": "6f1c2a4e-0000-4000-8000-000000000301",
    "customerRecordId": "6f1c2a4e-0000-4000-8000-000000000501",
}

HEADERS: dict[str, dict[str, Any]] = {
    "ETag": ETAG_HEADER,
    "Location": {
        "description": "The booked appointment's URL (Read one appointment).",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answer replays the first answer to the same "
        "Idempotency-Key; absent on a first answer.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "The Bearer challenge (RFC 6750), with `error` and "
        "`error_description` when a token was sent.",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "The quota policies that apply to this caller "
        "(draft-ietf-httpapi-ratelimit-headers), when rate limits are configured.",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "What remains of the quota and when it resets "
        "(draft-ietf-httpapi-ratelimit-headers), when rate limits are configured.",
        "schema": {"type": "string"},
    },
}

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"


def _ref(header: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{header}"}


def _repeatable(schema: dict[str, Any]) -> bool:
    return any(s.get("type") == "array" for s in [schema, *schema.get("anyOf", [])])


def _document_operation(route: str, operation: dict[str, Any]) -> None:
    # Every application route needs the bearer token: declared here rather than with a
    # security dependency, which would cost its solving on every request.
    if route.startswith("/{applicationId}"):
        operation["security"] = [{BEARER_SCHEME: []}]
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        # A repeatable query parameter (the range routes' `cuIndex`) takes no single example.
        if parameter["name"] in PARAMETER_EXAMPLES and not _repeatable(parameter["schema"]):
            parameter["example"] = PARAMETER_EXAMPLES[parameter["name"]]
    replayable = any(p["name"] == "Idempotency-Key" for p in parameters)
    # Any request can meet a rate limit (its application's, or its client address's).
    operation.setdefault("responses", {}).setdefault(
        "429", {"description": "A rate limit is exhausted: retry after `Retry-After` seconds."}
    )
    for status, response in operation["responses"].items():
        # FastAPI files every response model under application/json (or none, for a bare
        # `responses={503: {}}`); errors are served as application/problem+json.
        if status[0] in "45":
            content = response.setdefault("content", {})
            problem = content.pop("application/json", {"schema": {"$ref": PROBLEM_REF}})
            content[PROBLEM_MEDIA_TYPE] = problem
        headers = response.setdefault("headers", {})
        if "ETag" in headers:
            headers["ETag"] = _ref("ETag")
        if status == "201":
            headers["Location"] = _ref("Location")
        if replayable and status[0] == "2":
            headers["Idempotent-Replayed"] = _ref("Idempotent-Replayed")
        if status == "401":
            headers["WWW-Authenticate"] = _ref("WWW-Authenticate")
        if status in ("429", "503"):
            headers["Retry-After"] = _ref("Retry-After")
        headers["RateLimit-Policy"] = _ref("RateLimit-Policy")
        headers["RateLimit"] = _ref("RateLimit")


def _refer_to_named_enums(node: Any) -> None:
    """pydantic inlines an enum wherever a model uses it: refer each use of an enum of
    ENUM_COMPONENTS to its one component instead."""
    if isinstance(node, dict):
        for name, component in ENUM_COMPONENTS.items():
            if node.get("enum") == component["enum"]:
                del node["enum"]
                node.pop("type", None)
                node["$ref"] = f"#/components/schemas/{name}"
        for value in node.values():
            _refer_to_named_enums(value)
    elif isinstance(node, list):
        for value in node:
            _refer_to_named_enums(value)


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The app's `openapi()`: built once, on the first call."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=TAGS,
            servers=SERVERS,
        )
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT of the registered application.",
            }
        }
        components["headers"] = HEADERS
        schemas = components.setdefault("schemas", {})
        _refer_to_named_enums(schemas)
        schemas.update(ENUM_COMPONENTS)
        for route, path in schema.get("paths", {}).items():
            for operation in path.values():
                _document_operation(route, operation)
        app.openapi_schema = schema
    return app.openapi_schema
