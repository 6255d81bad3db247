"""Client-side limits that keep the connector under Microsoft's throttling thresholds (§6).

Traffic is divided into lanes, one per limit scope Microsoft applies:
- one lane per mailbox (Exchange: 4 concurrent requests and 10,000 requests per 10 minutes per app
  and mailbox; we default to 9,600 for headroom, as Corso does);
- one lane per SharePoint tenant (1,200 resource units per minute; a request is charged its RU cost);
- one lane for the directory (users, groups), with a generous token bucket.

Mailbox and SharePoint budgets are stated per period ("N per 10 minutes", "N per minute"), so their
lanes count what was spent in a sliding window of that period and admit a request while the window
has room: a short run (an incremental's few hundred requests) goes at full speed and a long one
settles at the stated rate. A token bucket of rate N/period would hold every run to that rate after
a small burst (SharePoint's old 20 RU/s after 20 RU was most of an incremental's wall time), and a
bucket with a large burst could spend burst + N within one period. Microsoft does not say whether
its windows slide or are fixed; staying under N in every sliding window is under N in every fixed
one too.

A lane has a concurrency cap, a budget (window or bucket), and a pause: when any request in the
lane is told to back off (429 / 503 with Retry-After), the whole lane stops until the pause passes,
because Microsoft counts throttled requests too and retries from other workers prolong the
throttling.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from m365vault.m365.timing import Timer


class ScopeKind(enum.Enum):
    MAILBOX = "mailbox"
    SHAREPOINT = "sharepoint"
    DIRECTORY = "directory"
    UNLIMITED = "unlimited"  # pre-authenticated URLs outside Graph's limits (upload sessions)


@dataclass(frozen=True)
class Scope:
    """Which limit a request counts against. Build with the class methods."""

    kind: ScopeKind
    key: str = ""

    @classmethod
    def mailbox(cls, user_id: str) -> Scope:
        return cls(ScopeKind.MAILBOX, user_id.lower())

    @classmethod
    def sharepoint(cls) -> Scope:
        # One client talks to one tenant, so the tenant is implied.
        return cls(ScopeKind.SHAREPOINT)

    @classmethod
    def directory(cls) -> Scope:
        return cls(ScopeKind.DIRECTORY)

    @classmethod
    def unlimited(cls) -> Scope:
        return cls(ScopeKind.UNLIMITED)


@dataclass(frozen=True)
class LimitPolicy:
    mailbox_concurrency: int = 4
    mailbox_requests_per_10min: float = 9_600
    sharepoint_concurrency: int = 16
    sharepoint_resource_units_per_minute: float = 1_200  # the smallest license tier (§6.3)
    directory_concurrency: int = 8
    directory_requests_per_second: float = 50
    directory_burst: float = 50


class Budget(Protocol):
    """What a lane spends its requests' costs from."""

    async def take(self, cost: float = 1.0) -> None: ...


class TokenBucket:
    """Refills `rate` tokens per second up to `burst`; a request waits until its cost is covered."""

    def __init__(self, rate: float, burst: float, timer: Timer) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("token bucket rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._timer = timer
        self._tokens = burst
        self._stamp = timer.monotonic()

    def _refill(self) -> None:
        now = self._timer.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, cost: float = 1.0) -> None:
        # A cost above the burst may drive the balance negative; later takers then wait it off.
        need = min(cost, self.burst)
        while True:
            self._refill()
            if self._tokens >= need:
                self._tokens -= cost
                return
            await self._timer.sleep((need - self._tokens) / self.rate)


class SlidingWindow:
    """At most `limit` units spent in any `period` seconds; a request waits until its cost fits.

    Spending is kept in slots of period/SLOTS seconds, each leaving the window one period after its
    latest spend, so memory stays bounded at any request rate; a slot can hold a request back a
    little longer than needed but never lets the window exceed the limit.
    """

    SLOTS = 60
    EPSILON = 1e-6  # a sleep to the exact expiry may land a rounding error short of it

    def __init__(self, limit: float, period: float, timer: Timer) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("window limit and period must be positive")
        self.limit = limit
        self.period = period
        self._timer = timer
        self._slot = period / self.SLOTS
        self._spent: collections.deque[list[float]] = collections.deque()  # [opened, expiry, units]
        self._total = 0.0

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][1] <= now + self.EPSILON:
            self._total -= self._spent.popleft()[2]

    @property
    def spent(self) -> float:
        """Units spent in the current window."""
        self._expire(self._timer.monotonic())
        return self._total

    async def take(self, cost: float = 1.0) -> None:
        # A cost above the limit waits for an empty window instead of forever.
        need = min(cost, self.limit)
        while True:
            now = self._timer.monotonic()
            self._expire(now)
            if self._total + need <= self.limit:
                if cost > 0:
                    self._record(now, cost)
                return
            await self._timer.sleep(self._room_at(need) - now)

    def _record(self, now: float, cost: float) -> None:
        last = self._spent[-1] if self._spent else None
        if last is not None and now - last[0] < self._slot:
            last[1] = now + self.period
            last[2] += cost
        else:
            self._spent.append([now, now + self.period, cost])
        self._total += cost

    def _room_at(self, need: float) -> float:
        """When enough spending will have left the window for `need` more units."""
        left = self._total
        for _, expiry, units in self._spent:
            left -= units
            if left + need <= self.limit:
                return expiry
        return self._timer.monotonic()  # unreachable: an empty window has room for `need`


