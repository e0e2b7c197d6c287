"""The unit of work of one calendar-day: where every write of a calendar unit on a date runs.

Double booking is prevented here. `write` opens `Database.calendar_day`, a transaction that
begins holding a transaction-scoped advisory lock keyed by (service, calendar unit, date), and
hands the in-lock step a `LockedCalendarDay`, the only handle the store's calendar-day writes
accept. A second writer of the same calendar-day waits on the lock, then sees the first one's
rows; writers of other calendar-days take other locks and never wait. The lock lives in
Postgres, so this holds for any number of processes.

Every write is a use case (`booking.service.appointments`, `booking.service.holds`) made of a
pure `check` (in `rules`) and an in-lock `step` (store statements on the handle), run by
`write`; a reschedule between two calendar-days runs by `move`, which takes both locks in a
fixed order (by lock key) before its step. The rows of outbound events are inserted by the step
on the same handle, so they commit or roll back with the change they announce. The idempotency
of every one of them comes for free through `once`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import asyncpg

from booking.domain import CalendarDay
from booking.store.db import Database, LockedCalendarDay

Checked = TypeVar("Checked")
Written = TypeVar("Written")
Written_contra = TypeVar("Written_contra", contravariant=True)
Replayed = TypeVar("Replayed")
Replayed_co = TypeVar("Replayed_co", covariant=True)


class OnceOnly(Protocol[Written_contra, Replayed_co]):
    """At most once per retry of a write (the API's Idempotency-Key is one): claimed on the
    write's transaction (a calendar-day's here, a customer record's in
    `booking.service.customers`) before the checks, stored in it after the write."""

    async def claim(self, conn: asyncpg.Connection) -> Replayed_co | None:
        """None: go ahead. Otherwise what to answer instead of writing again."""

    async def store(self, conn: asyncpg.Connection, written: Written_contra) -> None:
        """Remember the outcome of the write, in the same transaction."""


async def write(
    db: Database,
    day: CalendarDay,
    check: Callable[[], Checked],
    step: Callable[[LockedCalendarDay, Checked], Awaitable[Written]],
    once: OnceOnly[Written, Replayed] | None = None,
) -> Written | Replayed:
    """Run `check`, then `step` holding `day`'s lock, and commit.

    Without `once`, the checks run before a connection is taken, so the transaction (and the
    lock) lasts only as long as its statements. With it they run after the claim: a retry
    answers what the first attempt answered even when the checks would fail by now (the start
    time has passed, say). Any exception rolls everything back, the claim included."""
    if once is None:
        checked = check()
        async with db.calendar_day(day) as tx:
            return await step(tx, checked)
    async with db.calendar_day(day) as tx:
        replayed = await once.claim(tx.conn)
        if replayed is not None:
            return replayed
        written = await step(tx, check())
        await once.store(tx.conn, written)
        return written


async def move(
    db: Database,
    source: CalendarDay,
    target: CalendarDay,
    check: Callable[[], Checked],
    step: Callable[[LockedCalendarDay, LockedCalendarDay, Checked], Awaitable[Written]],
    once: OnceOnly[Written, Replayed] | None = None,
) -> Written | Replayed:
    """`write` for a change from `source` to `target` (the same day or two): `step` runs holding
    both locks, in one transaction, so either both calendar-days change or neither does."""
    if once is None:
        checked = check()
        async with db.calendar_days(source, target) as (from_tx, to_tx):
            return await step(from_tx, to_tx, checked)
    async with db.calendar_days(source, target) as (from_tx, to_tx):
        replayed = await once.claim(from_tx.conn)
        if replayed is not None:
            return replayed
        written = await step(from_tx, to_tx, check())
        await once.store(from_tx.conn, written)
        return written
