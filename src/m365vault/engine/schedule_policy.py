"""The job schedule policy (`schedulePolicy` of the v3 API, reference §4.1) as a typed value.

`SchedulePolicy.from_v3` takes a dict whose keys are already the v3 lowerCamelCase names and whose
values are already of the right JSON type (the API layer does the lenient decoding of string
booleans and odd key casing); enum names are matched case-insensitively because that is free.
Every problem is reported at once in one `SchedulePolicyError`, so a client can fix its request in
one round. `to_v3` produces the exact output shape: PascalCase enums, `"HH:mm:ss"` times, no nulls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import Any, TypeVar

from m365vault.case_insensitive import CaseInsensitiveEnum

WINDOW_HOURS = 7 * 24
MAX_RETRY_NUMBER = 777  # the range the Veeam consoles offer for "retry failed objects"
MAX_RETRY_WAIT_MINUTES = 999
DEFAULT_DAILY_TIME = time(15, 0)  # the documented PowerShell default (New-VBOJobSchedulePolicy)


class ScheduleType(CaseInsensitiveEnum):
    DAILY = "Daily"
    PERIODICALLY = "Periodically"


class DailyType(CaseInsensitiveEnum):
    EVERYDAY = "Everyday"
    WORKDAYS = "Workdays"
    WEEKENDS = "Weekends"
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"

    def weekdays(self) -> frozenset[int]:
        """The days this choice runs on, as Python weekdays (Monday = 0 ... Sunday = 6)."""
        return _DAILY_WEEKDAYS[self]


_DAILY_WEEKDAYS: dict[DailyType, frozenset[int]] = {
    DailyType.EVERYDAY: frozenset(range(7)),
    DailyType.WORKDAYS: frozenset(range(5)),
    DailyType.WEEKENDS: frozenset({5, 6}),
    **{day: frozenset({index}) for index, day in enumerate(list(DailyType)[3:])},
}


class PeriodicallyEvery(CaseInsensitiveEnum):
    MINUTES5 = "Minutes5"
    MINUTES10 = "Minutes10"
    MINUTES15 = "Minutes15"
    MINUTES30 = "Minutes30"
    HOURS1 = "Hours1"
    HOURS2 = "Hours2"
    HOURS4 = "Hours4"
    HOURS8 = "Hours8"

    @property
    def minutes(self) -> int:
        """The period in minutes; every value divides a day (1440 minutes) evenly."""
        count = int(self.value.removeprefix("Minutes").removeprefix("Hours"))
        return count if self.value.startswith("Minutes") else count * 60


class SchedulePolicyError(ValueError):
    """A schedule policy that cannot be accepted; `problems` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid schedulePolicy: " + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class BackupWindow:
    """The permitted hours of a week in local time.

    `hours[day * 24 + hour]` is True when that hour is permitted, with day 0 = Sunday. The whole
    grid is shifted later by `minute_offset` minutes: cell (day, hour) covers local
    [day hour:offset, day hour+1:offset).
    """

    hours: tuple[bool, ...] = (True,) * WINDOW_HOURS
    minute_offset: int = 0

    def __post_init__(self) -> None:
        problems = _window_problems(self.hours, self.minute_offset, "backupWindowSettings")
        if problems:
            raise SchedulePolicyError(problems)

    @classmethod
    def always(cls) -> BackupWindow:
        return cls()

    @classmethod
    def from_ranges(
        cls, permitted: Mapping[int, Sequence[range]] | None = None, minute_offset: int = 0
    ) -> BackupWindow:
        """Build a window from {day (0 = Sunday): [range of hours, ...]}; everything else denied."""
        cells = [False] * WINDOW_HOURS
        for day, ranges in (permitted or {}).items():
            for hours in ranges:
                for hour in hours:
                    cells[day * 24 + hour] = True
        return cls(tuple(cells), minute_offset)

    def permits(self, sunday_based_day: int, hour: int) -> bool:
        return self.hours[sunday_based_day * 24 + hour]

    @property
    def is_always_open(self) -> bool:
        return all(self.hours)

    @property
    def is_never_open(self) -> bool:
        return not any(self.hours)

    def to_v3(self) -> dict[str, Any]:
        return {"backupWindow": list(self.hours), "minuteOffset": self.minute_offset}


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """When a job runs by itself, when it must stop, and how failed objects are retried."""

    type: ScheduleType = ScheduleType.DAILY
    daily_type: DailyType | None = DailyType.EVERYDAY
    daily_time: time | None = DEFAULT_DAILY_TIME
    periodically_every: PeriodicallyEvery | None = None
    backup_window_enabled: bool = False
    backup_window: BackupWindow = field(default_factory=BackupWindow)
    retry_enabled: bool = True
    retry_number: int = 3
    retry_wait_interval: int = 10  # minutes

    def __post_init__(self) -> None:
        problems = _policy_problems(self)
        if problems:
            raise SchedulePolicyError(problems)

    @classmethod
    def default(cls) -> SchedulePolicy:
        """The policy a job gets when it is created without one: daily at 15:00, every day."""
        return cls()

    @classmethod
    def from_v3(cls, data: Mapping[str, Any]) -> SchedulePolicy:
        """Build from a normalised v3 `schedulePolicy` dict; unknown keys (v6 extras) are ignored.

        `type` is required. A Daily policy without `dailyType`/`dailyTime` gets Everyday/15:00:00
        (the product defaults); a Periodically policy must name `periodicallyEvery`. Values of the
        inactive type are kept, so switching `type` back later restores them.
        """
        parser = _Parser(data)
        kind = parser.enum("type", ScheduleType, required=True)
        daily_type = parser.enum("dailyType", DailyType)
        daily_time = parser.time_of_day("dailyTime")
        every = parser.enum("periodicallyEvery", PeriodicallyEvery)
        window = parser.window("backupWindowSettings")
        values: dict[str, Any] = {
            "type": kind,
            "daily_type": daily_type,
            "daily_time": daily_time,
            "periodically_every": every,
            "backup_window_enabled": parser.boolean("backupWindowEnabled", False),
            "backup_window": window or BackupWindow(),
            "retry_enabled": parser.boolean("retryEnabled", True),
            "retry_number": parser.integer("retryNumber", 3),
            "retry_wait_interval": parser.integer("retryWaitInterval", 10),
        }
        if kind is ScheduleType.DAILY:
            values["daily_type"] = daily_type or DailyType.EVERYDAY
            values["daily_time"] = daily_time or DEFAULT_DAILY_TIME
        elif kind is ScheduleType.PERIODICALLY and every is None and "periodicallyEvery" not in parser.bad:
            parser.problems.append(
                "periodicallyEvery is required when type is Periodically "
                f"(one of {', '.join(PeriodicallyEvery)})"
            )
        problems = parser.problems + [
            problem
            for problem in _retry_problems(values["retry_number"], values["retry_wait_interval"])
            if problem.split(" ", 1)[0] not in parser.bad
        ]
        if problems:
            raise SchedulePolicyError(problems)
        return cls(**values)

    def to_v3(self) -> dict[str, Any]:
        """The exact v3 output shape, nulls left out."""
        out: dict[str, Any] = {"type": self.type.value}
        if self.daily_type is not None:
            out["dailyType"] = self.daily_type.value
        if self.daily_time is not None:
            out["dailyTime"] = self.daily_time.strftime("%H:%M:%S")
        if self.periodically_every is not None:
            out["periodicallyEvery"] = self.periodically_every.value
        out["backupWindowEnabled"] = self.backup_window_enabled
        out["backupWindowSettings"] = self.backup_window.to_v3()
        out["retryEnabled"] = self.retry_enabled
        out["retryNumber"] = self.retry_number
        out["retryWaitInterval"] = self.retry_wait_interval
        return out

    def with_v3_changes(self, changes: Mapping[str, Any]) -> SchedulePolicy:
        """Apply a partial v3 `schedulePolicy` from a PUT, keeping what it does not mention.

        As the v3 reference demands, `type` must accompany any change of `dailyType`, `dailyTime`
        or `periodicallyEvery`. `backupWindowSettings` may itself be partial.
        """
        lowered = {key.lower() for key in changes}
        touched = sorted(
            name for name in ("dailyType", "dailyTime", "periodicallyEvery") if name.lower() in lowered
        )
        if touched and "type" not in lowered:
            raise SchedulePolicyError([f"type is required when {', '.join(touched)} change"])
        merged = self.to_v3()
        for key, value in changes.items():
            canonical = _canonical_key(key, _V3_KEYS) or key
            if canonical == "backupWindowSettings" and isinstance(value, Mapping):
                nested = {_canonical_key(name, _WINDOW_KEYS) or name: item for name, item in value.items()}
                merged[canonical] = {**merged[canonical], **nested}
            else:
                merged[canonical] = value
        return SchedulePolicy.from_v3(merged)


