"""When a job runs next, when its backup window closes, and when a failed object is retried.

Pure functions of a `SchedulePolicy`, an instant and the server's time zone; nothing here reads
the clock. Every instant in and out is timezone-aware (results are in UTC).

Semantics where the v3 reference is silent (chosen here, tested in tests/engine):

* Daily: one run on each chosen local day at `dailyTime` local wall-clock time. A time skipped by
  a spring-forward gap runs at the first valid instant after the gap (02:30 -> 03:00 in Berlin);
  a time repeated by a fall-back fold runs once, at its first occurrence. With the backup window
  enabled, a day whose start instant is not permitted is skipped: a run there would be
  terminated as soon as it began, and moving it would change the administrator's chosen time.
* Periodically: runs at every instant whose local wall-clock reading is a whole multiple of the
  period counted from local midnight (Hours8 -> 00:00, 08:00, 16:00 local). Wall times removed by
  a gap have no instant and are skipped; wall times repeated by a fold run on both passes, which
  keeps the real spacing between runs at one period on both sides of the change.
  With the backup window enabled, a slot that falls in a closed hour is owed: it runs when the
  window next opens, and all slots owed to one closed span merge into that single run.
* Backup window: cell (day, hour) of the grid covers local [hour:offset, hour+1:offset) of that
  day (day 0 = Sunday, offset = minuteOffset). A run that is inside the window must end when the
  contiguous open span it is in ends; a run that starts outside it ends at once.
* Retries: retry number k (1-based) of a failed object happens `retryWaitInterval` minutes after
  the failure it follows, for k = 1 .. retryNumber.
* Retention passes (a repository's cleanup schedule): Daily passes follow the Daily job rules
  above (no backup window); a Monthly pass runs on the chosen weekday of the month (First ..
  Fourth, or Last) at `monthlyTime` local time, with the same gap and fold rules.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from m365vault.catalog.retention_policy import (
    DAY_NUMBERS,
    WEEKDAYS,
    RetentionFrequencyType,
    RetentionPolicy,
)
from m365vault.engine.local_time import first_instant_at_or_after, pieces, require_aware, wall_clock
from m365vault.engine.schedule_policy import (
    BackupWindow,
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    SchedulePolicyError,
    ScheduleType,
)

__all__ = [
    "BackupWindow",
    "DailyType",
    "PeriodicallyEvery",
    "SchedulePolicy",
    "SchedulePolicyError",
    "ScheduleType",
    "is_permitted",
    "next_retention_pass",
    "next_run",
    "retry_at",
    "window_end",
]

_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
# A weekly grid repeats every 7 days; 15 days covers a week plus any offset change and a second
# week for the rare case where the only open hour of this week falls into a DST gap.
_HORIZON = timedelta(days=15)
_LOOKBACK = timedelta(days=8)


def is_permitted(policy: SchedulePolicy, at: datetime, tz: ZoneInfo) -> bool:
    """Whether `at` lies in the backup window (always True when the window is disabled)."""
    if not policy.backup_window_enabled:
        return True
    return _cell_open(policy.backup_window, wall_clock(tz, require_aware(at, "at")))


def next_run(policy: SchedulePolicy, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first due time strictly after `after`, in UTC; None if the policy never comes due.

    None happens only with an enabled backup window that never permits a due time (for example
    all 168 hours closed, or a Daily time whose hour is closed on every chosen day).
    """
    after = require_aware(after, "after")
    if policy.type is ScheduleType.DAILY:
        return _next_daily(policy, after, tz)
    return _next_periodic(policy, after, tz)


def window_end(policy: SchedulePolicy, started: datetime, tz: ZoneInfo) -> datetime | None:
    """When a run started at `started` must be terminated; None if never.

    That is the end of the contiguous permitted span `started` is in, or `started` itself when it
    is outside the window (the caller decides whether a manual start is held to the window).
    """
    started = require_aware(started, "started")
    window = policy.backup_window
    if not policy.backup_window_enabled or window.is_always_open:
        return None
    if not _cell_open(window, wall_clock(tz, started)):
        return started
    for span_start, _, is_open in _window_spans(window, tz, started, started + _HORIZON):
        if not is_open:
            return span_start
    return None


def retry_at(policy: SchedulePolicy, attempt: int, failed_at: datetime) -> datetime | None:
    """When retry number `attempt` (1-based) of an object that failed at `failed_at` is due.

    None when retries are disabled or `attempt` exceeds `retryNumber`.
    """
    if attempt < 1:
        raise ValueError(f"retry attempts are counted from 1, got {attempt}")
    failed_at = require_aware(failed_at, "failed_at")
    if not policy.retry_enabled or attempt > policy.retry_number:
        return None
    return failed_at + timedelta(minutes=policy.retry_wait_interval)


# ---------------------------------------------------------------- daily


def _next_daily(policy: SchedulePolicy, after: datetime, tz: ZoneInfo) -> datetime | None:
    assert policy.daily_type is not None and policy.daily_time is not None  # SchedulePolicy checks
    weekdays = policy.daily_type.weekdays()
    today = wall_clock(tz, after).date()
    for days_ahead in range(_HORIZON.days):
        day = today + timedelta(days=days_ahead)
        if day.weekday() not in weekdays:
            continue
        due = first_instant_at_or_after(tz, day, policy.daily_time)
        # `due <= after` happens for today's run already past, including a fold's second pass.
        if due > after and is_permitted(policy, due, tz):
            return due
    return None


