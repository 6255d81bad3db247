"""Backend conformance: the guarantees of backends.base.Backend, as functions over any backend."""

from __future__ import annotations

import asyncio
import os

import pytest

from m365vault.repository.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    Handle,
    Kind,
    NotFound,
    is_not_found,
    is_permanent,
)


def name() -> str:
    return os.urandom(32).hex()


async def save_load_ranges(b: Backend) -> None:
    h = Handle(Kind.DATA, name())
    data = os.urandom(100_000)
    await b.save(h, data)
    assert await b.load(h) == data
    assert await b.load(h, 10, 20) == data[10:30]
    assert await b.load(h, 99_990) == data[99_990:]
    assert await b.load(h, 0, 0) == b""
    assert (await b.stat(h)).size == len(data)


async def parts_are_stored_as_one_object(b: Backend) -> None:
    h = Handle(Kind.DATA, name())
    parts: list[bytes | bytearray] = [os.urandom(70_000), bytearray(b"middle"), b"", os.urandom(3)]
    await b.save(h, parts)
    assert await b.load(h) == b"".join(parts)
    assert await b.load(h, 69_998, 6) == bytes(parts[0][-2:]) + b"midd"
    assert (await b.stat(h)).size == sum(map(len, parts))


async def short_read_is_an_error(b: Backend) -> None:
    h = Handle(Kind.INDEX, name())
    await b.save(h, b"0123456789")
    with pytest.raises(BackendError) as err:
        await b.load(h, 5, 10)
    assert is_permanent(err.value)


async def create_only(b: Backend) -> None:
    h = Handle(Kind.DATA, name())
    await b.save(h, b"first")
    with pytest.raises(AlreadyExists):
        await b.save(h, b"second")
    assert await b.load(h) == b"first"


async def concurrent_create_only_one_wins(b: Backend) -> None:
    h = Handle(Kind.LOCKS, name())
    results = await asyncio.gather(*(b.save(h, bytes([i]) * 10) for i in range(4)), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(r is None or isinstance(r, AlreadyExists) for r in results)


async def missing_objects(b: Backend) -> None:
    h = Handle(Kind.DATA, name())
    for call in (b.load(h), b.stat(h), b.remove(h)):
        with pytest.raises(NotFound) as err:
            await call
        assert is_not_found(err.value)


async def list_sees_saved_and_not_removed(b: Backend) -> None:
    saved = {Handle(Kind.DATA, name()) for _ in range(5)} | {Handle(Kind.INDEX, name())}
    for h in saved:
        await b.save(h, b"x" * 3)
    await b.save(Handle(Kind.CONFIG, "config"), b"cfg")
    data = {info.handle async for info in b.list(Kind.DATA)}
    assert data == {h for h in saved if h.kind is Kind.DATA}
    assert [i.handle.name async for i in b.list(Kind.CONFIG)] == ["config"]
    victim = next(h for h in saved if h.kind is Kind.DATA)
    await b.remove(victim)
    assert victim not in {info.handle async for info in b.list(Kind.DATA)}
    assert {i.handle async for i in b.list(Kind.INDEX)} == {h for h in saved if h.kind is Kind.INDEX}


async def remove_last_object(b: Backend) -> None:
    h = Handle(Kind.MARKS, name())
    await b.save(h, b"m")
    await b.remove(h)
    assert [i async for i in b.list(Kind.MARKS)] == []


async def empty_object(b: Backend) -> None:
    h = Handle(Kind.KEYS, name())
    await b.save(h, b"")
    assert await b.load(h) == b""
    assert (await b.stat(h)).size == 0


ALL = [
    save_load_ranges,
    parts_are_stored_as_one_object,
    short_read_is_an_error,
    create_only,
    concurrent_create_only_one_wins,
    missing_objects,
    list_sees_saved_and_not_removed,
    remove_last_object,
    empty_object,
]
