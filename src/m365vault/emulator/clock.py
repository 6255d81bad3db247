"""The emulator's own clock (it may not use m365vault.clock: it stands in for Microsoft)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch; injectable so tests can move the emulator's time."""


def system_clock() -> float:
    return time.time()


def iso(ts: float) -> str:
    """Graph's timestamp form: UTC with a Z suffix and no fractional digits."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
