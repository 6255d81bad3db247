"""next_run: every dailyType and periodicallyEvery, and the daylight-saving edges."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from m365vault.engine.schedule import (
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    ScheduleType,
    next_run,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # DST shifts by 30 minutes
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30, no DST


def local(tz: ZoneInfo, text: str, fold: int = 0) -> datetime:
    """An aware instant from a local wall-clock reading (fold=1 picks a fold's second pass)."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily(day: DailyType, at: str) -> SchedulePolicy:
    return SchedulePolicy(daily_type=day, daily_time=time.fromisoformat(at))


def every(period: PeriodicallyEvery) -> SchedulePolicy:
    return SchedulePolicy(type=ScheduleType.PERIODICALLY, periodically_every=period)


# 2026-06-03 is a Wednesday; 10:00 local is after 08:00 and before 12:00.
WEDNESDAY_10 = "2026-06-03 10:00"


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (DailyType.EVERYDAY, "08:00", "2026-06-04 08:00"),
        (DailyType.EVERYDAY, "12:00", "2026-06-03 12:00"),
        (DailyType.WORKDAYS, "08:00", "2026-06-04 08:00"),
        (DailyType.WORKDAYS, "12:00", "2026-06-03 12:00"),
        (DailyType.WEEKENDS, "08:00", "2026-06-06 08:00"),
        (DailyType.WEEKENDS, "12:00", "2026-06-06 12:00"),
        (DailyType.MONDAY, "08:00", "2026-06-08 08:00"),
        (DailyType.TUESDAY, "08:00", "2026-06-09 08:00"),
        (DailyType.WEDNESDAY, "08:00", "2026-06-10 08:00"),
        (DailyType.WEDNESDAY, "12:00", "2026-06-03 12:00"),
        (DailyType.THURSDAY, "08:00", "2026-06-04 08:00"),
        (DailyType.FRIDAY, "08:00", "2026-06-05 08:00"),
        (DailyType.SATURDAY, "08:00", "2026-06-06 08:00"),
        (DailyType.SUNDAY, "08:00", "2026-06-07 08:00"),
        (DailyType.SUNDAY, "23:59:59", "2026-06-07 23:59:59"),
        (DailyType.EVERYDAY, "00:00", "2026-06-04 00:00"),
    ],
)
def test_daily_every_day_type(day: DailyType, at: str, expected: str) -> None:
    assert next_run(daily(day, at), local(BERLIN, WEDNESDAY_10), BERLIN) == local(BERLIN, expected)


@pytest.mark.parametrize(
    ("day", "after", "expected"),
    [
        (DailyType.WORKDAYS, "2026-06-05 09:00", "2026-06-08 08:00"),  # Friday after the time -> Monday
        (DailyType.WORKDAYS, "2026-06-06 07:00", "2026-06-08 08:00"),  # Saturday -> Monday
        (DailyType.WEEKENDS, "2026-06-06 09:00", "2026-06-07 08:00"),  # Saturday after -> Sunday
        (DailyType.WEEKENDS, "2026-06-07 09:00", "2026-06-13 08:00"),  # Sunday after -> next Saturday
        (DailyType.EVERYDAY, "2026-06-03 08:00", "2026-06-04 08:00"),  # exactly due -> strictly after
        (DailyType.EVERYDAY, "2026-12-31 09:00", "2027-01-01 08:00"),  # year boundary
    ],
)
def test_daily_week_edges(day: DailyType, after: str, expected: str) -> None:
    assert next_run(daily(day, "08:00"), local(BERLIN, after), BERLIN) == local(BERLIN, expected)


def test_daily_time_is_local_wall_clock_whatever_the_season() -> None:
    policy = daily(DailyType.EVERYDAY, "08:00")
    assert next_run(policy, utc("2026-01-10 00:00"), BERLIN) == utc("2026-01-10 07:00")  # CET
    assert next_run(policy, utc("2026-07-10 00:00"), BERLIN) == utc("2026-07-10 06:00")  # CEST
    assert next_run(policy, utc("2026-07-10 00:00"), KOLKATA) == utc("2026-07-10 02:30")


def test_after_may_be_given_in_any_zone() -> None:
    policy = daily(DailyType.EVERYDAY, "08:00")
    after = datetime(2026, 6, 3, 4, 0, tzinfo=NEW_YORK)  # 08:00 UTC, 10:00 Berlin
    result = next_run(policy, after, BERLIN)
    assert result == local(BERLIN, "2026-06-04 08:00")
    assert result is not None and result.tzinfo is UTC


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run(SchedulePolicy.default(), datetime(2026, 6, 3, 10, 0), BERLIN)


# ---------------------------------------------------------------- daylight saving, daily