# ---------------------------------------------------------------- validation and parsing


def _window_problems(hours: Sequence[Any], minute_offset: Any, where: str) -> list[str]:
    problems = []
    if len(hours) != WINDOW_HOURS:
        problems.append(
            f"{where}.backupWindow must hold {WINDOW_HOURS} booleans (7 days x 24 hours, "
            f"index = day * 24 + hour, day 0 = Sunday), got {len(hours)}"
        )
    bad = [index for index, value in enumerate(hours) if not isinstance(value, bool)]
    if bad:
        problems.append(f"{where}.backupWindow entries must be true or false; entry {bad[0]} is not")
    if isinstance(minute_offset, bool) or not isinstance(minute_offset, int):
        problems.append(f"{where}.minuteOffset must be an integer number of minutes")
    elif not 0 <= minute_offset <= 59:
        problems.append(f"{where}.minuteOffset must be between 0 and 59, got {minute_offset}")
    return problems


def _policy_problems(policy: SchedulePolicy) -> list[str]:
    problems = []
    if policy.type is ScheduleType.DAILY and (policy.daily_type is None or policy.daily_time is None):
        problems.append("a Daily schedule needs dailyType and dailyTime")
    if policy.type is ScheduleType.PERIODICALLY and policy.periodically_every is None:
        problems.append("a Periodically schedule needs periodicallyEvery")
    return problems + _retry_problems(policy.retry_number, policy.retry_wait_interval)


