"""A wrapper that retries transient backend errors with exponential backoff.

Only errors a backend classifies as transient are retried. A `save` retried after a timeout may
find its own first attempt already stored: `AlreadyExists` on a retry of the same bytes is
success, because object names are random and never reused for different content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from m365vault.repository.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendProperties,
    Handle,
    Kind,
    ObjectInfo,
    Payload,
    Retention,
    is_permanent,
    payload_size,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryingBackend:
    def __init__(self, inner: Backend, *, attempts: int = 5, first_delay: float = 0.2) -> None:
        self._inner = inner
        self._attempts = attempts
        self._first_delay = first_delay

    def unwrap(self) -> Backend:
        return self._inner

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except (BackendError, OSError) as err:
                if is_permanent(err) or attempt == self._attempts:
                    raise
                log.warning("%s failed (attempt %d of %d), retrying: %s", what, attempt, self._attempts, err)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        first = True

        async def attempt() -> None:
            nonlocal first
            try:
                await self._inner.save(handle, data, retention=retention)
            except AlreadyExists:
                if first:
                    raise
                # An earlier attempt reached the store before its answer was lost; confirm it is ours.
                stored = await self._inner.stat(handle)
                if stored.size != payload_size(data):
                    raise
            finally:
                first = False

        await self._retry(f"save {handle}", attempt)

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return await self._retry(f"load {handle}", lambda: self._inner.load(handle, offset, length))

    async def stat(self, handle: Handle) -> ObjectInfo:
        return await self._retry(f"stat {handle}", lambda: self._inner.stat(handle))

    async def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        # A listing is collected whole before yielding, so a retry never yields duplicates.
        async def collect() -> list[ObjectInfo]:
            return [info async for info in self._inner.list(kind)]

        for info in await self._retry(f"list {kind}", collect):
            yield info

    async def remove(self, handle: Handle) -> None:
        await self._retry(f"remove {handle}", lambda: self._inner.remove(handle))

    def properties(self) -> BackendProperties:
        return self._inner.properties()

    async def close(self) -> None:
        await self._inner.close()