@pytest.mark.parametrize(
    ("tz", "at", "after", "expected", "why"),
    [
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
        (BERLIN, "02:30", "2026-03-28 12:00", "2026-03-29 01:00", "gap: first valid instant, 03:00 CEST"),
        (BERLIN, "02:00", "2026-03-28 12:00", "2026-03-29 01:00", "gap start"),
        (BERLIN, "03:00", "2026-03-28 12:00", "2026-03-29 01:00", "right after the gap"),
        (BERLIN, "01:59", "2026-03-28 12:00", "2026-03-29 00:59", "right before the gap, CET"),
        (BERLIN, "08:00", "2026-03-28 12:00", "2026-03-29 06:00", "same day after the change, CEST"),
        (BERLIN, "02:30", "2026-03-29 01:00", "2026-03-30 00:30", "the day after the gap"),
        # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC).
        (BERLIN, "02:30", "2026-10-24 12:00", "2026-10-25 00:30", "fold: first occurrence, CEST"),
        (BERLIN, "02:30", "2026-10-25 00:30", "2026-10-26 01:30", "fold: not again on the second pass"),
        (BERLIN, "02:30", "2026-10-25 01:10", "2026-10-26 01:30", "inside the second pass"),
        (BERLIN, "03:00", "2026-10-24 12:00", "2026-10-25 02:00", "after the fold, CET"),
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
        (NEW_YORK, "02:30", "2026-03-07 12:00", "2026-03-08 07:00", "gap: 03:00 EDT"),
        (NEW_YORK, "01:30", "2026-03-07 12:00", "2026-03-08 06:30", "before the gap, EST"),
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
        (NEW_YORK, "01:30", "2026-10-31 12:00", "2026-11-01 05:30", "fold: first occurrence, EDT"),
        (NEW_YORK, "01:30", "2026-11-01 05:30", "2026-11-02 06:30", "fold: once only"),
        # Lord Howe springs forward 2026-10-04 02:00 +10:30 -> 02:30 +11 (2026-10-03 15:30 UTC).
        (LORD_HOWE, "02:15", "2026-10-03 00:00", "2026-10-03 15:30", "30-minute gap: 02:30 +11"),
        (LORD_HOWE, "02:30", "2026-10-03 00:00", "2026-10-03 15:30", "right after the 30-minute gap"),
        # Lord Howe falls back 2026-04-05 02:00 +11 -> 01:30 +10:30 (2026-04-04 15:00 UTC).
        (LORD_HOWE, "01:45", "2026-04-04 00:00", "2026-04-04 14:45", "30-minute fold: first occurrence"),
        (LORD_HOWE, "01:45", "2026-04-04 14:45", "2026-04-05 15:15", "30-minute fold: once only"),
    ],
)
def test_daily_across_dst(tz: ZoneInfo, at: str, after: str, expected: str, why: str) -> None:
    assert next_run(daily(DailyType.EVERYDAY, at), utc(after), tz) == utc(expected), why


# ---------------------------------------------------------------- periodically


@pytest.mark.parametrize(
    ("period", "from_ten_past", "from_on_the_hour"),
    [
        (PeriodicallyEvery.MINUTES5, "10:10", "10:05"),
        (PeriodicallyEvery.MINUTES10, "10:10", "10:10"),
        (PeriodicallyEvery.MINUTES15, "10:15", "10:15"),
        (PeriodicallyEvery.MINUTES30, "10:30", "10:30"),
        (PeriodicallyEvery.HOURS1, "11:00", "11:00"),
        (PeriodicallyEvery.HOURS2, "12:00", "12:00"),
        (PeriodicallyEvery.HOURS4, "12:00", "12:00"),
        (PeriodicallyEvery.HOURS8, "16:00", "16:00"),
    ],
)
def test_periodically_every_period(
    period: PeriodicallyEvery, from_ten_past: str, from_on_the_hour: str
) -> None:
    policy = every(period)
    day = "2026-06-03 "
    assert next_run(policy, local(BERLIN, day + "10:07:30.5"), BERLIN) == local(BERLIN, day + from_ten_past)
    assert next_run(policy, local(BERLIN, day + "10:00"), BERLIN) == local(BERLIN, day + from_on_the_hour)


@pytest.mark.parametrize("period", list(PeriodicallyEvery))
def test_periodic_slots_cover_a_plain_day_evenly(period: PeriodicallyEvery) -> None:
    runs = runs_between(
        every(period), BERLIN, local(BERLIN, "2026-06-02 23:59:59"), local(BERLIN, "2026-06-04 00:00")
    )
    assert len(runs) == 1440 // period.minutes
    assert runs[0] == local(BERLIN, "2026-06-03 00:00")
    assert {b - a for a, b in pairwise(runs)} == {timedelta(minutes=period.minutes)}


