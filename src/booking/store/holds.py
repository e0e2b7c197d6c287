"""The statements on slot holds, compiled once at import. A hold is live while it is neither
released nor consumed and its expiry lies ahead of the `now` the statement is given: every
statement that counts holds says so in its WHERE clause (`LIVE`), so an expired hold frees its
place the instant it expires, whether or not the purge has run.

The writes take a `LockedCalendarDay` (a hold occupies capacity, so it is written holding its
calendar-day's lock); the purge only tidies and needs no lock."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, delete, insert, literal_column, select, update

from booking.domain import Channel
from booking.store.db import LockedCalendarDay
from booking.store.models import SlotHold
from booking.store.sql import compiled


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """A hold as stored; the fields are the table's columns of the same names."""

    token: str
    application_id: uuid.UUID
    service_id: uuid.UUID
    cu_index: int
    on_date: date
    start_minute: int
    duration_minutes: int
    service_type_id: uuid.UUID
    channel: Channel
    created_at: datetime
    expires_at: datetime
    extended: bool
    released_at: datetime | None
    consumed_by: uuid.UUID | None

    def is_live(self, now: datetime) -> bool:
        return self.released_at is None and self.consumed_by is None and self.expires_at > now


_COLUMNS = tuple(f.name for f in dataclasses.fields(HoldRecord))
_table = SlotHold.__table__

# The one definition of "this hold occupies its place at `now`".
LIVE = (
    SlotHold.released_at.is_(None),
    SlotHold.consumed_by.is_(None),
    SlotHold.expires_at > bindparam("now"),
)
_of_token = (
    SlotHold.token == bindparam("token"),
    SlotHold.application_id == bindparam("application_id"),
)

# Written at insert: every column but those of later changes (their defaults hold).
_INSERTED = tuple(c for c in _COLUMNS if c not in {"extended", "released_at", "consumed_by"})
_INSERT = compiled(insert(SlotHold).values({name: bindparam(name) for name in _INSERTED}))

_CONSUME = compiled(
    update(SlotHold)
    .where(*_of_token, *LIVE)
    .values(consumed_by=bindparam("case_id"))
    .returning(*(_table.c[name] for name in _COLUMNS)),
    "case_id",
    "token",
    "application_id",
    "now",
)

_LOCK = compiled(
    select(*(_table.c[name] for name in _COLUMNS)).where(*_of_token).with_for_update(),
    "token",
    "application_id",
)

_RELEASE = compiled(
    update(SlotHold)
    .where(SlotHold.token == bindparam("token"))
    .values(released_at=bindparam("at")),
    "at",
    "token",
)

_EXTEND = compiled(
    update(SlotHold)
    .where(SlotHold.token == bindparam("token"))
    .values(expires_at=bindparam("expires_at"), extended=literal_column("true")),
    "expires_at",
    "token",
)

_PURGE = compiled(delete(SlotHold).where(SlotHold.expires_at <= bindparam("before")), "before")


def _record(row: asyncpg.Record) -> HoldRecord:
    values: dict[str, Any] = dict(row.items())
    values["channel"] = Channel(values["channel"])
    return HoldRecord(**values)


async def insert_hold(tx: LockedCalendarDay, hold: HoldRecord) -> None:
    """Store a new hold of the locked calendar-day."""
    assert (hold.service_id, hold.cu_index, hold.on_date) == (
        tx.day.service_id,
        tx.day.cu_index,
        tx.day.on_date,
    )
    await tx.conn.execute(_INSERT.sql, *(getattr(hold, name) for name in _INSERT.params))


async def consume(
    tx: LockedCalendarDay,
    token: str,
    application_id: uuid.UUID,
    case_id: uuid.UUID,
    now: datetime,
) -> HoldRecord | None:
    """Mark the application's hold `token` consumed by `case_id` if it is live at `now`, and
    answer it (as it was before); None when it is not live or not the application's. A
    rollback of the booking gives the hold back."""
    row = await tx.conn.fetchrow(_CONSUME.sql, case_id, token, application_id, now)
    return None if row is None else dataclasses.replace(_record(row), consumed_by=None)


async def lock(
    conn: asyncpg.Connection, token: str, application_id: uuid.UUID
) -> HoldRecord | None:
    """The application's hold `token`, live or not, row-locked until the transaction ends;
    None when the application has no such hold."""
    row = await conn.fetchrow(_LOCK.sql, token, application_id)
    return None if row is None else _record(row)


async def release(tx: LockedCalendarDay, token: str, at: datetime) -> None:
    await tx.conn.execute(_RELEASE.sql, at, token)


async def extend(tx: LockedCalendarDay, token: str, expires_at: datetime) -> None:
    await tx.conn.execute(_EXTEND.sql, expires_at, token)


async def purge_ended(conn: asyncpg.Connection, before: datetime) -> int:
    """Delete the holds that expired before `before` (long since free): only tidies."""
    status: str = await conn.execute(_PURGE.sql, before)
    return int(status.split()[-1])  # "DELETE <count>"
