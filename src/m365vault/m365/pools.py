"""Graph's connections as several small httpx pools behind one budget, instead of one big pool.

httpcore's pool re-examines every connection it holds whenever a request starts or ends: each idle
connection is asked whether its peer closed it (a socket poll, behind a dictionary of TLS
attributes built per question) and is counted against the keep-alive limit once per idle
connection, so the work per request grows with the square of the pool. With all 64 connections
kept alive, that bookkeeping took about a third of the server's event-loop time in a full backup
(bench_backup, py-spy); with httpx's default of 20 kept alive the pool stayed cheap but a busy run
paid a TLS handshake for most requests. Here each request scans only its own pool of at most
`POOL_SIZE` connections, all kept alive.

A request takes a slot of the shared budget (requests beyond it wait here, in arrival order) and
then the pool with the fewest requests in flight, which is never full while the budget holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

# Connections per pool: each request start and end polls the pool's idle connections. Against 8,
# pools of 2 cut the server's CPU in an incremental backup by ~20 % (bench_backup, 3 runs each:
# 3.4-3.6 s -> 2.5-2.9 s) with the full run's time unchanged; picking among 32 pools is trivial.
POOL_SIZE = 2


class Pools:
    """`total` connections at most, spread over pools of `POOL_SIZE` made by `make(size)`."""

    def __init__(
        self, total: int, make: Callable[[int], httpx.AsyncClient], *, pools: int | None = None
    ) -> None:
        count = pools or -(-total // POOL_SIZE)
        size = -(-total // count)
        self.clients = [make(size) for _ in range(count)]
        self._busy = [0] * count
        self._budget = asyncio.Semaphore(total)

    def in_flight(self) -> list[int]:
        return list(self._busy)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client to send one request with; held until its response is closed."""
        async with self._budget:
            busy = self._busy
            n = busy.index(min(busy))
            busy[n] += 1
            try:
                yield self.clients[n]
            finally:
                busy[n] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
