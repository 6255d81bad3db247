"""An in-memory backend for tests: same semantics as the real ones, including Object Lock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from m365vault.clock import Clock, utcnow
from m365vault.repository.backends.base import (
    AlreadyExists,
    BackendError,
    BackendProperties,
    Handle,
    Kind,
    NotFound,
    ObjectInfo,
    ObjectLocked,
    Payload,
    Retention,
    check_range,
    joined,
)


class MemoryBackend:
    def __init__(self, clock: Clock = utcnow, *, object_lock: bool = True) -> None:
        self._objects: dict[Handle, tuple[bytes, datetime, datetime | None]] = {}
        self._clock = clock
        self._object_lock = object_lock

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        if retention is not None and not self._object_lock:
            raise BackendError("this memory backend has no Object Lock", permanent=True)
        if handle in self._objects:
            raise AlreadyExists(str(handle))
        self._objects[handle] = (joined(data), self._clock(), None if retention is None else retention.until)

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        data = self._get(handle)[0]
        end = check_range(len(data), offset, length, handle)
        return data[offset:end]

    async def stat(self, handle: Handle) -> ObjectInfo:
        data, modified, retain = self._get(handle)
        return ObjectInfo(handle, len(data), modified, retain)

    async def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        for handle in [h for h in self._objects if h.kind is kind]:
            if handle in self._objects:
                yield await self.stat(handle)

    async def remove(self, handle: Handle) -> None:
        retain = self._get(handle)[2]
        if retain is not None and retain > self._clock():
            raise ObjectLocked(f"{handle} is retained until {retain.isoformat()}")
        del self._objects[handle]

    def properties(self) -> BackendProperties:
        return BackendProperties(location="memory:", supports_object_lock=self._object_lock)

    async def close(self) -> None:
        return None

    # Test helpers: damage an object behind the repository's back.
    def tamper(self, handle: Handle, change: Callable[[bytes], bytes]) -> None:
        data, modified, retain = self._get(handle)
        self._objects[handle] = (change(data), modified, retain)

    def drop(self, handle: Handle) -> None:
        del self._objects[handle]

    def _get(self, handle: Handle) -> tuple[bytes, datetime, datetime | None]:
        try:
            return self._objects[handle]
        except KeyError:
            raise NotFound(str(handle)) from None
