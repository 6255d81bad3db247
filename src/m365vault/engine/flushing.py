"""Group commit for repository flushes.

Every worker flushes before recording a page. With 64 workers that is up to 64 flushes at once,
each of which may seal a small pack. `GroupFlush` wraps a `ContentSaver` so that callers arriving
while a flush runs share the next one: a flush only covers refs handed out before it started, so
a caller whose request came after the running flush began waits for that one to end and then for
one more (started once, on behalf of everyone waiting).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from m365vault.engine.ports import ContentSaver


class GroupFlush:
    def __init__(self, inner: ContentSaver) -> None:
        self._inner = inner
        self._issued = 0  # flush requests so far; request n is ticket n
        self._covered = -1  # every ticket <= this is durable
        self._running: asyncio.Future[None] | None = None
        self.inner_flushes = 0

    def unwrap(self) -> ContentSaver:
        return self._inner

    async def save(self, stream: AsyncIterator[bytes], size: int | None = None) -> str:
        return await self._inner.save(stream, size)

    async def flush(self) -> None:
        ticket = self._issued
        self._issued += 1
        while self._covered < ticket:
            if self._running is None or self._running.done():
                # Covers every request made so far: their refs were handed out before now.
                self._running = asyncio.ensure_future(self._flush_upto(self._issued - 1))
            # Shielded: one caller being cancelled must not cancel the flush others wait on.
            await asyncio.shield(self._running)

    async def _flush_upto(self, ticket: int) -> None:
        self.inner_flushes += 1
        await self._inner.flush()
        self._covered = max(self._covered, ticket)
