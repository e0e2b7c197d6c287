"""What operators do with webhook events: list those not delivered (failed, or failing and
waiting for a retry) and queue them again. The API and the CLI call these."""

from __future__ import annotations

import uuid

from booking.service.errors import NotFound
from booking.store import outbox
from booking.store.db import Database

LISTED_AT_MOST = 1000


async def undelivered(db: Database, organization_id: uuid.UUID) -> list[outbox.Undelivered]:
    async with db.read() as conn:
        return await outbox.undelivered(conn, organization_id, LISTED_AT_MOST)


async def redeliver(db: Database, organization_id: uuid.UUID, event_id: uuid.UUID) -> None:
    """Queue the event again, its schedule started over (a stopped endpoint resumes)."""
    async with db.read() as conn:
        queued = await outbox.redeliver(conn, [event_id], organization_id)
    if not queued:
        raise NotFound("No such webhook event.", code="webhook_event_not_found", field="eventId")
