"""Virtual time for asyncio code that takes an injected clock and sleep.

`VirtualTime.sleep` parks the caller until the test moves time forward with `advance`, which wakes
sleepers in deadline order, setting the clock to each deadline first, so code under test observes
exactly the instants it asked for and nothing waits in real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

from m365vault.clock import FakeClock


class VirtualTime:
    def __init__(self, start: datetime) -> None:
        self.clock = FakeClock(start.astimezone(UTC))
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self.clock()

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self.clock() + timedelta(seconds=max(seconds, 0.0))
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def settle(self) -> None:
        """Let every runnable task run until all of them wait again."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, delta: timedelta) -> None:
        """Move time forward by `delta`, waking each sleeper at its own deadline."""
        target = self.clock() + delta
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():  # cancelled by its owner
                continue
            self.clock.set(max(deadline, self.clock()))
            future.set_result(None)
            await self.settle()
        self.clock.set(target)
        await self.settle()

    async def advance_to(self, when: datetime) -> None:
        await self.advance(when - self.clock())
