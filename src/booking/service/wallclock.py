"""Wall-clock minutes on a local date <-> instants, with the contract's DST rules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tzlocal.windows_tz import tz_win

Clock = Callable[[], datetime]  # returns an aware datetime; tests pin it

# The calendar dates whose every wall time has a UTC instant that `datetime` can hold (UTC
# offsets stay within a day): 23:50 on 9999-12-31 in New York would be in year 10000. Dates
# outside are refused where they come in, so nothing computed from a date can overflow.
EARLIEST_DATE = date.min + timedelta(days=1)
LATEST_DATE = date.max - timedelta(days=1)


def system_clock() -> datetime:
    return datetime.now(UTC)


def local_datetime(on_date: date, minute: int) -> datetime:
    """The naive wall-clock datetime `minute` minutes after local midnight."""
    return datetime.combine(on_date, time()) + timedelta(minutes=minute)


# Memoized: a pure function of its arguments, called for every start of every vacancies
# request, and the same dates and starts come back all day.
@functools.lru_cache(maxsize=65536)
def instant_of(on_date: date, minute: int, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall time, or None when that wall time does not exist (it falls in a
    spring-forward gap). An ambiguous wall time (fall-back overlap) means its first occurrence."""
    wall = local_datetime(on_date, minute)
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def local_today(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def windows_time_zone(iana_name: str) -> str | None:
    """The Windows id of an IANA zone ("GMT Standard Time" for Europe/London), from CLDR's
    windowsZones table as tzlocal ships it; None for the few zones it does not map."""
    return tz_win.get(iana_name)
