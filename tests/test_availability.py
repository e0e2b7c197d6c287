"""The pure availability model: behaviour by example, then properties against a brute-force
oracle. No database."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking.service.availability import (
    MINUTES_PER_DAY,
    Interval,
    Verdict,
    WorkingDay,
    check_start,
    grid_starts,
    merge_intervals,
    nearest,
    peak_overlap,
    vacant_starts,
)

# 08:00-12:00 and 13:00-17:00, the usual day.
TWO_SHIFTS = (Interval(480, 720), Interval(780, 1020))
ALL_DAY = (Interval(0, MINUTES_PER_DAY),)


def day_of(
    working: Sequence[Interval] = TWO_SHIFTS, *, slot: int = 10, capacity: int = 1
) -> WorkingDay:
    return WorkingDay(working=tuple(working), slot_minutes=slot, capacity=capacity)


# --- behaviour by example -----------------------------------------------------------------------


def test_start_is_vacant_inside_working_hours_on_the_grid() -> None:
    day = day_of(slot=15)
    assert check_start(day, [], 480, 30) is Verdict.VACANT
    assert check_start(day, [], 495, 30) is Verdict.VACANT
    assert check_start(day, [], 690, 30) is Verdict.VACANT  # ends exactly at 12:00
    assert check_start(day, [], 780, 30) is Verdict.VACANT
    vacant = vacant_starts(day, [], 30)
    assert vacant == [*range(480, 691, 15), *range(780, 991, 15)]


def test_start_off_the_grid_is_off_grid() -> None:
    day = day_of(slot=15)
    assert check_start(day, [], 485, 30) is Verdict.OFF_GRID
    assert check_start(day, [], 794, 30) is Verdict.OFF_GRID
    assert 485 not in vacant_starts(day, [], 30)


def test_interval_running_into_a_break_is_outside_working_hours() -> None:
    day = day_of()
    assert check_start(day, [], 700, 30) is Verdict.OUTSIDE_WORKING_HOURS  # [700, 730) hits 12:00
    assert check_start(day, [], 730, 30) is Verdict.OUTSIDE_WORKING_HOURS  # starts in the break
    assert check_start(day, [], 770, 30) is Verdict.OUTSIDE_WORKING_HOURS  # ends after 13:00
    assert check_start(day, [], 690, 30) is Verdict.VACANT
    vacant = vacant_starts(day, [], 30)
    assert not [s for s in vacant if 690 < s < 780]


def test_interval_spanning_two_touching_working_intervals_is_outside_working_hours() -> None:
    # The model takes working intervals as given: the merge happens when configuration is read.
    day = day_of((Interval(480, 600), Interval(600, 720)))
    assert check_start(day, [], 590, 30) is Verdict.OUTSIDE_WORKING_HOURS
    merged = day_of(merge_intervals(day.working))
    assert check_start(merged, [], 590, 30) is Verdict.VACANT


def test_interval_running_past_closing_is_outside_working_hours() -> None:
    day = day_of()
    assert check_start(day, [], 990, 30) is Verdict.VACANT  # ends exactly at 17:00
    assert check_start(day, [], 1000, 30) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day, [], 1020, 30) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day, [], 1430, 30) is Verdict.OUTSIDE_WORKING_HOURS  # past midnight
    assert check_start(day, [], 300, 30) is Verdict.OUTSIDE_WORKING_HOURS  # before opening
    assert max(vacant_starts(day, [], 30)) == 990


def test_grid_is_anchored_at_each_working_interval_start() -> None:
    day = day_of((Interval(485, 600), Interval(607, 700)), slot=15)
    assert grid_starts(day, 15) == [*range(485, 586, 15), 607, 622, 637, 652, 667, 682]
    assert check_start(day, [], 485, 15) is Verdict.VACANT
    assert check_start(day, [], 500, 15) is Verdict.VACANT
    assert check_start(day, [], 490, 15) is Verdict.OFF_GRID  # on a grid anchored at 00:00
    assert check_start(day, [], 607, 15) is Verdict.VACANT  # the second interval's own anchor
    assert check_start(day, [], 610, 15) is Verdict.OFF_GRID
    assert check_start(day, [], 605, 15) is Verdict.OUTSIDE_WORKING_HOURS
    assert vacant_starts(day, [], 15) == grid_starts(day, 15)


def test_capacity_two_admits_two_overlaps_then_full() -> None:
    day = day_of(capacity=2)
    booked: list[Interval] = []
    assert check_start(day, booked, 600, 30) is Verdict.VACANT
    booked.append(Interval(600, 630))
    assert check_start(day, booked, 600, 30) is Verdict.VACANT
    assert check_start(day, booked, 610, 30) is Verdict.VACANT
    booked.append(Interval(610, 640))
    assert check_start(day, booked, 600, 30) is Verdict.FULL
    assert check_start(day, booked, 620, 30) is Verdict.FULL
    assert check_start(day, booked, 590, 30) is Verdict.FULL  # [590, 620) meets both at 610
    assert check_start(day, booked, 570, 30) is Verdict.VACANT  # ends as the first one starts
    assert check_start(day, booked, 630, 30) is Verdict.VACANT  # only [610, 640) there
    assert check_start(day, booked, 640, 30) is Verdict.VACANT
    vacant = vacant_starts(day, booked, 30)
    assert [s for s in vacant if 560 <= s <= 650] == [560, 570, 580, 630, 640, 650]


def test_capacity_one_is_full_at_any_overlap() -> None:
    day = day_of()
    booked = [Interval(600, 630)]
    assert check_start(day, booked, 620, 30) is Verdict.FULL
    assert check_start(day, booked, 580, 30) is Verdict.FULL
    assert check_start(day, booked, 570, 30) is Verdict.VACANT
    assert check_start(day, booked, 630, 30) is Verdict.VACANT


def test_overlap_counts_every_minute_not_just_the_start() -> None:
    day = day_of(ALL_DAY, capacity=2)
    booked = [Interval(0, 30), Interval(20, 50)]
    # At minute 10 only one appointment is running, but minutes 20-30 have two.
    assert peak_overlap(booked, 10, 20) == 1
    assert check_start(day, booked, 10, 30) is Verdict.FULL
    assert peak_overlap(booked, 10, 40) == 2
    assert check_start(day, booked, 30, 30) is Verdict.VACANT
    assert vacant_starts(day, booked, 30)[:3] == [30, 40, 50]
    # The peak can also sit at the end of the requested interval.
    later = [Interval(100, 200), Interval(140, 150)]
    assert check_start(day, later, 110, 30) is Verdict.VACANT  # [110, 140): one at a time
    assert check_start(day, later, 110, 40) is Verdict.FULL  # [110, 150): two at minute 140
    assert peak_overlap(later, 110, 150) == 2


def test_bypass_skips_grid_and_vacancy_but_not_working_hours() -> None:
    day = day_of()
    booked = [Interval(600, 630)]
    assert check_start(day, booked, 600, 30, bypass_timeslot_check=True) is Verdict.VACANT
    assert check_start(day, booked, 605, 30, bypass_timeslot_check=True) is Verdict.VACANT
    assert check_start(day, booked, 605, 30) is Verdict.OFF_GRID
    assert check_start(day, booked, 600, 30) is Verdict.FULL
    bypass = {"bypass_timeslot_check": True}
    assert check_start(day, booked, 1000, 30, **bypass) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day, booked, 730, 30, **bypass) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day, booked, 700, 30, **bypass) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day, booked, 470, 30, **bypass) is Verdict.OUTSIDE_WORKING_HOURS
    assert check_start(day_of(()), [], 600, 30, **bypass) is Verdict.CLOSED


def test_closed_day_has_no_vacancies() -> None:
    day = day_of(())
    assert day.capacity_minutes == 0
    assert grid_starts(day, 30) == []
    assert vacant_starts(day, [], 30) == []
    assert vacant_starts(day, [Interval(600, 630)], 30) == []
    for start in (0, 480, 600, 1439):
        assert check_start(day, [], start, 30) is Verdict.CLOSED


def test_capacity_minutes_is_working_minutes_times_capacity() -> None:
    assert day_of(capacity=1).capacity_minutes == 480
    assert day_of(capacity=3).capacity_minutes == 1440


def test_duration_longer_than_every_working_interval_has_no_vacancies() -> None:
    day = day_of()
    assert vacant_starts(day, [], 241) == []
    assert vacant_starts(day, [], 240) == [480, 780]


def test_nearest_returns_up_to_three_closest_earlier_first_on_ties() -> None:
    vacant = [480, 500, 520, 540, 560]
    assert nearest(vacant, 510) == [500, 520, 480]  # 500 and 520 tie: earlier first
    assert nearest(vacant, 530) == [520, 540, 500]
    assert nearest(vacant, 500) == [500, 480, 520]
    assert nearest(vacant, 0) == [480, 500, 520]
    assert nearest(vacant, 1439) == [560, 540, 520]
    assert nearest(vacant, 510, limit=1) == [500]
    assert nearest([700], 510) == [700]
    assert nearest([], 510) == []


def test_merge_intervals_joins_touching_hours() -> None:
    assert merge_intervals([Interval(480, 600), Interval(600, 720)]) == (Interval(480, 720),)
    assert merge_intervals([Interval(780, 1020), Interval(480, 600), Interval(600, 720)]) == (
        Interval(480, 720),
        Interval(780, 1020),
    )
    assert merge_intervals([Interval(480, 700), Interval(600, 720)]) == (Interval(480, 720),)
    assert merge_intervals([Interval(480, 720), Interval(500, 600)]) == (Interval(480, 720),)
    assert merge_intervals([Interval(480, 599), Interval(600, 720)]) == (
        Interval(480, 599),
        Interval(600, 720),
    )
    assert merge_intervals([]) == ()


@pytest.mark.parametrize(("start", "end"), [(5, 5), (10, 5), (-1, 10)])
def test_empty_or_negative_interval_is_rejected(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="bad interval"):
        Interval(start, end)


# --- properties against a brute-force oracle ------------------------------------------------------


@st.composite
def calendar_days(draw: st.DrawFn) -> WorkingDay:
    """0..3 sorted, non-overlapping (possibly touching) working intervals inside the day."""
    count = draw(st.integers(0, 3))
    points = sorted(
        draw(st.lists(st.integers(0, MINUTES_PER_DAY), min_size=2 * count, max_size=2 * count))
    )
    working = tuple(
        Interval(points[i], points[i + 1])
        for i in range(0, 2 * count, 2)
        if points[i] < points[i + 1]
    )
    return WorkingDay(
        working=working, slot_minutes=draw(st.integers(5, 60)), capacity=draw(st.integers(1, 3))
    )


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(0, MINUTES_PER_DAY - 1))
    return Interval(start, start + draw(st.integers(1, 180)))


booked_lists = st.lists(intervals(), max_size=8)
durations = st.integers(5, 120)


def brute_cover(booked: Sequence[Interval]) -> list[int]:
    """How many booked intervals cover minute m, for every m a query can touch."""
    horizon = MINUTES_PER_DAY + 200
    return [sum(1 for b in booked if b.start <= m < b.end) for m in range(horizon)]


def oracle_verdict(day: WorkingDay, cover: Sequence[int], start: int, duration: int) -> Verdict:
    if not day.working:
        return Verdict.CLOSED
    end = start + duration
    inside = [w for w in day.working if w.start <= start and end <= w.end]
    if not inside:
        return Verdict.OUTSIDE_WORKING_HOURS
    if (start - inside[0].start) % day.slot_minutes != 0:
        return Verdict.OFF_GRID
    if any(cover[m] >= day.capacity for m in range(start, end)):
        return Verdict.FULL
    return Verdict.VACANT


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(day=calendar_days(), booked=booked_lists, duration=durations)
def test_vacant_starts_are_exactly_the_oracles_and_agree_with_check_start(
    day: WorkingDay, booked: list[Interval], duration: int
) -> None:
    cover = brute_cover(booked)
    expected = [
        s
        for s in range(MINUTES_PER_DAY)
        if oracle_verdict(day, cover, s, duration) is Verdict.VACANT
    ]
    vacant = vacant_starts(day, booked, duration)
    # (a) the set the oracle describes
    assert set(vacant) == set(expected)
    # (d) ascending, no duplicates
    assert vacant == sorted(set(vacant))
    # (b) check_start says VACANT exactly there, and agrees with the oracle on every reason
    vacant_set = set(vacant)
    for s in range(MINUTES_PER_DAY):
        verdict = check_start(day, booked, s, duration)
        assert (verdict is Verdict.VACANT) == (s in vacant_set), s
        assert verdict is oracle_verdict(day, cover, s, duration), s


@PROPERTY_SETTINGS
@given(day=calendar_days(), booked=booked_lists, duration=durations, data=st.data())
def test_bypass_verdict_depends_on_working_hours_only(
    day: WorkingDay, booked: list[Interval], duration: int, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, MINUTES_PER_DAY - 1))
    verdict = check_start(day, booked, start, duration, bypass_timeslot_check=True)
    assert verdict is check_start(day, [], start, duration, bypass_timeslot_check=True)
    end = start + duration
    if not day.working:
        assert verdict is Verdict.CLOSED
    elif any(w.start <= start and end <= w.end for w in day.working):
        assert verdict is Verdict.VACANT
    else:
        assert verdict is Verdict.OUTSIDE_WORKING_HOURS


@PROPERTY_SETTINGS
@given(booked=booked_lists, data=st.data())
def test_peak_overlap_is_the_brute_force_maximum_per_minute(
    booked: list[Interval], data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, MINUTES_PER_DAY - 1))
    end = start + data.draw(st.integers(1, 180))
    cover = brute_cover(booked)
    # (c)
    assert peak_overlap(booked, start, end) == max(cover[m] for m in range(start, end))


@settings(max_examples=200, deadline=None)
@given(day=calendar_days(), data=st.data())
def test_booking_only_vacant_starts_never_exceeds_capacity(
    day: WorkingDay, data: st.DataObject
) -> None:
    # (e) a random sequence of bookings, each at a start the model calls vacant
    booked: list[Interval] = []
    for _ in range(data.draw(st.integers(1, 25))):
        duration = data.draw(durations)
        vacant = vacant_starts(day, booked, duration)
        if not vacant:
            continue
        start = data.draw(st.sampled_from(vacant))
        assert check_start(day, booked, start, duration) is Verdict.VACANT
        booked.append(Interval(start, start + duration))
        assert peak_overlap(booked, 0, MINUTES_PER_DAY + 200) <= day.capacity
        # every booking stays inside one working interval
        assert any(w.start <= start and start + duration <= w.end for w in day.working)
    # Coverage only grows, so the final state holds the peak: count it by brute force too.
    assert max(brute_cover(booked), default=0) <= day.capacity
