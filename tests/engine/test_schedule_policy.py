"""SchedulePolicy: v3 input, validation messages and the exact v3 output shape."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from m365vault.engine.schedule import (
    BackupWindow,
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    SchedulePolicyError,
    ScheduleType,
)

REFERENCE_EXAMPLE: dict[str, Any] = {
    "type": "Daily",
    "dailyType": "Wednesday",
    "dailyTime": "08:00:00",
    "backupWindowEnabled": True,
    "backupWindowSettings": {"backupWindow": [True] * 24 + [False] * 144, "minuteOffset": 0},
    "retryEnabled": True,
    "retryNumber": 3,
    "retryWaitInterval": 10,
}


def test_the_reference_example_round_trips_exactly() -> None:
    policy = SchedulePolicy.from_v3(REFERENCE_EXAMPLE)
    assert policy.type is ScheduleType.DAILY
    assert policy.daily_type is DailyType.WEDNESDAY
    assert policy.daily_time == time(8, 0)
    assert policy.backup_window.permits(0, 23) and not policy.backup_window.permits(1, 0)
    assert policy.to_v3() == REFERENCE_EXAMPLE
    assert list(policy.to_v3()) == list(REFERENCE_EXAMPLE)  # same key order as the reference


def test_periodic_output_leaves_out_unset_daily_fields() -> None:
    policy = SchedulePolicy.from_v3({"type": "Periodically", "periodicallyEvery": "Hours4"})
    out = policy.to_v3()
    assert out["type"] == "Periodically"
    assert out["periodicallyEvery"] == "Hours4"
    assert "dailyType" not in out and "dailyTime" not in out
    assert None not in out.values()
    assert out["backupWindowSettings"] == {"backupWindow": [True] * 168, "minuteOffset": 0}


def test_defaults_are_the_product_defaults() -> None:
    policy = SchedulePolicy.from_v3({"type": "Daily"})
    assert policy == SchedulePolicy.default()
    assert policy.to_v3() == {
        "type": "Daily",
        "dailyType": "Everyday",
        "dailyTime": "15:00:00",
        "backupWindowEnabled": False,
        "backupWindowSettings": {"backupWindow": [True] * 168, "minuteOffset": 0},
        "retryEnabled": True,
        "retryNumber": 3,
        "retryWaitInterval": 10,
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [("daily", ScheduleType.DAILY), ("PERIODICALLY", ScheduleType.PERIODICALLY)],
)
def test_enum_names_are_matched_case_insensitively(given: str, expected: ScheduleType) -> None:
    data = {"type": given, "periodicallyEvery": "minutes15", "dailyType": "workdays"}
    policy = SchedulePolicy.from_v3(data)
    assert policy.type is expected
    assert policy.periodically_every is PeriodicallyEvery.MINUTES15
    assert policy.to_v3()["periodicallyEvery"] == "Minutes15"  # PascalCase out
    assert policy.to_v3()["dailyType"] == "Workdays"


def test_values_of_the_inactive_type_are_kept() -> None:
    data = {
        "type": "Periodically",
        "periodicallyEvery": "Minutes5",
        "dailyType": "Friday",
        "dailyTime": "22:15:00",
    }
    out = SchedulePolicy.from_v3(data).to_v3()
    assert (out["dailyType"], out["dailyTime"], out["periodicallyEvery"]) == (
        "Friday",
        "22:15:00",
        "Minutes5",
    )


def test_unknown_v6_keys_are_ignored() -> None:
    data = {"type": "Daily", "scheduleEnabled": True, "periodicallyOffsetMinutes": 5}
    assert SchedulePolicy.from_v3(data) == SchedulePolicy.default()


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("08:00:00", time(8)), ("8:05", time(8, 5)), ("23:59:59", time(23, 59, 59)), ("00:00:00", time(0))],
)
def test_daily_time_forms(value: str, parsed: time) -> None:
    assert SchedulePolicy.from_v3({"type": "Daily", "dailyTime": value}).daily_time == parsed


def test_every_periodically_every_has_a_period_dividing_the_day() -> None:
    minutes = {every: every.minutes for every in PeriodicallyEvery}
    assert minutes == {
        PeriodicallyEvery.MINUTES5: 5,
        PeriodicallyEvery.MINUTES10: 10,
        PeriodicallyEvery.MINUTES15: 15,
        PeriodicallyEvery.MINUTES30: 30,
        PeriodicallyEvery.HOURS1: 60,
        PeriodicallyEvery.HOURS2: 120,
        PeriodicallyEvery.HOURS4: 240,
        PeriodicallyEvery.HOURS8: 480,
    }
    assert all(1440 % value == 0 for value in minutes.values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "type is required (one of Daily, Periodically)"),
        ({"type": "Weekly"}, "type must be one of Daily, Periodically, got 'Weekly'"),
        ({"type": "Periodically"}, "periodicallyEvery is required when type is Periodically"),
        (
            {"type": "Periodically", "periodicallyEvery": "Minutes7"},
            "periodicallyEvery must be one of Minutes5",
        ),
        ({"type": "Daily", "dailyType": "Someday"}, "dailyType must be one of Everyday, Workdays"),
        ({"type": "Daily", "dailyTime": "24:00:00"}, 'dailyTime must be a time of day "HH:mm:ss"'),
        ({"type": "Daily", "dailyTime": "8 o'clock"}, "dailyTime must be a time of day"),
        ({"type": "Daily", "dailyTime": "10:60:00"}, "dailyTime must be a time of day"),
        ({"type": "Daily", "dailyTime": 800}, "dailyTime must be a time of day"),
        ({"type": "Daily", "retryNumber": 0}, "retryNumber must be between 1 and 777, got 0"),
        ({"type": "Daily", "retryNumber": "3"}, "retryNumber must be an integer, got '3'"),
        (
            {"type": "Daily", "retryWaitInterval": 1000},
            "retryWaitInterval must be between 1 and 999, got 1000",
        ),
        ({"type": "Daily", "retryEnabled": "yes"}, "retryEnabled must be true or false, got 'yes'"),
        ({"type": "Daily", "backupWindowEnabled": 1}, "backupWindowEnabled must be true or false"),
        (
            {"type": "Daily", "backupWindowSettings": {"backupWindow": [True] * 24}},
            "backupWindowSettings.backupWindow must hold 168 booleans (7 days x 24 hours, "
            "index = day * 24 + hour, day 0 = Sunday), got 24",
        ),
        (
            {"type": "Daily", "backupWindowSettings": {"backupWindow": [True] * 167 + ["true"]}},
            "backupWindowSettings.backupWindow entries must be true or false; entry 167 is not",
        ),
        (
            {"type": "Daily", "backupWindowSettings": {"minuteOffset": 60}},
            "backupWindowSettings.minuteOffset must be between 0 and 59, got 60",
        ),
        ({"type": "Daily", "backupWindowSettings": [True] * 168}, "backupWindowSettings must be an object"),
        (
            {"type": "Daily", "backupWindowSettings": {"backupWindow": "all"}},
            "must be an array of 168 booleans",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SchedulePolicyError) as caught:
        SchedulePolicy.from_v3(data)
    assert message in str(caught.value)
    assert str(caught.value).startswith("invalid schedulePolicy: ")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SchedulePolicyError) as caught:
        SchedulePolicy.from_v3(
            {"type": "Daily", "dailyTime": "25:00", "retryNumber": -1, "retryWaitInterval": 0}
        )
    assert len(caught.value.problems) == 3


def test_a_non_object_is_refused() -> None:
    with pytest.raises(SchedulePolicyError, match="must be a JSON object"):
        SchedulePolicy.from_v3(["Daily"])  # type: ignore[arg-type]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SchedulePolicyError, match="needs periodicallyEvery"):
        SchedulePolicy(type=ScheduleType.PERIODICALLY)
    with pytest.raises(SchedulePolicyError, match="168 booleans"):
        BackupWindow((True,) * 10)
    with pytest.raises(SchedulePolicyError, match="retryNumber must be between"):
        SchedulePolicy(retry_number=778)


def test_partial_update_keeps_what_it_does_not_mention() -> None:
    policy = SchedulePolicy.from_v3(REFERENCE_EXAMPLE)
    changed = policy.with_v3_changes({"retryNumber": 5, "BackupWindowSettings": {"MinuteOffset": 30}})
    assert changed.retry_number == 5
    assert changed.backup_window.minute_offset == 30
    assert changed.backup_window.hours == policy.backup_window.hours
    assert changed.daily_type is DailyType.WEDNESDAY


def test_partial_update_switches_type_and_keeps_the_other_fields() -> None:
    policy = SchedulePolicy.from_v3(REFERENCE_EXAMPLE)
    periodic = policy.with_v3_changes({"Type": "Periodically", "PeriodicallyEvery": "Hours2"})
    assert periodic.type is ScheduleType.PERIODICALLY
    assert periodic.periodically_every is PeriodicallyEvery.HOURS2
    back = periodic.with_v3_changes({"type": "Daily"})
    assert (back.daily_type, back.daily_time) == (DailyType.WEDNESDAY, time(8))


@pytest.mark.parametrize("field", ["dailyType", "dailyTime", "periodicallyEvery"])
def test_partial_update_of_timing_needs_type(field: str) -> None:
    policy = SchedulePolicy.default()
    value = {"dailyType": "Monday", "dailyTime": "01:00:00", "periodicallyEvery": "Hours1"}[field]
    with pytest.raises(SchedulePolicyError, match=f"type is required when {field} change"):
        policy.with_v3_changes({field: value})


def test_partial_update_with_bad_values_fails_and_changes_nothing() -> None:
    policy = SchedulePolicy.default()
    with pytest.raises(SchedulePolicyError, match="retryWaitInterval"):
        policy.with_v3_changes({"retryWaitInterval": 0})
    assert policy == SchedulePolicy.default()


def test_window_from_ranges_uses_sunday_as_day_zero() -> None:
    window = BackupWindow.from_ranges({0: [range(22, 24)], 1: [range(0, 6)]}, minute_offset=15)
    assert window.to_v3()["backupWindow"][22] is True  # Sunday 22:00
    assert window.to_v3()["backupWindow"][24 + 5] is True  # Monday 05:00
    assert window.to_v3()["backupWindow"][24 + 6] is False
    assert sum(window.hours) == 8
    assert window.to_v3()["minuteOffset"] == 15
