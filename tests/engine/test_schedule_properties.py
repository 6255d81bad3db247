"""Hypothesis: next_run and window_end agree with a minute-by-minute reference implementation.

The reference knows nothing of constant-offset pieces or transitions: it reads the local clock at
every whole minute and applies the documented rules literally. Agreement means the result is
strictly after `after`, is a due time by the rules (on a chosen day, on the grid, permitted), and
that no due time between the two was skipped.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m365vault.engine.schedule import (
    BackupWindow,
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    ScheduleType,
    is_permitted,
    next_run,
    window_end,
)

MINUTE = timedelta(minutes=1)
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # changes at local midnight: some days have no 00:00
    "America/Havana",  # likewise, in the northern hemisphere
    "Asia/Kolkata",  # +05:30, no DST
    "UTC",
]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def transitions(zone: str) -> list[datetime]:
    """The offset changes of 2025-2027, found by an hourly scan (test-side, independent)."""
    tz, found = ZoneInfo(zone), []
    cursor = datetime(2025, 1, 1, tzinfo=UTC)
    previous = cursor.astimezone(tz).utcoffset()
    while cursor < datetime(2028, 1, 1, tzinfo=UTC):
        cursor += timedelta(hours=1)
        offset = cursor.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(cursor)
            previous = offset
    return found


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and an instant, often within a day of one of its DST changes."""
    zone = draw(st.sampled_from(ZONES))
    near = transitions(zone)
    pick_near: bool = draw(st.booleans())
    if near and pick_near:
        base = draw(st.sampled_from(near))
        instant = base + timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))
    else:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        instant = start + timedelta(seconds=draw(st.integers(0, 3 * 365 * 86400)))
    if draw(st.booleans()):
        instant = instant.replace(second=0)  # exactly on a minute, often exactly on a due time
    return ZoneInfo(zone), instant


windows = st.builds(
    BackupWindow,
    st.one_of(
        st.lists(st.booleans(), min_size=168, max_size=168).map(tuple),
        # realistic shapes: the same open hours every day
        st.sets(st.integers(0, 23), min_size=1).map(lambda hours: tuple(h % 24 in hours for h in range(168))),
    ),
    st.integers(0, 59),
)


