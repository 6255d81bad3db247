"""Run many small calls in a thread pool with one thread hop per batch instead of one per call.

A hop costs the event loop tens of microseconds (a future, a queue put, a self-pipe wake-up, the
GIL handed back and forth), as much as hashing and compressing a mail-sized blob. Calls made in the
same event-loop turn (the concurrent saves of a backup) form one batch; it is cut into parts,
balanced by size, so every core gets work. A part is never tiny: the callers of a finished part come
back together as the next batch, so parts split ever finer would end as one hop per call again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")

# A part is worth its own hop with this many calls or this much weight (bytes, for blobs).
MIN_PART_CALLS = 4
MIN_PART_WEIGHT = 256 * 1024


class Batcher(Generic[A, R]):
    """`await run(arg)` returns `work(arg)`, computed in `pool` together with the other calls of
    the same event-loop turn. `weight(arg)` (bytes, say) balances the parts."""

    def __init__(
        self, pool: Executor, parts: int, work: Callable[[A], R], weight: Callable[[A], int]
    ) -> None:
        self._pool = pool
        self._parts = max(1, parts)
        self._work = work
        self._weight = weight
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []

    async def run(self, arg: A) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._dispatch)  # after the other callers ready in this turn
        self._waiting.append((arg, future))
        return await future

    def _dispatch(self) -> None:
        batch, self._waiting = self._waiting, []
        loop = asyncio.get_running_loop()
        for part in _split(batch, self._parts, self._weight):
            futures = [f for _, f in part]
            try:
                done = loop.run_in_executor(self._pool, self._run_part, [arg for arg, _ in part])
            except RuntimeError as err:  # the pool is shut down: fail the callers, never strand them
                done = loop.create_future()
                done.set_exception(err)
            done.add_done_callback(functools.partial(_deliver, futures=futures))

    def _run_part(self, args: list[A]) -> list[R | BaseException]:
        results: list[R | BaseException] = []
        for arg in args:
            try:
                results.append(self._work(arg))
            except Exception as err:  # this call's failure is its caller's alone
                results.append(err)
        return results


def _deliver(done: asyncio.Future[list[R | BaseException]], futures: list[asyncio.Future[R]]) -> None:
    if done.cancelled() or done.exception() is not None:
        err = asyncio.CancelledError() if done.cancelled() else done.exception()
        results: list[R | BaseException] = [err or RuntimeError("batch failed")] * len(futures)
    else:
        results = done.result()
    for future, result in zip(futures, results, strict=True):
        if future.done():  # its caller was cancelled
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _split(
    batch: list[tuple[A, asyncio.Future[R]]], parts: int, weight: Callable[[A], int]
) -> list[list[tuple[A, asyncio.Future[R]]]]:
    """Consecutive runs of about equal weight, at most `parts` of them, each worth a hop."""
    total = sum(weight(arg) for arg, _ in batch)
    parts = min(parts, max(len(batch) // MIN_PART_CALLS, total // MIN_PART_WEIGHT))
    if parts <= 1:
        return [batch]
    share = total / parts
    out: list[list[tuple[A, asyncio.Future[R]]]] = [[] for _ in range(parts)]
    before = 0
    for item in batch:
        w = weight(item[0])
        out[min(parts - 1, int((before + w / 2) // share))].append(item)  # by the item's middle
        before += w
    return [part for part in out if part]