def _retry_problems(retry_number: Any, retry_wait_interval: Any) -> list[str]:
    problems = []
    for name, value, low, high in (
        ("retryNumber", retry_number, 1, MAX_RETRY_NUMBER),
        ("retryWaitInterval", retry_wait_interval, 1, MAX_RETRY_WAIT_MINUTES),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name} must be an integer")
        elif not low <= value <= high:
            problems.append(f"{name} must be between {low} and {high}, got {value}")
    return problems


_E = TypeVar("_E", bound=StrEnum)
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


_V3_KEYS = (
    "type",
    "dailyType",
    "dailyTime",
    "periodicallyEvery",
    "backupWindowEnabled",
    "backupWindowSettings",
    "retryEnabled",
    "retryNumber",
    "retryWaitInterval",
)


_WINDOW_KEYS = ("backupWindow", "minuteOffset")


def _canonical_key(key: str, known: Sequence[str]) -> str | None:
    for name in known:
        if name.lower() == key.lower():
            return name
    return None


class _Parser:
    """Reads fields of one v3 dict, collecting every problem instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise SchedulePolicyError(["schedulePolicy must be a JSON object"])
        self.data = data
        self.problems: list[str] = []
        self.bad: set[str] = set()

    def _get(self, name: str) -> Any:
        return self.data.get(name)

    def _fail(self, name: str, message: str) -> None:
        self.bad.add(name)
        self.problems.append(message)

    def enum(self, name: str, kind: type[_E], required: bool = False) -> _E | None:
        value = self._get(name)
        if value is None:
            if required:
                self._fail(name, f"{name} is required (one of {', '.join(kind)})")
            return None
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            for member in kind:
                if member.value.lower() == value.strip().lower():
                    return member
        self._fail(name, f"{name} must be one of {', '.join(kind)}, got {value!r}")
        return None

    def time_of_day(self, name: str) -> time | None:
        value = self._get(name)
        if value is None or isinstance(value, time):
            return value
        match = _TIME_OF_DAY.fullmatch(value.strip()) if isinstance(value, str) else None
        if match:
            hour, minute, second = (int(part or 0) for part in match.groups())
            if hour < 24 and minute < 60 and second < 60:
                return time(hour, minute, second)
        self._fail(name, f'{name} must be a time of day "HH:mm:ss" from 00:00:00 to 23:59:59, got {value!r}')
        return None

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self._fail(name, f"{name} must be true or false, got {value!r}")
        return default

    def integer(self, name: str, default: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self._fail(name, f"{name} must be an integer, got {value!r}")
        return default

    def window(self, name: str) -> BackupWindow | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self._fail(name, f"{name} must be an object with backupWindow and minuteOffset")
            return None
        hours = value.get("backupWindow")
        offset = value.get("minuteOffset", 0)
        if hours is None:
            hours = (True,) * WINDOW_HOURS
        if not isinstance(hours, Sequence) or isinstance(hours, str):
            self._fail(name, f"{name}.backupWindow must be an array of {WINDOW_HOURS} booleans")
            return None
        problems = _window_problems(hours, offset, name)
        if problems:
            self.bad.add(name)
            self.problems.extend(problems)
            return None
        return BackupWindow(tuple(hours), offset)
