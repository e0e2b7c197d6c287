"""The outbox of outbound webhooks: its statements, each one round trip.

An event is written by `enqueue` on the calendar-day's `LockedCalendarDay`, in the transaction
of the change it announces: it exists if and only if that change committed. Its NOTIFY is sent
by PostgreSQL at that COMMIT (never for a rollback), and wakes every deliverer at once.

Delivery (`booking.service.webhooks.delivery`) claims due events with `claim`: `FOR UPDATE
SKIP LOCKED`, so processes claiming at the same time take different rows, and a lease
(`leased_until`), so no HTTP call happens inside a transaction and an event claimed by a
process that died is claimed again once its lease has passed. An event is claimable only when
no earlier event of its case is still pending: the events of one case go out one at a time,
in `sequence` order; and only while its organization's webhooks are enabled (disabled, they
wait: the queue's metrics show them).

Why not procrastinate or pgqueuer (see the README, "Webhooks"): procrastinate enqueues through
its own psycopg connector, so not inside this server's asyncpg transaction; pgqueuer can use an
asyncpg connection, but neither knows per-case order, a lease per delivery or Standard
Webhooks' schedule, and both add their own tables and workers for what is three statements.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from booking.store.db import LockedCalendarDay

NOTIFY_CHANNEL = "booking_webhook_event"  # written out in _ENQUEUE and _REDELIVER

# The sequence is the case's next: every write of a case holds its calendar-day's lock, so two
# of them never compute it at once (the unique constraint would refuse the second anyway).
_ENQUEUE = """
WITH event AS (
    INSERT INTO webhook_event (id, organization_id, case_id, sequence, hook, payload)
    SELECT $1, $2, $3, next.sequence, $4,
           jsonb_set($5::jsonb, '{eventSequence}', to_jsonb(next.sequence))
    FROM (SELECT COALESCE(MAX(sequence), 0) + 1 AS sequence
          FROM webhook_event WHERE case_id = $3) AS next
    RETURNING sequence
)
SELECT sequence, pg_notify('booking_webhook_event', '') FROM event
"""


_CLAIM = """
WITH due AS (
    SELECT e.id
    FROM webhook_event e
    JOIN webhook_endpoint w ON w.organization_id = e.organization_id
    WHERE e.state = 'pending'
      AND e.next_attempt_at <= clock_timestamp()
      AND (e.leased_until IS NULL OR e.leased_until < clock_timestamp())
      AND w.enabled AND w.gone_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM webhook_event earlier
          WHERE earlier.case_id = e.case_id
            AND earlier.sequence < e.sequence
            AND earlier.state = 'pending'
      )
    ORDER BY e.next_attempt_at
    LIMIT $1
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE webhook_event e
SET leased_until = clock_timestamp() + make_interval(secs => $2)
FROM due, webhook_endpoint w
WHERE e.id = due.id AND w.organization_id = e.organization_id
RETURNING e.id, e.organization_id, e.case_id, e.sequence, e.hook, e.payload, e.attempts,
          w.base_url, w.authorization_scheme, w.secrets
"""

# The attempt's record and the event's new state in one statement. $6: when the next attempt
# is due (NULL: none); $7: the event's state after it.
_RECORD_ATTEMPT = """
WITH attempt AS (
    INSERT INTO webhook_attempt
        (event_id, attempted_at, status_code, latency_ms, error, next_attempt_at)
    VALUES ($1, $2, $3, $4, $5, $6)
)
UPDATE webhook_event
SET state = $7,
    attempts = attempts + 1,
    next_attempt_at = COALESCE($6, next_attempt_at),
    leased_until = NULL,
    last_error = $5,
    delivered_at = CASE WHEN $7 = 'delivered' THEN $2 END
WHERE id = $1
"""

# A process stopping gives back the events it claimed and did not finish: another (or its own
# successor) sends them at once instead of after the lease.
_RELEASE = """
UPDATE webhook_event SET leased_until = NULL WHERE id = ANY($1::uuid[]) AND state = 'pending'
"""

_MARK_GONE = """
UPDATE webhook_endpoint SET gone_at = $2 WHERE organization_id = $1 AND gone_at IS NULL
"""

_UNDELIVERED = """
SELECT id, organization_id, case_id, sequence, hook, state, attempts, last_error,
       next_attempt_at, created_at
FROM webhook_event
WHERE (state = 'failed' OR (state = 'pending' AND attempts > 0))
  AND ($1::uuid IS NULL OR organization_id = $1)
