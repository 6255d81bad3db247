"""Time as the connector sees it: a monotonic clock and a sleep, injectable for tests.

Token expiry, Retry-After pauses, back-off and token buckets all measure durations, so a monotonic
clock is the right one (wall-clock jumps must not expire tokens or unblock a throttled mailbox).
Tests pass a fake whose `sleep` advances `monotonic` instantly, so a 10 s Retry-After costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Timer(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
