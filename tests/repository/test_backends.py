"""Every backend passes the same conformance suite; plus Object Lock and wrapper behaviour."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from m365vault.clock import FakeClock
from m365vault.repository.backends.base import (
    Backend,
    BackendError,
    Handle,
    Kind,
    ObjectLocked,
    Payload,
    Retention,
)
from m365vault.repository.backends.memory import MemoryBackend
from m365vault.repository.backends.readonly import ReadOnlyBackend
from m365vault.repository.backends.retrying import RetryingBackend
from m365vault.repository.backends.s3 import S3Backend
from tests.repository import conformance


@pytest.mark.parametrize("case", conformance.ALL, ids=lambda f: f.__name__)
async def test_conformance(backend: Backend, case: Callable[[Backend], Awaitable[None]]) -> None:
    await case(backend)


async def test_local_backend_refuses_object_lock(tmp_path) -> None:
    from m365vault.repository.backends.local import LocalBackend

    b = LocalBackend(tmp_path)
    with pytest.raises(BackendError):
        await b.save(Handle(Kind.DATA, "ab" * 32), b"x", retention=Retention("COMPLIANCE", datetime.now(UTC)))
    assert not list(tmp_path.rglob("*"))  # nothing left behind, not even a temp file


@pytest.mark.s3
async def test_local_backend_writes_a_payload_in_parts_across_writeback_steps(tmp_path, monkeypatch) -> None:
    from m365vault.repository.backends import local

    monkeypatch.setattr(local, "_WRITEBACK_STEP", 1000)
    parts = [bytes([i]) * (300 + 97 * i) for i in range(12)]  # steps end inside and between parts
    b = local.LocalBackend(tmp_path)
    handle = Handle(Kind.DATA, "cd" * 32)
    await b.save(handle, parts)
    assert await b.load(handle) == b"".join(parts)
    assert await b.load(handle, 2500, 700) == b"".join(parts)[2500:3200]


async def test_s3_object_lock_blocks_removal_until_retention_ends(s3_factory) -> None:
    b: S3Backend = await s3_factory(object_lock=True)
    try:
        h = Handle(Kind.DATA, conformance.name())
        until = datetime.now(UTC) + timedelta(days=1)
        await b.save(h, b"locked", retention=Retention("COMPLIANCE", until))
        info = await b.stat(h)
        assert info.retain_until is not None and info.retain_until > datetime.now(UTC)
        with pytest.raises(ObjectLocked):
            await b.remove(h)
        assert await b.load(h) == b"locked"
        # A lock-free object in the same bucket is removed for real (its version, not a marker).
        free = Handle(Kind.LOCKS, conformance.name())
        await b.save(free, b"lock")
        await b.remove(free)
        assert [i async for i in b.list(Kind.LOCKS)] == []
    finally:
        await b.close()


async def test_memory_object_lock_follows_the_clock() -> None:
    clock = FakeClock()
    b = MemoryBackend(clock)
    h = Handle(Kind.DATA, conformance.name())
    await b.save(h, b"x", retention=Retention("GOVERNANCE", clock() + timedelta(days=2)))
    with pytest.raises(ObjectLocked):
        await b.remove(h)
    clock.advance(timedelta(days=3))
    await b.remove(h)


async def test_readonly_refuses_changes() -> None:
    inner = MemoryBackend()
    h = Handle(Kind.DATA, conformance.name())
    await inner.save(h, b"x")
    ro = ReadOnlyBackend(inner)
    assert await ro.load(h) == b"x"
    with pytest.raises(BackendError):
        await ro.save(Handle(Kind.DATA, conformance.name()), b"y")
    with pytest.raises(BackendError):
        await ro.remove(h)
    assert ro.unwrap() is inner


class FlakyBackend(MemoryBackend):
    """Fails the first `failures` saves transiently, the first one after storing the object."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        if self.failures:
            self.failures -= 1
            await super().save(handle, data, retention=retention)  # stored, but the answer is lost
            raise BackendError("connection reset")
        await super().save(handle, data, retention=retention)


async def test_retrying_turns_a_lost_answer_into_success() -> None:
    inner = FlakyBackend(failures=1)
    b = RetryingBackend(inner, first_delay=0)
    h = Handle(Kind.DATA, conformance.name())
    await b.save(h, b"payload")
    assert await inner.load(h) == b"payload"
    parts = Handle(Kind.DATA, conformance.name())
    inner.failures = 1
    await b.save(parts, [b"a pack ", bytearray(b"in parts")])  # judged by its bytes, not its parts
    assert await inner.load(parts) == b"a pack in parts"


async def test_retrying_gives_up_on_permanent_errors() -> None:
    b = RetryingBackend(MemoryBackend(), first_delay=0)
    h = Handle(Kind.DATA, conformance.name())
    await b.save(h, b"x")
    with pytest.raises(BackendError):
        await b.save(h, b"x")  # the first attempt found someone else's object: not ours


@pytest.mark.s3
async def test_object_lock_init_on_a_bucket_without_lock_fails_and_leaves_nothing(s3_factory) -> None:
    from m365vault.repository import KdfParams, ObjectLockPolicy, Repository

    b: S3Backend = await s3_factory(object_lock=False)
    try:
        with pytest.raises(BackendError):
            await Repository.init(
                b, "pw", kdf=KdfParams.for_tests(), object_lock=ObjectLockPolicy("COMPLIANCE", 1)
            )
        assert [i async for i in b.list(Kind.KEYS)] == [] and [i async for i in b.list(Kind.CONFIG)] == []
    finally:
        await b.close()
