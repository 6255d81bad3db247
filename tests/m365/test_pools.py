"""Pools: one budget of requests in flight, spread over small pools that never overflow."""

from __future__ import annotations

import asyncio

import httpx

from m365vault.m365.pools import POOL_SIZE, Pools


async def test_requests_spread_over_pools_that_never_exceed_their_size() -> None:
    in_flight: dict[int, int] = {}
    peaks: dict[int, int] = {}
    total = {"now": 0, "max": 0}

    def make(size: int) -> httpx.AsyncClient:
        n = len(in_flight)
        in_flight[n] = peaks[n] = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            in_flight[n] += 1
            total["now"] += 1
            peaks[n] = max(peaks[n], in_flight[n])
            total["max"] = max(total["max"], total["now"])
            await asyncio.sleep(0.01)
            in_flight[n] -= 1
            total["now"] -= 1
            return httpx.Response(200, text=str(n))

        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return httpx.AsyncClient(transport=httpx.MockTransport(handler), limits=limits)

    pools = Pools(60, make)

    async def one() -> str:
        async with pools.lease() as client:
            return (await client.get("https://graph.test/v1.0/me")).text

    answers = await asyncio.gather(*(one() for _ in range(500)))
    await pools.aclose()
    count = -(-60 // POOL_SIZE)  # 60 connections in pools of at most POOL_SIZE
    assert len(pools.clients) == count
    assert total["max"] == 60  # the budget is used in full, never exceeded
    assert max(peaks.values()) <= POOL_SIZE
    assert set(answers) == {str(n) for n in range(count)}  # every pool took a share
    assert pools.in_flight() == [0] * count


async def test_a_lease_is_held_until_its_block_ends() -> None:
    pools = Pools(2, lambda size: httpx.AsyncClient(), pools=2)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def third() -> None:
        async with pools.lease():
            entered.set()
            await release.wait()

    async with pools.lease():
        async with pools.lease():
            assert pools.in_flight() == [1, 1]
            waiting = asyncio.create_task(third())
            await asyncio.sleep(0.01)
            assert not entered.is_set()  # the budget of 2 is spent
        await asyncio.wait_for(entered.wait(), 1)
        assert pools.in_flight() == [1, 1]  # it took the pool that was freed
    release.set()
    await waiting
    assert pools.in_flight() == [0, 0]
    await pools.aclose()