# ---------------------------------------------------------------- retention passes


def next_retention_pass(policy: RetentionPolicy, after: datetime, tz: ZoneInfo) -> datetime:
    """The first retention pass of a repository's cleanup schedule strictly after `after`, in UTC."""
    after = require_aware(after, "after")
    if policy.frequency_type is RetentionFrequencyType.DAILY:
        daily = SchedulePolicy(daily_type=DailyType(policy.daily_type), daily_time=policy.daily_time)
        due = _next_daily(daily, after, tz)
        assert due is not None  # without a backup window every chosen day has its due time
        return due
    weekday = WEEKDAYS.index(policy.monthly_dayofweek)
    month = wall_clock(tz, after).date().replace(day=1)
    for _ in range(3):  # this month's day may have passed; next month's never has
        day = _nth_weekday(month, policy.monthly_daynumber, weekday)
        due = first_instant_at_or_after(tz, day, policy.monthly_time)
        if due > after:
            return due
        month = (month + timedelta(days=32)).replace(day=1)
    raise AssertionError("a monthly pass always falls within two months")  # pragma: no cover


def _nth_weekday(month: date, number: str, weekday: int) -> date:
    """The First .. Fourth or Last `weekday` (Monday = 0) of the month starting at `month`."""
    days = [
        d
        for d in calendar.Calendar().itermonthdates(month.year, month.month)
        if d.month == month.month and d.weekday() == weekday
    ]
    return days[-1] if number == "Last" else days[DAY_NUMBERS.index(number)]


# ---------------------------------------------------------------- periodically


def _next_periodic(policy: SchedulePolicy, after: datetime, tz: ZoneInfo) -> datetime | None:
    assert policy.periodically_every is not None  # SchedulePolicy checks
    period = timedelta(minutes=policy.periodically_every.minutes)
    upcoming = _next_slot(tz, period, after + _TICK)
    if not policy.backup_window_enabled or policy.backup_window.is_always_open:
        return upcoming
    window = policy.backup_window
    if window.is_never_open:
        return None
    if not _cell_open(window, wall_clock(tz, after)):
        # A slot that fell in the closed span we are in is still owed at the coming opening.
        closed_since = _closed_span_start(window, tz, after)
        if _next_slot(tz, period, closed_since) <= after:
            return _opening(window, tz, after)
    if _cell_open(window, wall_clock(tz, upcoming)):
        return upcoming
    return _opening(window, tz, upcoming)


def _next_slot(tz: ZoneInfo, period: timedelta, at_or_after: datetime) -> datetime:
    """The first instant >= `at_or_after` whose local reading is a multiple of `period`."""
    for piece in pieces(tz, at_or_after, at_or_after + timedelta(days=3)):
        wall = piece.wall(max(at_or_after, piece.start))
        midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
        slots_passed = -((midnight - wall) // period)  # ceiling division
        candidate = piece.instant(midnight + slots_passed * period)
        if candidate < piece.end:
            return candidate
    raise AssertionError("a period of at most 8 hours always has a slot within 3 days")


# ---------------------------------------------------------------- backup window


def _cell_open(window: BackupWindow, wall: datetime) -> bool:
    shifted = wall - timedelta(minutes=window.minute_offset)
    sunday_based_day = (shifted.weekday() + 1) % 7
    return window.permits(sunday_based_day, shifted.hour)


def _window_spans(
    window: BackupWindow, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, bool]]:
    """Maximal (from, to, open) spans covering [start, end); the last one is cut at `end`."""
    offset = timedelta(minutes=window.minute_offset)
    span_start, span_open = start, _cell_open(window, wall_clock(tz, start))
    for piece in pieces(tz, start, end):
        cursor = piece.start
        while cursor < piece.end:
            wall = piece.wall(cursor)
            is_open = _cell_open(window, wall)
            if is_open != span_open:
                yield span_start, cursor, span_open
                span_start, span_open = cursor, is_open
            cell_start = (wall - offset).replace(minute=0, second=0, microsecond=0) + offset
            cursor = min(piece.instant(cell_start + _HOUR), piece.end)
    yield span_start, end, span_open


def _opening(window: BackupWindow, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The first permitted instant at or after `at`."""
    for span_start, _, is_open in _window_spans(window, tz, at, at + _HORIZON):
        if is_open:
            return span_start
    return None


def _closed_span_start(window: BackupWindow, tz: ZoneInfo, at: datetime) -> datetime:
    """Where the closed span containing `at` began (looking back at most `_LOOKBACK`)."""
    # Most closed spans are shorter than a day: look back a day first, a week and a day if needed.
    for lookback in (timedelta(days=1), _LOOKBACK):
        last_start = at - lookback
        for span_start, _, _ in _window_spans(window, tz, at - lookback, at + _TICK):
            last_start = span_start
        if last_start > at - lookback:
            return last_start
    return at - _LOOKBACK
