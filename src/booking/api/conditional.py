"""Conditional reads (RFC 9110): the calendar routes answer with a strong `ETag`, and a request
whose `If-None-Match` names it gets `304 Not Modified` without a body, so a partner's front end
can poll them cheaply.

The tag is a digest of the body itself, not of the calendar-day's stamp: vacancies also change
as time passes (a start that has passed is no longer offered) with no write at all, and a
strong tag must change whenever the bytes do. The stamp still moves the tag of the calendars,
whose body carries it as `calendarTimestamp`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from booking.api.schemas import json_body

IF_NONE_MATCH_PARAMETER = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 1024},
    "description": "The `ETag` of an earlier answer (or `*`): 304 without a body while the "
    "answer is still the same.",
}
ETAG_HEADER = {
    "description": "A strong tag of this answer, for `If-None-Match`.",
    "schema": {"type": "string"},
}
CONDITIONAL_READ: dict[str, Any] = {
    "parameters": [IF_NONE_MATCH_PARAMETER],
    "responses": {"200": {"headers": {"ETag": ETAG_HEADER}}},
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not modified: the `If-None-Match` tag is the current `ETag`.",
        "headers": {"ETag": ETAG_HEADER},
    }
}


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag equal to `tag` by weak comparison."""
    if if_none_match.strip() == "*":
        return True
    return any(
        candidate.strip().removeprefix("W/") == tag for candidate in if_none_match.split(",")
    )


def conditional_json(
    request: Request, content: BaseModel | Sequence[BaseModel] | bytes
) -> Response:
    """The JSON of `content` (models, or their JSON already) with its `ETag`, or 304 when the
    request already has it."""
    body = content if isinstance(content, bytes) else json_body(content)
    tag = entity_tag(body)
    headers = {"ETag": tag}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, 200, headers, media_type="application/json")
