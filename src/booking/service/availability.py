"""The availability model: pure, no I/O, plain data in and out.

Times are wall-clock minutes after local midnight (480 = 08:00). An appointment occupies
`[start, start + duration)`. A start is vacant for a duration when

- the whole interval lies inside one working interval of the day (so it neither runs past closing
  nor into a break),
- the start is on the slot grid, which is anchored at the start of each working interval
  (hours 08:00-12:00 with a 15-minute grid give 08:00, 08:15, ...), and
- at every minute of the interval fewer than `capacity` appointments already overlap.

Both the booking rule and the vacancies listing call this module: one source of truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class Interval:
    start: int
    end: int  # exclusive

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"bad interval [{self.start}, {self.end})")

    @property
    def minutes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class WorkingDay:
    """One calendar unit on one date: its working intervals after date exceptions."""

    working: tuple[Interval, ...]  # sorted, non-overlapping; empty when closed
    slot_minutes: int
    capacity: int

    @property
    def capacity_minutes(self) -> int:
        return sum(interval.minutes for interval in self.working) * self.capacity


class Verdict(Enum):
    VACANT = "vacant"
    CLOSED = "closed"  # no working hours at all on this date
    OUTSIDE_WORKING_HOURS = "outside_working_hours"  # not inside one working interval
    OFF_GRID = "off_grid"
    FULL = "full"  # capacity reached at some minute of the interval


def merge_intervals(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sort and join touching or overlapping intervals (configuration may list them any way)."""
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        if merged and interval.start <= merged[-1].end:
            last = merged.pop()
            merged.append(Interval(last.start, max(last.end, interval.end)))
        else:
            merged.append(interval)
    return tuple(merged)


def _enclosing(day: WorkingDay, start: int, end: int) -> Interval | None:
    for interval in day.working:
        if interval.start <= start and end <= interval.end:
            return interval
    return None


def _on_grid(day: WorkingDay, enclosing: Interval, start: int) -> bool:
    return (start - enclosing.start) % day.slot_minutes == 0


def peak_overlap(booked: Iterable[Interval], start: int, end: int) -> int:
    """The most booked intervals overlapping any single minute of [start, end)."""
    inside = [b for b in booked if b.start < end and start < b.end]
    if not inside:
        return 0
    # The peak is reached at `start` or at the start of one of the overlapping intervals.
    points = {start} | {b.start for b in inside if b.start > start}
    return max(sum(1 for b in inside if b.start <= p < b.end) for p in points)


def check_start(
    day: WorkingDay,
    booked: Sequence[Interval],
    start: int,
    duration: int,
    *,
    bypass_timeslot_check: bool = False,
) -> Verdict:
    """Whether `start` can take an appointment of `duration` minutes.

    `bypass_timeslot_check` skips the grid and vacancy checks only; working hours still hold.
    """
    if not day.working:
        return Verdict.CLOSED
    end = start + duration
    enclosing = _enclosing(day, start, end)
    if enclosing is None:
        return Verdict.OUTSIDE_WORKING_HOURS
    if bypass_timeslot_check:
        return Verdict.VACANT
    if not _on_grid(day, enclosing, start):
        return Verdict.OFF_GRID
    if peak_overlap(booked, start, end) >= day.capacity:
        return Verdict.FULL
    return Verdict.VACANT


def grid_starts(day: WorkingDay, duration: int) -> list[int]:
    """Every grid start whose whole interval fits inside its working interval, ascending."""
    starts: list[int] = []
    for interval in day.working:
        starts.extend(range(interval.start, interval.end - duration + 1, day.slot_minutes))
    return starts


def vacant_starts(day: WorkingDay, booked: Iterable[Interval], duration: int) -> list[int]:
    """All vacant starts for `duration`, ascending."""
    booked = list(booked)
    return vacant_starts_of(day, [b.start for b in booked], [b.end for b in booked], duration)


def vacant_starts_of(
    day: WorkingDay, booked_starts: Sequence[int], booked_ends: Sequence[int], duration: int
) -> list[int]:
    """`vacant_starts` of the booked intervals `[booked_starts[i], booked_ends[i])`: the form
    the range read hands over (hundreds of calendar-days per request, no `Interval` each)."""
    starts = grid_starts(day, duration)
    capacity = day.capacity
    if not starts or capacity < 1:
        return starts if capacity >= 1 else []
    full = _full_spans(booked_starts, booked_ends, capacity)
    if not full:
        return starts
    vacant = []
    i, count = 0, len(full)
    for start in starts:
        while i < count and full[i + 1] <= start:
            i += 2
        if i == count or full[i] >= start + duration:
            vacant.append(start)
    return vacant


def _full_spans(
    booked_starts: Sequence[int], booked_ends: Sequence[int], capacity: int
) -> list[int]:
    """The spans where `capacity` booked intervals overlap, as [from, to, from, to, ...],
    ascending and disjoint."""
    full: list[int] = []
    if capacity == 1:
        # Most units: the full spans are the booked intervals themselves, merged where they
        # touch or overlap (half the work of the sweep below, which runs for every day read).
        for start, end in sorted(zip(booked_starts, booked_ends, strict=True)):
            if full and start <= full[-1]:
                if end > full[-1]:
                    full[-1] = end
            else:
                full += (start, end)
        return full
    # One sweep over the ends and starts (an end sorts before a start at the same minute: the
    # interval ending there no longer overlaps) gives the spans where `capacity` intervals
    # overlap. Its cost follows the bookings, not the minutes.
    events = [start * 2 + 1 for start in booked_starts]
    events += [end * 2 for end in booked_ends]
    events.sort()
    running = opened = 0
    for event in events:
        if event & 1:
            running += 1
            if running == capacity:
                opened = event >> 1
        else:
            if running == capacity:
                full += (opened, event >> 1)
            running -= 1
    return full


def nearest(vacant: Sequence[int], start: int, limit: int = 3) -> list[int]:
    """Up to `limit` vacant starts closest to `start`, nearest first (earlier wins a tie)."""
    return sorted(vacant, key=lambda s: (abs(s - start), s))[:limit]
