"""Wall-clock arithmetic in a time zone, for schedules that speak local time.

Schedules are written in the server's local wall-clock time ("08:00 on workdays", "hours 22-06
permitted"), but runs happen at instants. Between two daylight-saving transitions the local clock is
just UTC plus a constant offset, so every question here is answered by cutting time into such
constant-offset `Piece`s and doing plain arithmetic inside each one. That keeps the answers exact
across spring-forward gaps and fall-back folds without stepping minute by minute.

Assumption: a zone changes its offset at most once within any 24 hours (true for every zone in the
tz database since the era of local mean time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Piece:
    """A span of instants [start, end) during which the local clock reads `instant + offset`."""

    start: datetime
    end: datetime
    offset: timedelta

    def wall(self, instant: datetime) -> datetime:
        """The naive local wall-clock reading at `instant` (which must lie in this piece)."""
        return (instant + self.offset).replace(tzinfo=None)

    def instant(self, wall: datetime) -> datetime:
        """The instant at which this piece's clock reads `wall` (may fall outside the piece)."""
        return (wall - self.offset).replace(tzinfo=UTC)


def load_time_zone(
    name: str | None = None,
    environ: Mapping[str, str] = os.environ,
    localtime: Path = Path("/etc/localtime"),
) -> ZoneInfo:
    """The server's time zone for schedules: an IANA name, or the host's zone when `name` is None.

    The host's zone comes from the TZ variable, else the /etc/localtime link, else UTC. A name the
    tz database does not know is refused with a clear error rather than falling back silently,
    because every nextRun would then be off by hours.
    """
    if name is None:
        name = environ.get("TZ", "").removeprefix(":") or _zone_of_link(localtime) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def _zone_of_link(localtime: Path) -> str | None:
    try:
        target = str(localtime.resolve(strict=True))
    except OSError:
        return None
    _, found, key = target.partition("zoneinfo/")
    return key if found and key else None


def require_aware(value: datetime, name: str) -> datetime:
    """`value` converted to UTC; naive datetimes are refused because their meaning is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def utc_offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    """The zone's UTC offset at `instant`."""
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def wall_clock(tz: ZoneInfo, instant: datetime) -> datetime:
    """The naive local wall-clock reading at `instant`."""
    return instant.astimezone(tz).replace(tzinfo=None)


def _transition_between(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first instant in (low, high] whose offset differs from the offset at `low`.

    Precondition: the offsets at `low` and `high` differ, and there is one transition between.
    Transitions fall on whole seconds, so a binary search on seconds is exact.
    """
    # Searching from a whole second keeps the answer on the whole second the change happens at.
    low = low.replace(microsecond=0)
    before = utc_offset(tz, low)
    lo, hi = 0, -((low - high) // _SECOND)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if utc_offset(tz, low + mid * _SECOND) == before:
            lo = mid
        else:
            hi = mid
    return low + hi * _SECOND


def pieces(tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[Piece]:
    """Constant-offset pieces covering [start, end), in order, none longer than a day."""
    cursor = start
    while cursor < end:
        step_end = min(cursor + _DAY, end)
        offset = utc_offset(tz, cursor)
        if utc_offset(tz, step_end) != offset:
            step_end = _transition_between(tz, cursor, step_end)
        yield Piece(cursor, step_end, offset)
        cursor = step_end


def first_instant_at_or_after(tz: ZoneInfo, day: date, at: time) -> datetime:
    """The first instant at which the local clock of `day` reads `at` or later.

    A wall time that exists once maps to that instant; a wall time repeated by a fall-back fold
    maps to its first occurrence; a wall time skipped by a spring-forward gap maps to the
    transition instant, i.e. the first valid local time after the gap (02:30 -> 03:00 in Berlin).
    """
    wall = datetime.combine(day, at)
    earlier_offset = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if wall_clock(tz, earlier_offset) == wall:
        return earlier_offset
    # In a gap, fold=0 reads the wall time with the offset from before the jump (a later instant)
    # and fold=1 with the offset after it (an earlier instant); the jump lies between the two.
    later_offset = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = min(earlier_offset, later_offset), max(earlier_offset, later_offset)
    return _transition_between(tz, low, high)