def test_hours8_wraps_to_local_midnight() -> None:
    policy = every(PeriodicallyEvery.HOURS8)
    assert next_run(policy, local(BERLIN, "2026-06-03 16:00"), BERLIN) == local(BERLIN, "2026-06-04 00:00")


def test_periodic_grid_is_local_in_a_half_hour_zone() -> None:
    after = local(KOLKATA, "2026-06-03 10:07")
    assert next_run(every(PeriodicallyEvery.MINUTES30), after, KOLKATA) == utc("2026-06-03 05:00")  # 10:30
    assert next_run(every(PeriodicallyEvery.HOURS1), after, KOLKATA) == utc("2026-06-03 05:30")  # 11:00


def runs_between(policy: SchedulePolicy, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    runs = []
    cursor: datetime | None = start
    while (cursor := next_run(policy, cursor, tz)) is not None and cursor < end:  # type: ignore[arg-type]
        runs.append(cursor)
    return runs


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK], ids=str)
@pytest.mark.parametrize(
    "period",
    [
        PeriodicallyEvery.MINUTES5,
        PeriodicallyEvery.MINUTES10,
        PeriodicallyEvery.MINUTES15,
        PeriodicallyEvery.MINUTES30,
        PeriodicallyEvery.HOURS1,
    ],
)
@pytest.mark.parametrize(
    "when", ["2026-03-07 00:00", "2026-03-28 00:00", "2026-10-24 00:00", "2026-10-31 00:00"]
)
def test_sub_hour_periods_keep_real_spacing_across_dst(
    tz: ZoneInfo, period: PeriodicallyEvery, when: str
) -> None:
    """In whole-hour DST zones, wall-clock slots of an hour or less stay one period apart."""
    start = utc(when)
    runs = runs_between(every(period), tz, start, start + timedelta(days=2))
    assert {b - a for a, b in pairwise(runs)} == {timedelta(minutes=period.minutes)}


def test_hourly_across_berlin_spring_forward() -> None:
    runs = runs_between(
        every(PeriodicallyEvery.HOURS1), BERLIN, utc("2026-03-28 22:30"), utc("2026-03-29 02:30")
    )
    assert [run.astimezone(BERLIN).strftime("%H:%M%z") for run in runs] == [
        "00:00+0100",
        "01:00+0100",
        "03:00+0200",  # 02:00 does not exist; still one hour after 01:00 CET
        "04:00+0200",
    ]


def test_hourly_across_berlin_fall_back_runs_on_both_passes() -> None:
    runs = runs_between(
        every(PeriodicallyEvery.HOURS1), BERLIN, utc("2026-10-24 22:30"), utc("2026-10-25 02:30")
    )
    assert [run.astimezone(BERLIN).strftime("%H:%M%z") for run in runs] == [
        "01:00+0200",
        "02:00+0200",
        "02:00+0100",  # the repeated hour: one real hour later
        "03:00+0100",
    ]


def test_two_hourly_slot_in_the_gap_is_skipped() -> None:
    runs = runs_between(
        every(PeriodicallyEvery.HOURS2), BERLIN, utc("2026-03-28 22:30"), utc("2026-03-29 05:00")
    )
    assert [run.astimezone(BERLIN).strftime("%H:%M%z") for run in runs] == [
        "00:00+0100",
        "04:00+0200",
        "06:00+0200",
    ]


def test_eight_hourly_across_new_york_fall_back() -> None:
    runs = runs_between(
        every(PeriodicallyEvery.HOURS8), NEW_YORK, utc("2026-11-01 00:00"), utc("2026-11-02 00:00")
    )
    assert [run.astimezone(NEW_YORK).strftime("%H:%M%z") for run in runs] == [
        "00:00-0400",
        "08:00-0500",  # nine real hours after midnight: the day is 25 hours long
        "16:00-0500",
    ]


def test_half_hourly_across_lord_howe_half_hour_changes() -> None:
    policy = every(PeriodicallyEvery.MINUTES30)
    fall = runs_between(policy, LORD_HOWE, utc("2026-04-04 13:59"), utc("2026-04-04 15:31"))
    assert [run.astimezone(LORD_HOWE).strftime("%H:%M%z") for run in fall] == [
        "01:00+1100",
        "01:30+1100",
        "01:30+1030",  # the 30-minute fold repeats 01:30
        "02:00+1030",
    ]
    spring = runs_between(policy, LORD_HOWE, utc("2026-10-03 13:59"), utc("2026-10-03 16:30"))
    assert [run.astimezone(LORD_HOWE).strftime("%H:%M%z") for run in spring] == [
        "00:30+1030",
        "01:00+1030",
        "01:30+1030",
        "02:30+1100",  # 02:00 does not exist; still 30 real minutes after 01:30
        "03:00+1100",
    ]
