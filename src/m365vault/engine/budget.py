"""A server-wide bound on item content held in memory: downloaded, not yet stored.

Every busy lane (`threads` x `item_concurrency`, 256 by default) holds the start of its item while
the repository has it whole (up to its `small_item_limit`, 1 MiB; the rest of a bigger item goes
through the repository's few bounded stream windows). Without a bound, peak memory follows how
many workers are busy, not configuration (docs/engine.md "Memory").

An item reserves its expected hold before its download starts and waits, holding nothing (no
bytes, no connection), until the budget has room; waiting lanes are served in arrival order. Once
started an item never waits on the budget: its charge only grows (to what it really holds) and is
all returned when the repository has taken the item. So waits never deadlock, and an item
bigger than the whole budget starts when the budget is empty and then holds it alone.

A source that reads the content of several items at once, before their saves (an archive
mailbox's page of exports), takes one uncapped hold for all of it before the read (`read_ahead`);
its items then take none of their own (`ItemChange.read_ahead`): waiting for one while the page's
hold is taken could deadlock against the other pages holding the budget.
"""

from __future__ import annotations

import asyncio
from collections import deque

DEFAULT_BUDGET = 16 * 1024 * 1024
HELD_WHOLE = 1024 * 1024  # what the repository holds of one item at most (its default small_item_limit)
UNKNOWN_SIZE = 128 * 1024  # reserved for an item of unknown size (mail MIME: Graph gives no size)


class ContentBudget:
    def __init__(self, capacity: int = DEFAULT_BUDGET) -> None:
        if capacity < 1:
            raise ValueError("the content budget needs at least one byte")
        self.capacity = capacity
        self.used = 0
        self.peak = 0  # the most ever charged at once (tests and diagnostics)
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def hold(self, size: int | None) -> ItemHold:
        """A hold for one item; `size` is its content size when the source knows it."""
        expected = UNKNOWN_SIZE if size is None else size
        return ItemHold(self, max(1, min(expected, HELD_WHOLE)), HELD_WHOLE)

    def read_ahead(self, size: int) -> ItemHold:
        """A hold for content read ahead for several items at once: `size` is what the read
        holds at most, not capped (it is all in memory together until the last item is saved);
        `keep` lowers it to what stays once the read's own buffers are gone."""
        return ItemHold(self, max(1, size), None)

    def covered(self) -> ItemHold:
        """The hold of an item whose content a `read_ahead` hold already counts: it charges
        nothing and never waits."""
        return ItemHold(self, 0, 0)

    async def _reserve(self, amount: int) -> None:
        if not self._waiters and self._fits(amount):
            self._charge(amount)
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (amount, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(amount)  # granted in the same step it was cancelled
            else:
                if entry in self._waiters:  # `_wake` may have dropped it already
                    self._waiters.remove(entry)
                self._wake()  # the next one may fit now that this one no longer queues ahead
            raise

    def _fits(self, amount: int) -> bool:
        return self.used == 0 or self.used + amount <= self.capacity

    def _charge(self, amount: int) -> None:
        self.used += amount
        self.peak = max(self.peak, self.used)

    def _give_back(self, amount: int) -> None:
        self.used -= amount
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            amount, waiter = self._waiters[0]
            if waiter.cancelled():  # its task has not run yet: grant it nothing
                self._waiters.popleft()
                continue
            if not self._fits(amount):
                return
            self._waiters.popleft()
            self._charge(amount)
            waiter.set_result(None)


class ItemHold:
    """One item's share of the budget: reserved before the download, grown as its bytes arrive
    (never waiting) up to `limit` (None: all of them), returned whole at the end. Use as an async
    context manager."""

    def __init__(self, budget: ContentBudget, reserve: int, limit: int | None) -> None:
        self._budget = budget
        self._reserve = reserve
        self._limit = limit
        self._held = 0
        self._seen = 0

    async def __aenter__(self) -> ItemHold:
        if self._reserve:  # an empty reservation must not queue behind waiters
            await self._budget._reserve(self._reserve)
        self._held = self._reserve
        return self

    def keep(self, count: int) -> None:
        """Give back what the hold has beyond `count` bytes (a read's transient buffers are gone)."""
        if count < self._held:
            excess, self._held = self._held - count, count
            self._budget._give_back(excess)

    async def __aexit__(self, *exc: object) -> None:
        held, self._held = self._held, 0
        self._budget._give_back(held)

    def received(self, count: int) -> None:
        """Count bytes that arrived; the hold grows to what is kept of them in memory."""
        self._seen += count
        wanted = self._seen if self._limit is None else min(self._seen, self._limit)
        if wanted > self._held:
            self._budget._charge(wanted - self._held)
            self._held = wanted
