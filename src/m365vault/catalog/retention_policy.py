"""A repository's retention policy as v3's BackupRepositories fields describe it: how long (period),
what is kept (ItemLevel or SnapshotBased) and when the pass runs (daily or monthly schedule).

Times of day are wall-clock times in the server's time zone; `engine.schedule.next_retention_pass`
turns them into instants.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from m365vault.catalog.errors import InvalidPolicy


class RetentionType(enum.StrEnum):
    ITEM_LEVEL = "ItemLevel"
    SNAPSHOT_BASED = "SnapshotBased"


class RetentionPeriodType(enum.StrEnum):
    DAILY = "Daily"
    MONTHLY = "Monthly"
    YEARLY = "Yearly"


class RetentionFrequencyType(enum.StrEnum):
    DAILY = "Daily"
    MONTHLY = "Monthly"


YEARLY_PERIODS: dict[str, int | None] = {
    "Year1": 1,
    "Years2": 2,
    "Years3": 3,
    "Years5": 5,
    "Years7": 7,
    "Years10": 10,
    "Years25": 25,
    "Keep": None,  # keep forever: the pass removes nothing
}

DAILY_TYPES: dict[str, frozenset[int]] = {  # weekday numbers, Monday = 0
    "Everyday": frozenset(range(7)),
    "Workdays": frozenset(range(5)),
    "Weekends": frozenset({5, 6}),
    **{name: frozenset({i}) for i, name in enumerate(calendar.day_name)},
}

DAY_NUMBERS = ("First", "Second", "Third", "Fourth", "Last")
WEEKDAYS = tuple(calendar.day_name)  # Monday ... Sunday


def _lookup(mapping: Mapping[str, Any], name: str) -> Any:
    """Case-insensitive field lookup (v3 input names are matched case-insensitively)."""
    lowered = name.lower()
    for key, value in mapping.items():
        if key.lower() == lowered:
            return value
    return None


def _enum_value(value: Any, allowed: tuple[str, ...], field_name: str) -> str:
    for candidate in allowed:
        if isinstance(value, str) and value.lower() == candidate.lower():
            return candidate
    raise InvalidPolicy(f"{field_name} must be one of {', '.join(allowed)}, not {value!r}")


def _positive_int(value: Any, field_name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidPolicy(f"{field_name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise InvalidPolicy(f"{field_name} must be at least 1")
    return number


def _time_of_day(value: Any, field_name: str) -> time:
    if value is None:
        return time(0, 0)
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise InvalidPolicy(f"{field_name} must be HH:mm:ss, not {value!r}") from None


def subtract_months(when: datetime, months: int) -> datetime:
    """`when` moved back by calendar months; the day is clamped (31 March - 1 month = 28/29 Feb)."""
    index = when.year * 12 + (when.month - 1) - months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    retention_type: RetentionType = RetentionType.SNAPSHOT_BASED
    period_type: RetentionPeriodType = RetentionPeriodType.YEARLY
    daily_period: int | None = None  # days, with period_type Daily
    monthly_period: int | None = None  # months, with period_type Monthly
    yearly_period: str | None = "Years3"  # a YEARLY_PERIODS key, with period_type Yearly
    frequency_type: RetentionFrequencyType = RetentionFrequencyType.DAILY
    daily_time: time = time(0, 0)
    daily_type: str = "Everyday"
    monthly_time: time = time(0, 0)
    monthly_daynumber: str = "First"
    monthly_dayofweek: str = "Saturday"

    def __post_init__(self) -> None:
        if self.period_type is RetentionPeriodType.DAILY and not (
            self.daily_period and self.daily_period > 0
        ):
            raise InvalidPolicy("dailyRetentionPeriod must be a positive number of days")
        if self.period_type is RetentionPeriodType.MONTHLY and not (
            self.monthly_period and self.monthly_period > 0
        ):
            raise InvalidPolicy("monthlyRetentionPeriod must be a positive number of months")
        if self.period_type is RetentionPeriodType.YEARLY and self.yearly_period not in YEARLY_PERIODS:
            raise InvalidPolicy(f"yearlyRetentionPeriod must be one of {', '.join(YEARLY_PERIODS)}")
        if self.daily_type not in DAILY_TYPES:
            raise InvalidPolicy(f"dailyType must be one of {', '.join(DAILY_TYPES)}")
        if self.monthly_daynumber not in DAY_NUMBERS:
            raise InvalidPolicy(f"monthlyDaynumber must be one of {', '.join(DAY_NUMBERS)}")
        if self.monthly_dayofweek not in WEEKDAYS:
            raise InvalidPolicy(f"monthlyDayofweek must be one of {', '.join(WEEKDAYS)}")

    @classmethod
    def from_v3(cls, fields: Mapping[str, Any]) -> RetentionPolicy:
        """Build from a v3 BackupRepository body (names case-insensitive, numbers maybe strings)."""
        rtype = _enum_value(
            _lookup(fields, "retentionType") or "SnapshotBased",
            ("ItemLevel", "SnapshotBased"),
            "retentionType",
        )
        ptype = RetentionPeriodType(
            _enum_value(
                _lookup(fields, "retentionPeriodType") or "Yearly",
                ("Daily", "Monthly", "Yearly"),
                "retentionPeriodType",
            )
        )
        ftype = _enum_value(
            _lookup(fields, "retentionFrequencyType") or "Daily",
            ("Daily", "Monthly"),
            "retentionFrequencyType",
        )
        daily = monthly = None
        yearly: str | None = None
        if ptype is RetentionPeriodType.DAILY:
            daily = _positive_int(_lookup(fields, "dailyRetentionPeriod"), "dailyRetentionPeriod")
        elif ptype is RetentionPeriodType.MONTHLY:
            monthly = _positive_int(_lookup(fields, "monthlyRetentionPeriod"), "monthlyRetentionPeriod")
        else:
            yearly = _enum_value(
                _lookup(fields, "yearlyRetentionPeriod"), tuple(YEARLY_PERIODS), "yearlyRetentionPeriod"
            )
        return cls(
            retention_type=RetentionType(rtype),
            period_type=ptype,
            daily_period=daily,
            monthly_period=monthly,
            yearly_period=yearly,
            frequency_type=RetentionFrequencyType(ftype),
            daily_time=_time_of_day(_lookup(fields, "dailyTime"), "dailyTime"),
            daily_type=_enum_value(
                _lookup(fields, "dailyType") or "Everyday", tuple(DAILY_TYPES), "dailyType"
            ),
            monthly_time=_time_of_day(_lookup(fields, "monthlyTime"), "monthlyTime"),
            monthly_daynumber=_enum_value(
                _lookup(fields, "monthlyDaynumber") or "First", DAY_NUMBERS, "monthlyDaynumber"
            ),
            monthly_dayofweek=_enum_value(
                _lookup(fields, "monthlyDayofweek") or "Saturday", WEEKDAYS, "monthlyDayofweek"
            ),
        )

    @property
    def keeps_forever(self) -> bool:
        return (
            self.period_type is RetentionPeriodType.YEARLY
            and YEARLY_PERIODS[self.yearly_period or ""] is None
        )

    def cutoff(self, now: datetime) -> datetime | None:
        """The oldest time still inside the period at `now`; None when everything is kept."""
        if self.period_type is RetentionPeriodType.DAILY:
            return now - timedelta(days=self.daily_period or 0)
        if self.period_type is RetentionPeriodType.MONTHLY:
            return subtract_months(now, self.monthly_period or 0)
        years = YEARLY_PERIODS[self.yearly_period or ""]
        return None if years is None else subtract_months(now, 12 * years)
