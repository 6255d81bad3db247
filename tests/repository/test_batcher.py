"""Batched thread hops: every caller gets its own result or error, all cores get parts."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from m365vault.repository.batcher import MIN_PART_CALLS, Batcher


def counting_parts(batcher: Batcher[int, int]) -> list[int]:
    """Record the size of every part the batcher hands to the pool."""
    parts: list[int] = []
    original = batcher._run_part

    def counting(args: list[int]) -> list[int | BaseException]:
        parts.append(len(args))
        return original(args)

    batcher._run_part = counting  # type: ignore[method-assign]
    return parts


async def test_each_caller_gets_its_own_result_from_few_hops() -> None:
    with ThreadPoolExecutor(2) as pool:
        batcher: Batcher[int, int] = Batcher(pool, 2, lambda n: n * n, lambda n: 1)
        parts = counting_parts(batcher)
        results = await asyncio.gather(*(batcher.run(n) for n in range(40)))
    assert results == [n * n for n in range(40)]
    assert parts == [20, 20]  # one batch, cut in one part per worker


async def test_parts_are_balanced_by_weight() -> None:
    with ThreadPoolExecutor(2) as pool:
        batcher: Batcher[int, int] = Batcher(pool, 2, lambda n: n, lambda n: n)
        parts = counting_parts(batcher)
        await asyncio.gather(*(batcher.run(n) for n in [300_000, 1, 1, 1, 300_000]))
    assert parts == [2, 3]  # 300,001 and 300,002


async def test_small_batches_are_not_cut() -> None:
    with ThreadPoolExecutor(4) as pool:
        batcher: Batcher[int, int] = Batcher(pool, 4, lambda n: n, lambda n: 1)
        parts = counting_parts(batcher)
        await asyncio.gather(*(batcher.run(n) for n in range(MIN_PART_CALLS + 1)))
    assert parts == [MIN_PART_CALLS + 1]


async def test_a_failing_call_fails_only_its_caller() -> None:
    def work(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    with ThreadPoolExecutor(2) as pool:
        batcher = Batcher(pool, 2, work, lambda n: 1)
        results = await asyncio.gather(*(batcher.run(n) for n in range(8)), return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert isinstance(results[3], ValueError)


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    release = threading.Event()

    def work(n: int) -> int:
        release.wait(5)
        return n

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool, 1, work, lambda n: 1)
        tasks = [asyncio.create_task(batcher.run(n)) for n in range(4)]
        await asyncio.sleep(0.05)
        tasks[1].cancel()
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 0 and results[2:] == [2, 3]
    assert isinstance(results[1], asyncio.CancelledError)


async def test_a_shut_down_pool_fails_callers_instead_of_stranding_them() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    batcher: Batcher[int, int] = Batcher(pool, 1, lambda n: n, lambda n: 1)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(batcher.run(1), 5)


async def test_finish_runs_on_the_loop_thread_for_each_waiting_caller() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int, int, int]] = []

    def finish(arg: int, result: int) -> int:
        seen.append((arg, result, threading.get_ident()))
        if arg == 2:
            raise ValueError("two")
        return result + 1

    with ThreadPoolExecutor(2) as pool:
        batcher = Batcher(pool, 2, lambda n: n * 10, lambda n: 1, finish)
        results = await asyncio.gather(*(batcher.run(n) for n in range(6)), return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 2] == [1, 11, 31, 41, 51]
    assert isinstance(results[2], ValueError)
    assert sorted(arg for arg, _, _ in seen) == list(range(6))
    assert {thread for _, _, thread in seen} == {loop_thread}