@st.composite
def policies(draw: st.DrawFn, zone: str = "UTC") -> SchedulePolicy:
    window_enabled = draw(st.booleans())
    window = draw(windows) if window_enabled else BackupWindow()
    if draw(st.booleans()):
        return SchedulePolicy(
            type=ScheduleType.PERIODICALLY,
            periodically_every=draw(st.sampled_from(list(PeriodicallyEvery))),
            backup_window_enabled=window_enabled,
            backup_window=window,
        )
    daily_time = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    pick_near: bool = draw(st.booleans())
    if transitions(zone) and pick_near:
        # A daily time in or next to a gap or a fold of this zone: where the hard cases are.
        change = draw(st.sampled_from(transitions(zone)))
        reading = change.astimezone(ZoneInfo(zone)) + timedelta(minutes=draw(st.integers(-90, 90)))
        daily_time = reading.time().replace(second=0, microsecond=0, tzinfo=None)
    return SchedulePolicy(
        daily_type=draw(st.sampled_from(list(DailyType))),
        daily_time=daily_time,
        backup_window_enabled=window_enabled,
        backup_window=window,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[SchedulePolicy, ZoneInfo, datetime]:
    tz, instant = draw(zone_and_instant())
    return draw(policies(tz.key)), tz, instant


# ---------------------------------------------------------------- the reference


class Reference:
    """Local clock readings at every whole minute of [start - lookback, end)."""

    def __init__(self, policy: SchedulePolicy, tz: ZoneInfo, start: datetime, end: datetime) -> None:
        self.policy = policy
        # An owed periodic slot can lie up to a week back (a window open one hour a week); the
        # daily rule looks back over a fold (a few hours).
        owing = policy.type is ScheduleType.PERIODICALLY and policy.backup_window_enabled
        lookback = timedelta(days=9) if owing else timedelta(hours=4)
        self.first = (start - lookback).replace(second=0, microsecond=0)
        count = int((end - self.first) / MINUTE) + 1
        self.instants = [self.first + i * MINUTE for i in range(count)]
        self.walls = [u.astimezone(tz).replace(tzinfo=None) for u in self.instants]
        self.open = [self._cell_open(wall) for wall in self.walls]

    def _cell_open(self, wall: datetime) -> bool:
        if not self.policy.backup_window_enabled:
            return True
        shifted = wall - timedelta(minutes=self.policy.backup_window.minute_offset)
        return self.policy.backup_window.hours[((shifted.weekday() + 1) % 7) * 24 + shifted.hour]

    def due_flags(self) -> list[bool]:
        if self.policy.type is ScheduleType.PERIODICALLY:
            return self._periodic_due()
        return [self._daily_due(i) for i in range(len(self.instants))]

    def _periodic_due(self) -> list[bool]:
        """On-grid and open, or the first open minute after a closed span that held a slot."""
        assert self.policy.periodically_every is not None
        period = self.policy.periodically_every.minutes
        flags, owed = [], False
        for i, wall in enumerate(self.walls):
            on_grid = (wall.hour * 60 + wall.minute) % period == 0 and wall.second == 0
            if not self.open[i]:
                owed = owed or on_grid
                flags.append(False)
                continue
            flags.append(on_grid or owed)
            owed = False
        return flags

    def _daily_due(self, i: int) -> bool:
        """The local clock reaches the daily time for the first time that day at this minute."""
        if i == 0 or not self.open[i]:
            return False
        assert self.policy.daily_type is not None and self.policy.daily_time is not None
        before, now = self.walls[i - 1], self.walls[i]
        for day in {before.date(), now.date()}:
            target = datetime.combine(day, self.policy.daily_time)
            if day.weekday() not in self.policy.daily_type.weekdays() or not before < target <= now:
                continue
            # A fall-back fold lets the clock cross the same reading twice; only the first counts.
            earlier = self.walls[max(0, i - 180) : i]
            if all(wall < target for wall in earlier):
                return True
        return False

    def next_due(self, after: datetime) -> datetime | None:
        for instant, due in zip(self.instants, self.due_flags(), strict=True):
            if instant > after and due:
                return instant
        return None


# ---------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(scenarios())
def test_next_run_matches_the_minute_by_minute_reference(
    scenario: tuple[SchedulePolicy, ZoneInfo, datetime],
) -> None:
    policy, tz, after = scenario
    result = next_run(policy, after, tz)
    # Reading the clock up to the result is enough to see anything skipped before it.
    horizon = result + MINUTE if result is not None else after + timedelta(days=16)
    expected = Reference(policy, tz, after, horizon).next_due(after)
    if result is not None:
        assert result > after
        assert is_permitted(policy, result, tz)
        assert result.tzinfo is UTC
    assert result == expected, (
        f"{tz.key}: after {after.astimezone(tz)} got {result and result.astimezone(tz)}, "
        f"reference {expected and expected.astimezone(tz)}"
    )


@PROPERTY_SETTINGS
@given(windows, zone_and_instant())
def test_window_end_matches_the_reference(
    window: BackupWindow, zone_started: tuple[ZoneInfo, datetime]
) -> None:
    tz, started = zone_started
    started = started.replace(second=0, microsecond=0)
    policy = SchedulePolicy(backup_window_enabled=True, backup_window=window)
    end = window_end(policy, started, tz)
    if window.is_always_open:
        assert end is None
        return
    reference = Reference(
        policy, tz, started, end + MINUTE if end is not None else started + timedelta(days=16)
    )
    index = reference.instants.index(started)
    if not reference.open[index]:
        assert end == started
        return
    expected = next(
        (
            u
            for u, is_open in zip(reference.instants[index:], reference.open[index:], strict=True)
            if not is_open
        ),
        None,
    )
    assert end == expected


@PROPERTY_SETTINGS
@given(scenarios())
def test_next_run_is_a_fixed_point_of_its_own_sequence(
    scenario: tuple[SchedulePolicy, ZoneInfo, datetime],
) -> None:
    """Asking again just before a due time gives that due time; asking at it gives a later one."""
    policy, tz, after = scenario
    first = next_run(policy, after, tz)
    if first is None:
        return
    assert next_run(policy, first - timedelta(microseconds=1), tz) == first
    second = next_run(policy, first, tz)
    assert second is None or second > first
