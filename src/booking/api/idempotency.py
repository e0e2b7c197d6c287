"""Idempotency keys, the API's adapter for the service's `OnceOnly`: a retried request gets
the stored HTTP answer instead of a second booking.

The key is claimed by inserting its row *inside the write's transaction* (a calendar-day's,
or a customer record's), before the checks. A retry that arrives while the first request is
still running blocks on that uncommitted row (Postgres waits to know whether the unique key
conflicts), then sees the committed answer and replays it; if the first request failed and
rolled back, the retry simply runs. So a key can never produce two bookings, and no "in
progress" marker can outlive a crashed request.

Only successful answers are stored: a refused request (409, 422 ...) leaves no trace, and
retrying it with the same key runs it again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import asyncpg
import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from booking.service.errors import RuleViolation
from booking.store import idempotency as store

MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"

# Read from the request rather than declared as a parameter (each declared header costs its own
# parsing on every request); documented in OpenAPI by hand.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": "Retry safely: a repeat with the same key and body replays the first answer "
    "(with `Idempotent-Replayed: true`) instead of booking twice; the same key with another "
    "body is 422. Keys expire after IDEMPOTENCY_TTL_S (default 24 h).",
}
WITH_IDEMPOTENCY_KEY = {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    headers: dict[str, str]

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response(
            self.body, self.status_code, {**self.headers, **(headers or {})}, "application/json"
        )


Written = TypeVar("Written")  # what the write answers: an appointment, a hold, a customer record
Render = Callable[[Written], StoredResponse]


def request_fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """What makes two requests 'the same': method, path and the parsed body (so formatting and
    key order do not matter)."""
    payload = (
        None if body is None else body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    )
    canonical = orjson.dumps(
        {"method": method, "path": path, "body": payload}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise RuleViolation(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
            field="Idempotency-Key",
        )
    return key


@dataclass(slots=True)
class IdempotencyKey(Generic[Written]):
    """One request's key: claims it, replays the stored answer, or stores the new one."""

    application_id: uuid.UUID
    key: str
    fingerprint: str
    now: datetime
    ttl: timedelta
    render: Render[Written]
    answer: StoredResponse | None = field(default=None)

    async def claim(self, conn: asyncpg.Connection) -> StoredResponse | None:
        """None: go ahead and process the request. A StoredResponse: replay it. RuleViolation:
        the key was used for a different request."""
        expires_at = self.now + self.ttl
        args = (self.application_id, self.key, self.fingerprint, self.now, expires_at)
        if await store.claim(conn, *args):
            return None
        row = await store.claimed(conn, self.application_id, self.key)
        if row is None:  # it expired and the purge deleted it meanwhile: claim it afresh
            return await self.claim(conn)
        if row["expires_at"] <= self.now:  # an expired key is as good as new
            await store.renew(conn, *args)
            return None
        if row["request_hash"] != self.fingerprint:
            raise RuleViolation(
                "This Idempotency-Key was already used with a different request.",
                code="idempotency_key_reused",
                field="Idempotency-Key",
            )
        return StoredResponse(
            row["status_code"], row["response_body"], dict(row["response_headers"] or {})
        )

    async def store(self, conn: asyncpg.Connection, written: Written) -> None:
        answer = self.render(written)
        await store.store_answer(
            conn, self.application_id, self.key, answer.status_code, answer.body, answer.headers
        )
        self.answer = answer


def idempotency_key(
    request: Request,
    application_id: uuid.UUID,
    ttl_s: float,
    now: datetime,
    body: BaseModel | None,
    render: Render[Written],
) -> IdempotencyKey[Written] | None:
    """The request's Idempotency-Key (422 when malformed), or None when it sends none."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = check_key(key)
    fingerprint = request_fingerprint(request.method, request.url.path, body)
    return IdempotencyKey(application_id, key, fingerprint, now, timedelta(seconds=ttl_s), render)


def respond(
    outcome: Written | StoredResponse,
    key: IdempotencyKey[Written] | None,
    render: Render[Written],
) -> Response:
    """The answer of a write: the stored one replayed (marked so), or the new one."""
    if isinstance(outcome, StoredResponse):
        return outcome.response({REPLAYED: "true"})
    answer = key.answer if key is not None and key.answer is not None else render(outcome)
    return answer.response()
