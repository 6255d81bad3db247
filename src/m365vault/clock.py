"""The one place that reads the wall clock.

Everything that needs "now" takes a `Clock` (a zero-argument callable returning an aware UTC
datetime), so tests can drive retention, schedules and token expiry with `FakeClock`. ruff's
banned-api rule stops direct `datetime.now()` / `time.time()` calls elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock: an aware datetime in UTC."""
    return datetime.now(UTC)


class FakeClock:
    """A clock for tests: frozen until advanced, or advancing by `step` on every read."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(0)) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._step = step

    def __call__(self) -> datetime:
        now = self._now
        self._now = now + self._step
        return now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when
