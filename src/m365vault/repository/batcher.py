"""Run many small calls in a thread pool with one thread hop per batch instead of one per call.

A hop costs the event loop tens of microseconds (a future, a queue put, a self-pipe wake-up, the
GIL handed back and forth), as much as hashing and compressing a mail-sized blob. Calls made in the
same event-loop turn (the concurrent saves of a backup) form one batch; it is cut into parts,
balanced by size, so every core gets work. A part is never tiny: the callers of a finished part come
back together as the next batch, so parts split ever finer would end as one hop per call again.
An optional `finish` runs on the event loop thread over each part's results as it comes back, so
bookkeeping that must happen on the loop is one pass per part, not one coroutine step per call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")
T = TypeVar("T")

# A part is worth its own hop with this many calls or this much weight (bytes, for blobs).
MIN_PART_CALLS = 4
MIN_PART_WEIGHT = 256 * 1024


class Batcher(Generic[A, R]):
    """`await run(arg)` returns `work(arg)`, computed in `pool` together with the other calls of
    the same event-loop turn. `weight(arg)` (bytes, say) balances the parts. With `finish`, the
    caller gets `finish(arg, work(arg))` instead, computed on the event loop thread as the part is
    delivered (never for a caller already cancelled); an exception it raises goes to that caller."""

    def __init__(
        self,
        pool: Executor,
        parts: int,
        work: Callable[[A], R],
        weight: Callable[[A], int],
        finish: Callable[[A, R], R] | None = None,
    ) -> None:
        self._pool = pool
        self._parts = max(1, parts)
        self._work = work
        self._weight = weight
        self._finish = finish
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
        for part in split_parts(batch, self._parts, lambda item: self._weight(item[0])):
            try:
                done = loop.run_in_executor(self._pool, self._run_part, [arg for arg, _ in part])
            except RuntimeError as err:  # the pool is shut down: fail the callers, never strand them
                done = loop.create_future()
                done.set_exception(err)
            done.add_done_callback(functools.partial(_deliver, part=part, finish=self._finish))

    def _run_part(self, args: list[A]) -> list[R | BaseException]:
        results: list[R | BaseException] = []
        for arg in args:
            try:
                results.append(self._work(arg))
            except Exception as err:  # this call's failure is its caller's alone
                results.append(err)
        return results


def _deliver(
    done: asyncio.Future[list[R | BaseException]],
    part: list[tuple[A, asyncio.Future[R]]],
    finish: Callable[[A, R], R] | None,
) -> None:
    if done.cancelled() or done.exception() is not None:
        err = asyncio.CancelledError() if done.cancelled() else done.exception()
        results: list[R | BaseException] = [err or RuntimeError("batch failed")] * len(part)
    else:
        results = done.result()
    for (arg, future), result in zip(part, results, strict=True):
        if future.done():  # its caller was cancelled
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
            continue
        if finish is not None:
            try:
                result = finish(arg, result)
            except Exception as err:  # this call's failure is its caller's alone
                future.set_exception(err)
                continue
        future.set_result(result)


def split_parts(batch: list[T], parts: int, weight: Callable[[T], int]) -> list[list[T]]:
    """Consecutive runs of about equal weight, at most `parts` of them, each worth a hop."""
    total = sum(weight(item) for item in batch)
    parts = min(parts, max(len(batch) // MIN_PART_CALLS, total // MIN_PART_WEIGHT))
    if parts <= 1:
        return [batch]
    share = total / parts
    out: list[list[T]] = [[] for _ in range(parts)]
    before = 0
    for item in batch:
        w = weight(item)
        out[min(parts - 1, int((before + w / 2) // share))].append(item)  # by the item's middle
        before += w
    return [part for part in out if part]
