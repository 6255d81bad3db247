"""A wrapper that refuses every change: for check and for reading a repository that must not move."""

from __future__ import annotations

from collections.abc import AsyncIterator

from m365vault.repository.backends.base import (
    Backend,
    BackendError,
    BackendProperties,
    Handle,
    Kind,
    ObjectInfo,
    Payload,
    Retention,
)


class ReadOnlyBackend:
    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def unwrap(self) -> Backend:
        return self._inner

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        raise BackendError(f"read-only: refusing to write {handle}", permanent=True)

    async def remove(self, handle: Handle) -> None:
        raise BackendError(f"read-only: refusing to remove {handle}", permanent=True)

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return await self._inner.load(handle, offset, length)

    async def stat(self, handle: Handle) -> ObjectInfo:
        return await self._inner.stat(handle)

    def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        return self._inner.list(kind)

    def properties(self) -> BackendProperties:
        return self._inner.properties()

    async def close(self) -> None:
        await self._inner.close()
