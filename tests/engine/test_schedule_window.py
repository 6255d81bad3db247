"""Backup window: permitted instants, where a run must end, runs postponed by the window; retries."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from m365vault.engine.schedule import (
    BackupWindow,
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    ScheduleType,
    is_permitted,
    next_run,
    retry_at,
    window_end,
)

BERLIN = ZoneInfo("Europe/Berlin")
ALL_DAYS = range(7)
# 2026-06-07 is a Sunday (day 0 of the grid); 2026-06-12 a Friday, 2026-06-13 a Saturday.


def local(text: str, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def nights(minute_offset: int = 0, days: range = ALL_DAYS) -> BackupWindow:
    """22:00-06:00 permitted, the night counted from the evening of each day in `days`."""
    ranges: dict[int, list[range]] = {}
    for day in days:
        ranges.setdefault(day, []).append(range(22, 24))
        ranges.setdefault((day + 1) % 7, []).append(range(0, 6))
    return BackupWindow.from_ranges(ranges, minute_offset)


WEEKEND = BackupWindow.from_ranges({5: [range(22, 24)], 6: [range(0, 24)], 0: [range(0, 6)]})


def windowed(window: BackupWindow, **fields: object) -> SchedulePolicy:
    return SchedulePolicy(backup_window_enabled=True, backup_window=window, **fields)  # type: ignore[arg-type]


def periodic(period: PeriodicallyEvery, window: BackupWindow) -> SchedulePolicy:
    return windowed(window, type=ScheduleType.PERIODICALLY, periodically_every=period)


@pytest.mark.parametrize(
    ("minute_offset", "at", "permitted"),
    [
        (0, "2026-06-03 21:59:59", False),
        (0, "2026-06-03 22:00", True),
        (0, "2026-06-04 05:59:59", True),
        (0, "2026-06-04 06:00", False),
        (30, "2026-06-03 22:29:59", False),
        (30, "2026-06-03 22:30", True),
        (30, "2026-06-04 06:29:59", True),
        (30, "2026-06-04 06:30", False),
    ],
)
def test_permitted_edges_and_minute_offset(minute_offset: int, at: str, permitted: bool) -> None:
    assert is_permitted(windowed(nights(minute_offset)), local(at), BERLIN) is permitted


def test_grid_cells_are_sunday_based_and_wrap_the_week() -> None:
    window = BackupWindow.from_ranges({0: [range(0, 1)]}, minute_offset=30)  # Sunday 00:30-01:30 only
    policy = windowed(window)
    assert not is_permitted(policy, local("2026-06-07 00:10"), BERLIN)  # shifted: Saturday 23:40
    assert is_permitted(policy, local("2026-06-07 00:30"), BERLIN)
    assert is_permitted(policy, local("2026-06-07 01:29"), BERLIN)
    assert not is_permitted(policy, local("2026-06-08 00:30"), BERLIN)  # Monday
    last_cell = BackupWindow.from_ranges({6: [range(23, 24)]}, minute_offset=30)  # Sat 23:30-Sun 00:30
    assert is_permitted(windowed(last_cell), local("2026-06-07 00:10"), BERLIN)


def test_disabled_window_permits_everything_and_never_ends_a_run() -> None:
    policy = SchedulePolicy(backup_window_enabled=False, backup_window=nights())
    assert is_permitted(policy, local("2026-06-03 12:00"), BERLIN)
    assert window_end(policy, local("2026-06-03 12:00"), BERLIN) is None
    assert window_end(windowed(BackupWindow.always()), local("2026-06-03 12:00"), BERLIN) is None


@pytest.mark.parametrize(
    ("window", "started", "ends"),
    [
        (nights(), "2026-06-03 23:00", "2026-06-04 06:00"),
        (nights(), "2026-06-03 22:00", "2026-06-04 06:00"),
        (nights(), "2026-06-04 05:59:59", "2026-06-04 06:00"),
        (nights(30), "2026-06-03 23:00", "2026-06-04 06:30"),
        (WEEKEND, "2026-06-12 23:00", "2026-06-14 06:00"),  # one span over the whole Saturday
        (nights(days=range(6, 7)), "2026-06-13 23:00", "2026-06-14 06:00"),  # Saturday into Sunday
    ],
)
def test_window_end_is_the_end_of_the_open_span(window: BackupWindow, started: str, ends: str) -> None:
    assert window_end(windowed(window), local(started), BERLIN) == local(ends)


def test_run_started_outside_the_window_ends_at_once() -> None:
    started = local("2026-06-03 12:00")
    assert window_end(windowed(nights()), started, BERLIN) == started
    never = BackupWindow((False,) * 168)
    assert window_end(windowed(never), started, BERLIN) == started


def test_window_end_across_dst_counts_local_hours() -> None:
    early_sunday = BackupWindow.from_ranges({0: [range(0, 4)]})  # Sunday 00:00-04:00 local
    policy = windowed(early_sunday)
    # Spring forward: 00:30 CET .. 04:00 CEST is two and a half real hours.
    assert window_end(policy, utc("2026-03-28 23:30"), BERLIN) == utc("2026-03-29 02:00")
    # Fall back: 00:30 CEST .. 04:00 CET is four and a half real hours.
    assert window_end(policy, utc("2026-10-24 22:30"), BERLIN) == utc("2026-10-25 03:00")


def test_window_hour_that_a_gap_removes_is_never_open() -> None:
    only_two_am = windowed(BackupWindow.from_ranges({0: [range(2, 3)]}))  # Sunday 02:00-03:00
    assert not is_permitted(only_two_am, utc("2026-03-29 00:59:59"), BERLIN)  # 01:59:59 CET
    assert not is_permitted(only_two_am, utc("2026-03-29 01:00"), BERLIN)  # 03:00 CEST
    policy = windowed(
        only_two_am.backup_window, type=ScheduleType.PERIODICALLY, periodically_every=PeriodicallyEvery.HOURS1
    )
    # That Sunday has no 02:00; the next open hour is a week later.
    assert next_run(policy, utc("2026-03-28 12:00"), BERLIN) == local("2026-04-05 02:00")


# ---------------------------------------------------------------- runs and the window


@pytest.mark.parametrize(
    ("period", "window", "after", "expected", "why"),
    [
        (PeriodicallyEvery.HOURS8, nights(), "2026-06-03 07:00", "2026-06-03 22:00", "08:00 and 16:00 owed"),
        (PeriodicallyEvery.HOURS8, nights(), "2026-06-03 22:00", "2026-06-04 00:00", "back on the grid"),
        (PeriodicallyEvery.HOURS8, nights(), "2026-06-04 00:00", "2026-06-04 22:00", "next night"),
        (PeriodicallyEvery.HOURS8, nights(), "2026-06-03 21:00", "2026-06-03 22:00", "owed, seen late"),
        (PeriodicallyEvery.MINUTES15, nights(30), "2026-06-03 22:10", "2026-06-03 22:30", "offset opening"),
        (PeriodicallyEvery.MINUTES15, nights(30), "2026-06-03 22:30", "2026-06-03 22:45", "then the grid"),
        (PeriodicallyEvery.MINUTES15, nights(30), "2026-06-04 06:15", "2026-06-04 22:30", "closes at 06:30"),
        (PeriodicallyEvery.MINUTES5, nights(), "2026-06-04 05:55", "2026-06-04 22:00", "last slot was 05:55"),
    ],
)
def test_periodic_slots_in_closed_hours_run_at_the_opening(
    period: PeriodicallyEvery, window: BackupWindow, after: str, expected: str, why: str
) -> None:
    assert next_run(periodic(period, window), local(after), BERLIN) == local(expected), why


def test_a_closed_hour_without_a_slot_adds_no_run() -> None:
    closed_three_to_four = BackupWindow(tuple(hour % 24 != 3 for hour in range(168)))
    policy = periodic(PeriodicallyEvery.HOURS8, closed_three_to_four)
    assert next_run(policy, local("2026-06-03 03:10"), BERLIN) == local("2026-06-03 08:00")


def test_a_slot_in_a_closed_hour_waits_for_its_end() -> None:
    closed_four_to_five = BackupWindow(tuple(hour % 24 != 4 for hour in range(168)))
    policy = periodic(PeriodicallyEvery.HOURS4, closed_four_to_five)
    assert next_run(policy, local("2026-06-03 00:00"), BERLIN) == local("2026-06-03 05:00")
    assert next_run(policy, local("2026-06-03 04:30"), BERLIN) == local("2026-06-03 05:00")
    assert next_run(policy, local("2026-06-03 05:00"), BERLIN) == local("2026-06-03 08:00")


def test_daily_runs_only_when_its_start_is_permitted() -> None:
    late = windowed(nights(days=range(1, 6)), daily_type=DailyType.EVERYDAY, daily_time=time(23, 0))
    # Friday 23:00 is permitted, Saturday and Sunday 23:00 are not: next is Monday.
    assert next_run(late, local("2026-06-12 23:30"), BERLIN) == local("2026-06-15 23:00")
    morning = windowed(nights(), daily_type=DailyType.EVERYDAY, daily_time=time(8, 0))
    assert next_run(morning, local("2026-06-03 00:00"), BERLIN) is None


def test_a_window_that_never_opens_means_no_run() -> None:
    never = BackupWindow((False,) * 168)
    assert next_run(periodic(PeriodicallyEvery.MINUTES5, never), local("2026-06-03 00:00"), BERLIN) is None


# ---------------------------------------------------------------- retries


def test_retries_come_wait_interval_after_each_failure_up_to_retry_number() -> None:
    policy = SchedulePolicy(retry_enabled=True, retry_number=3, retry_wait_interval=10)
    failed = utc("2026-06-03 10:00")
    assert [retry_at(policy, attempt, failed) for attempt in (1, 2, 3, 4)] == [
        failed + timedelta(minutes=10),
        failed + timedelta(minutes=10),
        failed + timedelta(minutes=10),
        None,
    ]


def test_no_retries_when_disabled() -> None:
    policy = SchedulePolicy(retry_enabled=False, retry_number=3)
    assert retry_at(policy, 1, utc("2026-06-03 10:00")) is None


def test_retry_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        retry_at(SchedulePolicy(), 0, utc("2026-06-03 10:00"))
    with pytest.raises(ValueError, match="timezone-aware"):
        retry_at(SchedulePolicy(), 1, datetime(2026, 6, 3, 10, 0))
