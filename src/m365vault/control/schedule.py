"""Schedule policies: validation, merging of partial edits, and the next run time.

A policy is stored as the v3 `schedulePolicy` document (already normalised: PascalCase enums,
HH:mm:ss times), because that document is the domain's own description of a schedule.
Times of day are read in the server's time zone (`Services.time_zone`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from m365vault.control.enums import DailyType, PeriodicallyEvery, ScheduleType
from m365vault.control.errors import InvalidRequest
from m365vault.engine import schedule
from m365vault.engine.schedule_policy import SchedulePolicy

WINDOW_CELLS = 7 * 24


@dataclass(frozen=True)
class ScheduleInput:
    """A schedule policy or the changed parts of one (None = not given)."""

    type: ScheduleType | None = None
    daily_type: DailyType | None = None
    daily_time: str | None = None
    periodically_every: PeriodicallyEvery | None = None
    backup_window_enabled: bool | None = None
    backup_window: list[bool] | None = None
    minute_offset: int | None = None
    retry_enabled: bool | None = None
    retry_number: int | None = None
    retry_wait_interval: int | None = None


def _time(value: str) -> str:
    try:
        parsed = time.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest("'dailyTime' must be a time of day as HH:mm:ss.") from exc
    return parsed.replace(microsecond=0, tzinfo=None).isoformat()


def merge_policy(stored: dict[str, Any] | None, given: ScheduleInput, *, creating: bool) -> dict[str, Any]:
    """Apply `given` onto `stored` and validate the result."""
    changes_timing = any(
        v is not None for v in (given.daily_type, given.daily_time, given.periodically_every)
    )
    if not creating and given.type is None and changes_timing:
        raise InvalidRequest(
            "schedulePolicy 'type' is required when dailyType, dailyTime or periodicallyEvery change."
        )
    policy: dict[str, Any] = {
        "type": ScheduleType.DAILY.value,
        "backupWindowEnabled": False,
        "retryEnabled": True,
        "retryNumber": 3,
        "retryWaitInterval": 10,
        **(stored or {}),
    }
    if given.type is not None:
        policy["type"] = given.type.value
    if given.daily_type is not None:
        policy["dailyType"] = given.daily_type.value
    if given.daily_time is not None:
        policy["dailyTime"] = _time(given.daily_time)
    if given.periodically_every is not None:
        policy["periodicallyEvery"] = given.periodically_every.value
    if given.backup_window_enabled is not None:
        policy["backupWindowEnabled"] = given.backup_window_enabled
    _apply_window(policy, given)
    _apply_retry(policy, given)
    return _complete(policy)


def _apply_window(policy: dict[str, Any], given: ScheduleInput) -> None:
    if given.backup_window is None and given.minute_offset is None:
        return
    default = {"backupWindow": [True] * WINDOW_CELLS, "minuteOffset": 0}
    window = dict(policy.get("backupWindowSettings") or default)
    if given.backup_window is not None:
        if len(given.backup_window) != WINDOW_CELLS:
            raise InvalidRequest(f"'backupWindow' must hold {WINDOW_CELLS} booleans (7 days x 24 hours).")
        window["backupWindow"] = list(given.backup_window)
    if given.minute_offset is not None:
        if not 0 <= given.minute_offset < 60:
            raise InvalidRequest("'minuteOffset' must be between 0 and 59.")
        window["minuteOffset"] = given.minute_offset
    policy["backupWindowSettings"] = window


def _apply_retry(policy: dict[str, Any], given: ScheduleInput) -> None:
    if given.retry_enabled is not None:
        policy["retryEnabled"] = given.retry_enabled
    if given.retry_number is not None:
        if not 1 <= given.retry_number <= 777:
            raise InvalidRequest("'retryNumber' must be between 1 and 777.")
        policy["retryNumber"] = given.retry_number
    if given.retry_wait_interval is not None:
        if not 1 <= given.retry_wait_interval <= 999:
            raise InvalidRequest("'retryWaitInterval' must be between 1 and 999 minutes.")
        policy["retryWaitInterval"] = given.retry_wait_interval


def _complete(policy: dict[str, Any]) -> dict[str, Any]:
    """Fill what the type implies, drop what it excludes, and refuse what is still missing."""
    if policy["type"] == ScheduleType.DAILY.value:
        policy.pop("periodicallyEvery", None)
        policy.setdefault("dailyType", DailyType.EVERYDAY.value)
        policy.setdefault("dailyTime", "15:00:00")
    else:
        policy.pop("dailyType", None)
        policy.pop("dailyTime", None)
        if "periodicallyEvery" not in policy:
            raise InvalidRequest("'periodicallyEvery' is required for a Periodically schedule.")
    if policy["backupWindowEnabled"] and "backupWindowSettings" not in policy:
        raise InvalidRequest("'backupWindowSettings' is required when 'backupWindowEnabled' is true.")
    return policy


def next_run(policy: dict[str, Any] | None, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first scheduled start strictly after `after`, in UTC, with the policy's times of day read
    in the server's time zone `tz`; None without a schedule. One implementation for the API and the
    scheduler: `engine.schedule` (DST and backup window included)."""
    if not policy:
        return None
    return schedule.next_run(SchedulePolicy.from_v3(policy), after, tz)
