"""The bench's one copy of the app's calendar-day lock: the statement and the key that
`booking.service.booking.calendar_transaction` takes before any write of a calendar-day. The
reference app takes the same lock for every booking (so that both sides do the same work), and
the EXPLAIN of the booking shows it. Kept apart so that it is replaced in one place by the
store's own statement."""

from __future__ import annotations

import uuid
from datetime import date

LOCK_CALENDAR_DAY = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


def calendar_day_key(service_id: uuid.UUID, cu_index: int, on_date: date) -> str:
    return f"calendar:{service_id}:{cu_index}:{on_date.isoformat()}"
