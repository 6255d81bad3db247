"""When a repository's retention pass runs: its cleanup schedule read in the server's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from m365vault.catalog import RetentionPolicy
from m365vault.engine.schedule import next_retention_pass

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def monthly(daynumber: str, dayofweek: str, at: str = "22:30:00") -> RetentionPolicy:
    return RetentionPolicy.from_v3(
        {
            "retentionPeriodType": "Monthly",
            "monthlyRetentionPeriod": 3,
            "retentionFrequencyType": "Monthly",
            "monthlyTime": at,
            "monthlyDaynumber": daynumber,
            "monthlyDayofweek": dayofweek,
        }
    )


def daily(daily_type: str, at: str) -> RetentionPolicy:
    return RetentionPolicy.from_v3(
        {"retentionPeriodType": "Daily", "dailyRetentionPeriod": 14, "dailyTime": at, "dailyType": daily_type}
    )


def test_monthly_pass_on_the_chosen_weekday_of_the_month() -> None:
    last_friday = monthly("Last", "Friday")
    # the last Friday of November 2026 is the 27th, of December the 25th
    assert next_retention_pass(last_friday, datetime(2026, 11, 1, tzinfo=UTC), UTC_ZONE) == datetime(
        2026, 11, 27, 22, 30, tzinfo=UTC
    )
    assert next_retention_pass(last_friday, datetime(2026, 11, 27, 22, 30, tzinfo=UTC), UTC_ZONE) == datetime(
        2026, 12, 25, 22, 30, tzinfo=UTC
    )
    # the first Sunday of January 2027 is the 3rd; asked on 31 December, the year turns
    first_sunday = monthly("First", "Sunday", "01:00:00")
    assert next_retention_pass(first_sunday, datetime(2026, 12, 31, tzinfo=UTC), UTC_ZONE) == datetime(
        2027, 1, 3, 1, 0, tzinfo=UTC
    )


def test_monthly_pass_is_local_time_across_daylight_saving_changes() -> None:
    # Berlin jumps 02:00 -> 03:00 on the last Sunday of March 2027 (the 28th): 02:30 runs at 03:00
    # local, which is 01:00 UTC. On the last Sunday of October (the 31st) 02:30 comes twice: the
    # pass runs once, at the first (CEST, 00:30 UTC).
    last_sunday = monthly("Last", "Sunday", "02:30:00")
    assert next_retention_pass(last_sunday, datetime(2027, 3, 1, tzinfo=UTC), BERLIN) == datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
    assert next_retention_pass(last_sunday, datetime(2027, 10, 1, tzinfo=UTC), BERLIN) == datetime(
        2027, 10, 31, 0, 30, tzinfo=UTC
    )


def test_daily_pass_follows_the_daily_job_rules() -> None:
    weekends = daily("Weekends", "08:00:00")
    # Sunday 29 November 2026, 09:00 -> next Saturday 5 December, 08:00
    assert next_retention_pass(weekends, datetime(2026, 11, 29, 9, 0, tzinfo=UTC), UTC_ZONE) == datetime(
        2026, 12, 5, 8, 0, tzinfo=UTC
    )
    assert next_retention_pass(weekends, datetime(2026, 11, 29, 7, 0, tzinfo=UTC), UTC_ZONE) == datetime(
        2026, 11, 29, 8, 0, tzinfo=UTC
    )
    # 08:00 in Berlin in winter is 07:00 UTC
    assert next_retention_pass(weekends, datetime(2026, 11, 29, 6, 0, tzinfo=UTC), BERLIN) == datetime(
        2026, 11, 29, 7, 0, tzinfo=UTC
    )
