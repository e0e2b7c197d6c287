"""Every error becomes `application/problem+json` (RFC 9457) here, and only here."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from booking.api.schemas import Problem
from booking.service.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    ReceiverUnavailable,
    RuleViolation,
    Unauthenticated,
)
from booking.store.db import DatabaseUnavailable

log = logging.getLogger("booking.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = "5"


class UnsupportedMediaType(DomainError):
    """The request body is not in a format the server reads (415)."""

    code = "unsupported_media_type"
    title = "Unsupported media type"


class Unavailable(DomainError):
    """A dependency (the database) is unreachable; worth retrying later (503)."""

    code = "service_unavailable"
    title = "Service unavailable"


# The one table from errors to HTTP statuses.
STATUS_OF: dict[type[DomainError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    UnsupportedMediaType: 415,
    RuleViolation: 422,
    Unavailable: 503,
    ReceiverUnavailable: 503,
}


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route that can answer these problem statuses."""
    described = {
        400: "The body could not be decoded (bad encoding, nesting too deep).",
        401: "Missing, malformed, expired or badly signed token.",
        403: "The application is disabled or the token lacks the role.",
        404: "Unknown application, service, calendar unit, service type, customer record, "
        "field type, tag, appointment or reservation. (An unknown field type or tag along with "
        "other broken rules is one 422 listing them all.)",
        409: "The slot is not vacant, or the reservation has ended or holds another place; "
        "`nearestVacancies` lists up to three vacant starts.",
        415: "The body is not JSON.",
        413: "The body is larger than MAX_BODY_BYTES.",
        422: "Invalid input, or booking rules broken: `errors` lists every independent "
        "broken rule, each with its `field` and its code in `type`; `code` is the first's.",
        503: "The database is unavailable; retry after `Retry-After` seconds.",
    }
    return {s: {"model": Problem, "description": described[s]} for s in statuses}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: Sequence[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": f"urn:booking-api:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _status_of(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def field_error(field: str, message: str, code: str) -> dict[str, str]:
    """One entry of a problem's `errors`: the field, the rule's stable `code`, and `type`, the
    same code under the name these entries had first (kept for clients that read it)."""
    return {"field": field, "message": message, "code": code, "type": code}


def domain_error_response(error: DomainError) -> ProblemResponse:
    status = _status_of(error)
    errors: list[dict[str, str]] | None = None
    if error.errors:  # several broken rules: each with its own field and code
        errors = [field_error(e.field or "body", e.detail, e.code) for e in error.errors]
    elif error.field and status == 422:
        errors = [field_error(error.field, error.detail, error.code)]
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = _www_authenticate(error)
    if isinstance(error, Unavailable):
        headers["Retry-After"] = RETRY_AFTER_S
    return problem(
        status,
        error.code,
        error.title,
        error.detail,
        errors=errors,
        extra=error.extra,
        headers=headers or None,
    )


def _www_authenticate(error: Unauthenticated) -> str:
    if error.code == "token_missing":
        return 'Bearer realm="booking-api"'
    description = error.detail.replace('"', "'")
    return f'Bearer realm="booking-api", error="invalid_token", error_description="{description}"'


_FRIENDLY = {
    "extra_forbidden": "unknown field: it is not part of this request",
    "missing": "required",
}


# Where FastAPI says a value came from; the client wrote `startTime`, not `body.startTime`.
_SOURCES = frozenset({"body", "path", "query", "header", "cookie"})


def _field_name(loc: Sequence[int | str]) -> str:
    """The field as the client wrote it (`startTime`, `tagIds.0`, `fields.<id>`, `date`), the
    same name the service's rule errors give; `body` for the body as a whole."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    # pydantic marks an error in a mapping's key with a trailing "[key]": the key is the name.
    return ".".join(part for part in parts if part != "[key]") or "body"


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        kind = str(error.get("type", "invalid"))
        message = _FRIENDLY.get(kind, str(error.get("msg", "invalid")))
        if kind == "json_invalid":
            message = (
                f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
            )
        errors.append(field_error(_field_name(error.get("loc", ())), message, kind))
    return errors


async def _on_domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem(422, "validation_failed", "Invalid request", summary, errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    # The routes of included routers too (they are not in `app.routes` themselves).
    for route in iter_route_contexts(request.app.routes):
        if isinstance(route.original_route, APIRoute) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    code = {
        400: "malformed_body",
        404: "route_not_found",
        405: "method_not_allowed",
        413: "body_too_large",
    }.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    if exc.status_code == 400:  # FastAPI could not decode the body (bad UTF-8, too deep ...)
        detail = "The body could not be read as JSON (bad encoding or nesting too deep)."
    return problem(exc.status_code, code, str(exc.detail), detail, headers=headers)


async def _on_database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc.__cause__ or exc).__name__)
    return domain_error_response(
        Unavailable("The database is unavailable; retry shortly.", code="database_unavailable")
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal server error", "An unexpected error occurred.")


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


async def _on_database_error(request: Request, exc: Exception) -> Response:
    """A database error that is no outage (the store raised those as `DatabaseUnavailable`):
    a bug or bad data."""
    # Not the message or the traceback: PostgreSQL quotes the failing row in constraint errors
    # ("DETAIL: Failing row contains (...)"), phone numbers and emails included.
    log.error(
        "database error on %s %s: %s (SQLSTATE %s)",
        request.method,
        request.url.path,
        type(exc).__name__,
        _sqlstate(exc),
    )
    return problem(500, "internal_error", "Internal server error", "An unexpected error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DatabaseUnavailable, _on_database_unavailable)
    app.add_exception_handler(asyncpg.PostgresError, _on_database_error)
    app.add_exception_handler(asyncpg.InterfaceError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
