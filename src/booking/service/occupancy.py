"""What occupies a locked calendar-day, read under its lock: appointments that are not
cancelled and holds live at `now`. A booking or a hold needs only what overlaps its own slot
(`check_vacant`: one small read); the whole day is read only to offer the nearest vacancies of
a refusal, or where the whole day matters (`occupied`)."""

from __future__ import annotations

from datetime import datetime

from booking.service import rules
from booking.service.availability import Interval
from booking.store import appointments as store
from booking.store.db import LockedCalendarDay


async def occupied(tx: LockedCalendarDay, now: datetime) -> list[Interval]:
    """Every interval occupying the locked calendar-day at `now`."""
    return rules.intervals_of(await store.booked_intervals(tx.conn, tx.day, now))


async def check_vacant(tx: LockedCalendarDay, slot: rules.CheckedSlot, now: datetime) -> None:
    """The slot is vacant on the locked calendar-day, or `rules.slot_taken` (409 with the
    nearest vacant starts)."""
    end = slot.start_minute + slot.service_type.duration_minutes
    rows = await store.overlapping_intervals(tx.conn, tx.day, slot.start_minute, end, now)
    if not rules.is_vacant(slot, rules.intervals_of(rows)):
        raise rules.slot_taken(slot, await occupied(tx, now), now)
