"""Idempotency keys: a retried request gets the stored answer instead of a second booking.

The key is claimed by inserting its row *inside the same transaction* as the booking. A retry
that arrives while the first request is still running blocks on that uncommitted row (Postgres
waits to know whether the unique key conflicts), then sees the committed answer and replays it;
if the first request failed and rolled back, the retry simply runs. So a key can never produce two
bookings, and no "in progress" marker can outlive a crashed request.

Only successful answers are stored: a refused request (409, 422 ...) leaves no trace, and
retrying it with the same key runs it again.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import orjson

from booking.service.errors import RuleViolation

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    headers: dict[str, str]


def request_fingerprint(method: str, path: str, payload: object) -> str:
    """What makes two requests 'the same': method, path and the parsed body (so formatting and
    key order do not matter)."""
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


_CLAIM = """
    INSERT INTO idempotency_record (application_id, key, request_hash, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT DO NOTHING
    RETURNING key
"""

_CLAIMED = """
    SELECT request_hash, status_code, response_body, response_headers, expires_at
    FROM idempotency_record
    WHERE application_id = $1 AND key = $2
    FOR UPDATE
"""

_RENEW = """
    UPDATE idempotency_record
    SET request_hash = $3, status_code = NULL, response_body = NULL, response_headers = NULL,
        created_at = $4, expires_at = $5
    WHERE application_id = $1 AND key = $2
"""

_STORE = """
    UPDATE idempotency_record
    SET status_code = $3, response_body = $4, response_headers = $5
    WHERE application_id = $1 AND key = $2
"""


async def claim(
    conn: asyncpg.Connection,
    application_id: uuid.UUID,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> StoredResponse | None:
    """Claim `key` in the caller's transaction. None: go ahead and process the request.
    A StoredResponse: replay it. RuleViolation: the key was used for a different request."""
    expires_at = now + ttl
    if await conn.fetchval(_CLAIM, application_id, key, fingerprint, now, expires_at) is not None:
        return None
    row = await conn.fetchrow(_CLAIMED, application_id, key)
    if row is None:  # it expired and the purge deleted it meanwhile: claim it afresh
        return await claim(conn, application_id, key, fingerprint, now, ttl)
    if row["expires_at"] <= now:  # an expired key is as good as new
        await conn.execute(_RENEW, application_id, key, fingerprint, now, expires_at)
        return None
    if row["request_hash"] != fingerprint:
        raise RuleViolation(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
            field="Idempotency-Key",
        )
    return StoredResponse(
        row["status_code"], row["response_body"], dict(row["response_headers"] or {})
    )


async def store(
    conn: asyncpg.Connection, application_id: uuid.UUID, key: str, response: StoredResponse
) -> None:
    await conn.execute(
        _STORE,
        application_id,
        key,
        response.status_code,
        response.body,
        orjson.dumps(response.headers).decode(),  # jsonb goes in as JSON text
    )


async def purge_expired(conn: asyncpg.Connection, now: datetime) -> int:
    status: str = await conn.execute("DELETE FROM idempotency_record WHERE expires_at <= $1", now)
    return int(status.split()[-1])  # "DELETE <count>"