ORDER BY created_at
LIMIT $2
"""

# Back to pending, due now, its schedule started again (its attempts stay in webhook_attempt);
# an endpoint that answered 410 is called again.
_REDELIVER = """
WITH again AS (
    UPDATE webhook_event
    SET state = 'pending', attempts = 0, next_attempt_at = clock_timestamp(),
        leased_until = NULL
    WHERE id = ANY($1::uuid[]) AND ($2::uuid IS NULL OR organization_id = $2)
    RETURNING id, organization_id
), resumed AS (
    UPDATE webhook_endpoint SET gone_at = NULL
    WHERE organization_id IN (SELECT organization_id FROM again)
)
SELECT id, pg_notify('booking_webhook_event', '') FROM again
"""

_QUEUE = """
SELECT count(*), EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))
FROM webhook_event WHERE state = 'pending'
"""

_ATTEMPTS = """
SELECT attempted_at, status_code, latency_ms, error, next_attempt_at
FROM webhook_attempt WHERE event_id = $1 ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class Event:
    """An event to announce: `payload` is its body but for `eventSequence`, which `enqueue`
    sets to the case's next."""

    id: uuid.UUID
    organization_id: uuid.UUID
    case_id: uuid.UUID
    hook: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed event and where it goes: the body to send, its endpoint and secrets."""

    id: uuid.UUID
    organization_id: uuid.UUID
    case_id: uuid.UUID
    sequence: int
    hook: str
    payload: dict[str, Any]
    attempts: int  # before this one
    base_url: str
    authorization_scheme: str
    secrets: list[str]


@dataclass(frozen=True, slots=True)
class Attempt:
    event_id: uuid.UUID
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    next_attempt_at: datetime | None
    state: str  # of the event afterwards


@dataclass(frozen=True, slots=True)
class Undelivered:
    id: uuid.UUID
    organization_id: uuid.UUID
    case_id: uuid.UUID
    sequence: int
    hook: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime


async def enqueue(tx: LockedCalendarDay, event: Event) -> int:
    """Write `event` in the calendar-day's transaction: one round trip. Answers its sequence."""
    sequence: int = await tx.conn.fetchval(
        _ENQUEUE, event.id, event.organization_id, event.case_id, event.hook, event.payload
    )
    return sequence


async def claim(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Claimed]:
    """Up to `limit` due events, leased to the caller for `lease_s` seconds (autocommit: the
    statement is its own transaction)."""
    rows = await conn.fetch(_CLAIM, limit, lease_s)
    return [Claimed(**dict(row.items())) for row in rows]


async def record_attempt(conn: asyncpg.Connection, attempt: Attempt) -> None:
    await conn.execute(
        _RECORD_ATTEMPT,
        attempt.event_id,
        attempt.attempted_at,
        attempt.status_code,
        attempt.latency_ms,
        attempt.error,
        attempt.next_attempt_at,
        attempt.state,
    )


async def mark_gone(conn: asyncpg.Connection, organization_id: uuid.UUID, at: datetime) -> None:
    """The organization's receiver answered 410: nothing more is sent until a redelivery."""
    await conn.execute(_MARK_GONE, organization_id, at)


async def undelivered(
    conn: asyncpg.Connection, organization_id: uuid.UUID | None, limit: int
) -> list[Undelivered]:
    """Failed events, and pending ones that failed at least once, oldest first (of one
    organization, or of all)."""
    rows = await conn.fetch(_UNDELIVERED, organization_id, limit)
    return [Undelivered(**dict(row.items())) for row in rows]


async def release(conn: asyncpg.Connection, event_ids: list[uuid.UUID]) -> None:
    await conn.execute(_RELEASE, event_ids)


async def redeliver(
    conn: asyncpg.Connection, event_ids: list[uuid.UUID], organization_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Queue the events again (of that organization only, when given): the ids queued."""
    rows = await conn.fetch(_REDELIVER, event_ids, organization_id)
    return [row["id"] for row in rows]


async def queue(conn: asyncpg.Connection) -> tuple[int, float]:
    """(pending events, age in seconds of the oldest of them; 0 when none)."""
    row = await conn.fetchrow(_QUEUE)
    assert row is not None  # an aggregate always answers one row
    return int(row[0]), float(row[1] or 0)


async def attempts(conn: asyncpg.Connection, event_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(_ATTEMPTS, event_id)
    return rows
