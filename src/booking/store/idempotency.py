"""The statements on idempotency keys: claim, read the claimed row, renew an expired one, store
the answer, purge. What the rows mean (a stored HTTP answer) is the API's business
(`booking.api.idempotency`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from sqlalchemy import bindparam, delete, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert

from booking.store.models import IdempotencyRecord
from booking.store.sql import compiled

_record = IdempotencyRecord
_of_key = (_record.application_id == bindparam("application_id"), _record.key == bindparam("key"))

_CLAIM = compiled(
    insert(_record)
    .values(
        application_id=bindparam("application_id"),
        key=bindparam("key"),
        request_hash=bindparam("request_hash"),
        created_at=bindparam("created_at"),
        expires_at=bindparam("expires_at"),
    )
    .on_conflict_do_nothing()
    .returning(_record.key),
    "application_id",
    "key",
    "request_hash",
    "created_at",
    "expires_at",
)

_CLAIMED = compiled(
    select(
        _record.request_hash,
        _record.status_code,
        _record.response_body,
        _record.response_headers,
        _record.expires_at,
    )
    .where(*_of_key)
    .with_for_update(),
    "application_id",
    "key",
)

_RENEW = compiled(
    update(_record)
    .where(*_of_key)
    .values(
        request_hash=bindparam("request_hash"),
        status_code=literal_column("NULL"),
        response_body=literal_column("NULL"),
        response_headers=literal_column("NULL"),
        created_at=bindparam("created_at"),
        expires_at=bindparam("expires_at"),
    ),
    "request_hash",
    "created_at",
    "expires_at",
    "application_id",
    "key",
)

_STORE = compiled(
    update(_record)
    .where(*_of_key)
    .values(
        status_code=bindparam("status_code"),
        response_body=bindparam("response_body"),
        response_headers=bindparam("response_headers"),
    ),
    "status_code",
    "response_body",
    "response_headers",
    "application_id",
    "key",
)

_PURGE = compiled(delete(_record).where(_record.expires_at <= bindparam("now")), "now")


async def claim(
    conn: asyncpg.Connection,
    application_id: uuid.UUID,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Insert the key's row; False when the key already has one. A row of a transaction still
    running makes this wait for it to end (Postgres must know whether the key conflicts)."""
    claimed = await conn.fetchval(_CLAIM.sql, application_id, key, request_hash, now, expires_at)
    return claimed is not None


async def claimed(
    conn: asyncpg.Connection, application_id: uuid.UUID, key: str
) -> asyncpg.Record | None:
    """The key's row (request_hash, status_code, response_body, response_headers,
    expires_at), row-locked until the transaction ends; None if it was purged meanwhile."""
    row: asyncpg.Record | None = await conn.fetchrow(_CLAIMED.sql, application_id, key)
    return row


async def renew(
    conn: asyncpg.Connection,
    application_id: uuid.UUID,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Take over an expired key for a new request."""
    await conn.execute(_RENEW.sql, request_hash, now, expires_at, application_id, key)


async def store_answer(
    conn: asyncpg.Connection,
    application_id: uuid.UUID,
    key: str,
    status_code: int,
    body: bytes,
    headers: dict[str, str],
) -> None:
    await conn.execute(_STORE.sql, status_code, body, headers, application_id, key)


async def purge_expired(conn: asyncpg.Connection, now: datetime) -> int:
    status: str = await conn.execute(_PURGE.sql, now)
    return int(status.split()[-1])  # "DELETE <count>"
