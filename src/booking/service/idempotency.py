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

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.service.errors import RuleViolation
from booking.store.models import IdempotencyRecord

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


async def claim(
    conn: AsyncConnection,
    application_id: uuid.UUID,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> StoredResponse | None:
    """Claim `key` in the caller's transaction. None: go ahead and process the request.
    A StoredResponse: replay it. RuleViolation: the key was used for a different request."""
    r = IdempotencyRecord
    claimed = (
        await conn.execute(
            insert(r)
            .values(
                application_id=application_id,
                key=key,
                request_hash=fingerprint,
                created_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing()
            .returning(r.key)
        )
    ).first()
    if claimed is not None:
        return None
    row = (
        await conn.execute(
            select(r.request_hash, r.status_code, r.response_body, r.response_headers, r.expires_at)
            .where(r.application_id == application_id, r.key == key)
            .with_for_update()
        )
    ).one()
    if row.expires_at <= now:  # an expired key is as good as new
        await conn.execute(
            update(r)
            .where(r.application_id == application_id, r.key == key)
            .values(
                request_hash=fingerprint,
                status_code=None,
                response_body=None,
                response_headers=None,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return None
    if row.request_hash != fingerprint:
        raise RuleViolation(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
            field="Idempotency-Key",
        )
    return StoredResponse(row.status_code, row.response_body, dict(row.response_headers or {}))


async def store(
    conn: AsyncConnection, application_id: uuid.UUID, key: str, response: StoredResponse
) -> None:
    r = IdempotencyRecord
    await conn.execute(
        update(r)
        .where(r.application_id == application_id, r.key == key)
        .values(
            status_code=response.status_code,
            response_body=response.body,
            response_headers=response.headers,
        )
    )


async def purge_expired(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
    )
    return int(result.rowcount)