RECOVER_AFTER = 10  # successes per unit of the current cap before one more concurrent request


class Lane:
    """Concurrency cap + token bucket + shared pause for one limit scope.

    The cap adapts: when the service refuses a request for concurrency (ApplicationThrottled),
    the lane runs one request fewer at a time (never below one), and grows back one at a time
    after a run of successes. Other apps' or processes' traffic on the same mailbox shares
    Microsoft's limit of 4, so the effective cap can be lower than ours.
    """

    def __init__(self, name: str, concurrency: int, bucket: Budget, timer: Timer) -> None:
        self.name = name
        self.concurrency = concurrency  # the ceiling
        self.limit = concurrency  # the current cap
        self._gate = asyncio.Condition()
        self._holders = 0
        self._successes = 0
        self._bucket = bucket
        self._timer = timer
        self._paused_until = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """Hold every request of this lane for `seconds` (extends, never shortens, a pause)."""
        until = self._timer.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._timer.monotonic())

    def concurrency_exceeded(self) -> None:
        """The service refused a request for concurrency: run one fewer at a time."""
        self.limit = max(1, self.limit - 1)
        self._successes = 0

    def succeeded(self) -> None:
        """A request went through; after enough in a row, allow one more at a time again."""
        if self.limit >= self.concurrency:
            return
        self._successes += 1
        if self._successes >= RECOVER_AFTER * self.limit:
            self.limit += 1
            self._successes = 0  # waiters see the new cap at the next release

    async def _wait_unpaused(self) -> None:
        while (remaining := self._paused_until - self._timer.monotonic()) > 0:
            await self._timer.sleep(remaining)

    @asynccontextmanager
    async def slot(self, cost: float = 1.0) -> AsyncIterator[None]:
        async with self._gate:
            await self._gate.wait_for(lambda: self._holders < self.limit)
            self._holders += 1
        try:
            await self._wait_unpaused()
            await self._bucket.take(cost)
            await self._wait_unpaused()  # a pause may have started while we waited for tokens
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
        finally:
            # Never suspends: the gate's lock is only ever held between awaits.
            async with self._gate:
                self._holders -= 1
                self._gate.notify_all()


class Throttle:
    """Creates lanes on first use and hands them out by scope."""

    def __init__(self, policy: LimitPolicy, timer: Timer) -> None:
        self.policy = policy
        self._timer = timer
        self._lanes: dict[Scope, Lane] = {}

    def lane(self, scope: Scope) -> Lane:
        lane = self._lanes.get(scope)
        if lane is None:
            lane = self._lanes[scope] = self._new_lane(scope)
        return lane

    def _new_lane(self, scope: Scope) -> Lane:
        p = self.policy
        name = f"{scope.kind.value}:{scope.key}" if scope.key else scope.kind.value
        if scope.kind is ScopeKind.MAILBOX:
            window = SlidingWindow(p.mailbox_requests_per_10min, 600.0, self._timer)
            return Lane(name, p.mailbox_concurrency, window, self._timer)
        if scope.kind is ScopeKind.SHAREPOINT:
            window = SlidingWindow(p.sharepoint_resource_units_per_minute, 60.0, self._timer)
            return Lane(name, p.sharepoint_concurrency, window, self._timer)
        if scope.kind is ScopeKind.DIRECTORY:
            bucket = TokenBucket(p.directory_requests_per_second, p.directory_burst, self._timer)
            return Lane(name, p.directory_concurrency, bucket, self._timer)
        return Lane(name, 64, TokenBucket(1e9, 1e9, self._timer), self._timer)
