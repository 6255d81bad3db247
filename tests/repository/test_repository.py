"""Saving and reading items: round trips, dedup, streaming, keys, several writers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m365vault.repository import (
    KdfParams,
    ObjectLockPolicy,
    Repository,
    RepositoryError,
    SafetyParameters,
    UnknownRef,
    WrongPassword,
)
from m365vault.repository.backends.base import Backend, Handle, Kind, Payload
from m365vault.repository.backends.memory import MemoryBackend
from m365vault.repository.blob import BlobType, Envelope
from m365vault.repository.repo import STREAMS
from tests.repository.conftest import PASSWORD, SMALL, assert_check_passes


def compressible(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    words = [rnd.randbytes(rnd.randint(2, 9)).hex() for _ in range(200)]
    out = bytearray()
    while len(out) < n:
        out += (rnd.choice(words) + " ").encode()
    return bytes(out[:n])


async def pieces(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    pos = 0
    for size in sizes:
        yield data[pos : pos + size]
        pos += size
    yield data[pos:]


async def test_round_trip_on_every_backend_survives_reopen(backend: Backend) -> None:
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    items = {
        "empty": b"",
        "small": b"Subject: hi\r\n\r\nhello",
        "incompressible": os.urandom(300_000),
        "text": compressible(500_000),
    }
    refs = {k: await repo.save_item(v) for k, v in items.items()}
    await repo.close()
    assert refs["small"].startswith("b") and refs["text"].startswith("m")
    reopened = await Repository.open(backend, PASSWORD)
    try:
        for key, data in items.items():
            assert await reopened.read_item(refs[key]) == data
        stats = await reopened.stats()
        assert stats.stored_bytes < stats.content_bytes  # text compressed, random stored raw
    finally:
        await reopened.close()
    await assert_check_passes(backend)


async def test_identical_content_is_stored_once(mem_repo: Repository) -> None:
    attachment = os.urandom(200_000)
    mails = [b"header %d\r\n\r\n" % i + attachment for i in range(3)]
    first = await mem_repo.save_item(attachment)
    again = await mem_repo.save_item(attachment)
    await mem_repo.flush()
    before = await mem_repo.stats()
    assert first == again
    for mail in mails:  # the attachment's chunks are shared; only the first chunk differs
        await mem_repo.save_item(mail)
    await mem_repo.flush()
    after = await mem_repo.stats()
    assert after.stored_bytes - before.stored_bytes < len(attachment)  # three copies would be 3x


async def test_streamed_item_is_read_back_in_chunks(mem_repo: Repository) -> None:
    data = os.urandom(700_000)
    ref = await mem_repo.save_item(pieces(data, [1, 65_536, 3, 100_000] * 3))
    assert ref == await mem_repo.save_item(data)  # same content, same ref, however it was split
    got = [piece async for piece in mem_repo.open_item(ref)]
    assert b"".join(got) == data
    assert len(got) > 3 and max(map(len, got)) <= SMALL.chunker.max_size


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 200_000),
    cuts=st.lists(st.integers(1, 50_000), max_size=8),
    seed=st.integers(0, 2**32),
)
def test_refs_depend_on_content_only(size: int, cuts: list[int], seed: int) -> None:
    async def run() -> None:
        backend = MemoryBackend()
        repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
        data = random.Random(seed).randbytes(size // 2) + b"a" * (size - size // 2)
        whole = await repo.save_item(data)
        streamed = await repo.save_item(pieces(data, cuts))
        assert whole == streamed
        assert await repo.read_item(streamed) == data
        await repo.close()
        await assert_check_passes(backend)

    asyncio.run(run())


async def test_ids_are_keyed_per_repository() -> None:
    a = await Repository.init(MemoryBackend(), PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    b = await Repository.init(MemoryBackend(), PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    assert await a.save_item(b"same") != await b.save_item(b"same")
    await a.close()
    await b.close()


async def test_password_change_rewrites_only_the_key_file() -> None:
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    ref = await repo.save_item(compressible(100_000))
    await repo.flush()
    data_before = {i.handle async for i in backend.list(Kind.DATA)}
    keys_before = {i.handle async for i in backend.list(Kind.KEYS)}
    await repo.change_password("new password", KdfParams.for_tests())
    await repo.close()
    assert {i.handle async for i in backend.list(Kind.DATA)} == data_before
    assert not keys_before & {i.handle async for i in backend.list(Kind.KEYS)}
    with pytest.raises(WrongPassword):
        await Repository.open(backend, PASSWORD)
    async with await Repository.open(backend, "new password") as again:
        assert await again.read_item(ref) == compressible(100_000)


async def test_open_with_master_key_skips_the_password() -> None:
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    ref = await repo.save_item(b"x")
    await repo.close()
    async with await Repository.open(backend, master_key=repo.keys.master) as again:
        assert await again.read_item(ref) == b"x"
    with pytest.raises(WrongPassword):
        await Repository.open(backend, master_key=os.urandom(32))


async def test_init_refuses_an_existing_repository_and_bad_refs_are_clear(mem_repo: Repository) -> None:
    with pytest.raises(RepositoryError):
        await Repository.init(mem_repo.backend, PASSWORD, kdf=KdfParams.for_tests())
    for bad in ["", "x" + "0" * 64, "b" + "zz" * 32, "b" + "00" * 32]:
        with pytest.raises(UnknownRef):
            await mem_repo.read_item(bad)


async def test_several_writers_at_once_are_safe(backend: Backend) -> None:
    first = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    await first.close()
    shared = compressible(150_000, seed=7)
    contents = {w: [shared] + [compressible(60_000, seed=100 * w + i) for i in range(6)] for w in range(3)}

    async def writer(w: int) -> list[str]:
        repo = await Repository.open(backend, PASSWORD)
        try:
            return [await repo.save_item(c) for c in contents[w]]
        finally:
            await repo.close()

    refs = await asyncio.gather(*(writer(w) for w in range(3)))
    assert refs[0][0] == refs[1][0] == refs[2][0]
    async with await Repository.open(backend, PASSWORD) as reader:
        for w in range(3):
            for ref, data in zip(refs[w], contents[w], strict=True):
                assert await reader.read_item(ref) == data
    await assert_check_passes(backend)


async def test_object_lock_retains_data_but_not_keys_or_locks() -> None:
    backend = MemoryBackend()
    repo = await Repository.init(
        backend,
        PASSWORD,
        kdf=KdfParams.for_tests(),
        config=SMALL,
        object_lock=ObjectLockPolicy("COMPLIANCE", 7),
    )
    await repo.save_item(compressible(80_000))
    await repo.flush()
    for kind in (Kind.CONFIG, Kind.DATA, Kind.INDEX):
        infos = [i async for i in backend.list(kind)]
        assert infos and all(i.retain_until is not None for i in infos), kind
    for kind in (Kind.KEYS, Kind.LOCKS):
        assert all(i.retain_until is None for i in [i async for i in backend.list(kind)])
    await repo.close()
    assert [i async for i in backend.list(Kind.LOCKS)] == []  # the writer lock is gone on close


async def test_object_lock_needs_a_backend_that_can_lock(tmp_path) -> None:
    from m365vault.repository.backends.local import LocalBackend

    with pytest.raises(RepositoryError):
        await Repository.init(LocalBackend(tmp_path), PASSWORD, object_lock=ObjectLockPolicy("GOVERNANCE", 1))
    assert not list(tmp_path.iterdir())


def mail(i: int) -> bytes:
    rnd = random.Random(i)
    who = rnd.choice(["alice", "bob", "carol", "dave"])
    return (
        f"Received: from mx{rnd.randint(1, 9)}.example.com by mail.example.org\r\n"
        f"From: {who} <{who}@example.com>\r\nTo: team@example.org\r\nSubject: report {i}\r\n"
        f"Message-ID: <{rnd.getrandbits(64):x}@example.com>\r\nContent-Type: text/plain\r\n\r\n"
        + " ".join(
            rnd.choice(["the", "quarterly", "numbers", "meeting", "budget", "please", "review"])
            for _ in range(150)
        )
    ).encode()


async def test_small_items_get_a_trained_dictionary_that_survives_reopen_and_prune() -> None:
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    refs = [await repo.save_item(mail(i)) for i in range(1300)]
    await repo.close()
    async with await Repository.open(backend, PASSWORD) as again:
        assert len(again.index.dictionaries) == 1
        for i in (0, 999, 1299):  # before, at and after training
            assert await again.read_item(refs[i]) == mail(i)
        plain = sum(len(zstandard.ZstdCompressor(level=3).compress(mail(i))) for i in range(1000, 1300))
        stored = sum(again.index.lookup(bytes.fromhex(r[1:]))[0].entry.length for r in refs[1000:])
        assert stored < plain  # the dictionary pays even with its nonce, tag and id overhead
        await again.prune(refs[1200:], safety=SafetyParameters.none())
        await again.prune(refs[1200:], safety=SafetyParameters.none())
        assert len(again.index.dictionaries) == 1
    await assert_check_passes(backend)
    async with await Repository.open(backend, PASSWORD) as fresh:
        assert await fresh.read_item(refs[1250]) == mail(1250)


async def test_concurrent_items_sharing_chunks_all_finish() -> None:
    # One worker means two encode slots: items queue for slots while holding the same next chunk.
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL, workers=1)
    shared = os.urandom(400_000)
    variants = [os.urandom(40_000 + i) + shared for i in range(16)]
    refs = await asyncio.wait_for(asyncio.gather(*(repo.save_item(v) for v in variants)), timeout=20)
    await repo.flush()
    for ref, data in zip(refs, variants, strict=True):
        assert await repo.read_item(ref) == data
    assert (await repo.stats()).stored_bytes < 2_000_000  # 16 full copies would be 7 MB
    await repo.close()
    await assert_check_passes(backend)


class StalledStreams:
    """Items over the small-item limit whose streams stop after their first piece until
    `release`: counts the streams started and those read on past that piece."""

    HEAD = SMALL.small_item_limit + 1

    def __init__(self, count: int) -> None:
        self.contents = [os.urandom(self.HEAD) + os.urandom(50_000) for _ in range(count)]
        self.started = 0
        self.read_on = 0
        self._released = asyncio.Event()

    async def stream(self, data: bytes) -> AsyncIterator[bytes]:
        self.started += 1
        yield data[: self.HEAD]
        self.read_on += 1
        await self._released.wait()
        yield data[self.HEAD :]

    async def settle(self) -> None:
        """Let the saves run as far as they can before `release`."""
        for _ in range(50):
            await asyncio.sleep(0.01)

    def release(self) -> None:
        self._released.set()


async def test_only_a_few_streams_are_chunked_at_once(mem_repo: Repository) -> None:
    # Past its first piece only STREAMS streams may be read on (the others wait, holding just it).
    streams = StalledStreams(3 * STREAMS)
    contents = streams.contents
    saves = [asyncio.create_task(mem_repo.save_item(streams.stream(data))) for data in contents]
    await streams.settle()
    assert streams.read_on == STREAMS
    streams.release()
    refs = await asyncio.wait_for(asyncio.gather(*saves), timeout=20)
    assert streams.read_on == len(contents)
    await mem_repo.flush()
    for ref, data in zip(refs, contents, strict=True):
        assert await mem_repo.read_item(ref) == data


async def test_small_saves_return_before_encoding_and_flush_makes_them_durable(monkeypatch) -> None:
    from m365vault.repository import repo as repo_module

    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    monkeypatch.setattr(repo_module, "_BACKGROUND_BYTES", 20_000)  # saves must wait for room
    started = threading.Event()
    release = threading.Event()
    encode = repo._encode_part

    def held(part: list[tuple[BlobType, bytes, bytes]]) -> list[Envelope]:
        started.set()
        release.wait(10)
        return encode(part)

    monkeypatch.setattr(repo, "_encode_part", held)
    items = [mail(i) for i in range(40)]
    first = await asyncio.wait_for(repo.save_item(items[0]), 5)  # returns with its blob unencoded
    assert not [i async for i in backend.list(Kind.DATA)]
    saves = asyncio.gather(*(repo.save_item(item) for item in items[1:]))
    await asyncio.sleep(0.1)
    assert started.is_set() and not saves.done()  # over the bound: the others wait for room
    release.set()
    refs = [first, *await asyncio.wait_for(saves, 10)]
    await repo.flush()
    await repo.close()
    async with await Repository.open(backend, PASSWORD) as again:
        for ref, item in zip(refs, items, strict=True):
            assert await again.read_item(ref) == item
    await assert_check_passes(backend)


async def test_a_small_blob_claimed_by_one_save_is_encoded_once_and_the_other_waits(monkeypatch) -> None:
    repo = await Repository.init(MemoryBackend(), PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    encoded: list[bytes] = []
    encode = repo._encode_part

    def counting(part: list[tuple[BlobType, bytes, bytes]]) -> list[Envelope]:
        encoded.extend(blob_id for _, blob_id, _ in part)
        return encode(part)

    monkeypatch.setattr(repo, "_encode_part", counting)
    first = await repo.save_item(mail(1))
    again = asyncio.create_task(repo.save_item(mail(1)))
    await asyncio.sleep(0)
    assert not again.done()  # claimed, not yet in a pack: the second save waits for it
    assert await again == first
    assert encoded == [bytes.fromhex(first[1:])]
    assert bytes.fromhex(first[1:]) in repo._builder
    await repo.close()


async def test_a_failed_background_encoding_fails_flush_and_waiters_not_silently(monkeypatch) -> None:
    repo = await Repository.init(MemoryBackend(), PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)

    def broken(part: list[tuple[BlobType, bytes, bytes]]) -> list[Envelope]:
        raise MemoryError("no room")

    monkeypatch.setattr(repo, "_encode_part", broken)
    await repo.save_item(mail(1))
    waiter = asyncio.create_task(repo.save_item(mail(1)))
    with pytest.raises(RepositoryError, match="no room"):
        await waiter
    with pytest.raises(RepositoryError, match="no room"):
        await repo.flush()
    assert not repo._pending and not repo._batches  # nothing left for a later save to wait on
    with pytest.raises(RepositoryError):
        await repo.save_item(mail(2))
    await repo.close()


async def test_concurrent_first_saves_write_one_writer_lock() -> None:
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    saved: list[str] = []
    save = backend.save

    async def recording(handle: Handle, data: Payload, **kwargs: Any) -> None:
        if handle.kind is Kind.LOCKS:
            saved.append(handle.name)
        await save(handle, data, **kwargs)

    backend.save = recording  # type: ignore[method-assign]
    await asyncio.gather(*(repo.save_item(mail(i)) for i in range(8)))
    assert len(saved) == 1
    await repo.close()


class HeldDataBackend(MemoryBackend):
    """Pack saves wait until released: a backend slower than the writers filling packs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.packs_waiting = 0

    async def save(self, handle: Handle, data: Payload, retention: Any = None) -> None:
        if handle.kind is Kind.DATA:
            self.packs_waiting += 1
            await self.release.wait()
            self.packs_waiting -= 1
        await super().save(handle, data, retention=retention)


async def test_packs_wait_for_the_backend_in_order_and_a_cancelled_save_loses_nothing() -> None:
    backend = HeldDataBackend()
    # Items stored whole and big enough to be encoded before their save returns: a save that
    # fills the open pack sends it to be stored.
    config = dataclasses.replace(SMALL, small_item_limit=256 * 1024)
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=config)
    # ~20 packs of incompressible items, while the backend holds every pack it is given.
    items = [os.urandom(150_000) for _ in range(40)]
    lanes = asyncio.Semaphore(4)  # like a backup's item lanes: a few saves in flight at a time

    async def save(item: bytes) -> str:
        async with lanes:
            return await repo.save_item(item)

    saves = [asyncio.create_task(save(item)) for item in items]
    for _ in range(100):
        await asyncio.sleep(0.01)
    assert backend.packs_waiting == 2  # two uploads; the rest wait, not as packs piled in memory
    assert not all(save.done() for save in saves)
    waiting = [save for save in saves if not save.done()]
    waiting[0].cancel()  # a save cancelled while its pack waits for an upload slot
    backend.release.set()
    results = await asyncio.gather(*saves, return_exceptions=True)
    await repo.flush()
    refs = {ref: item for ref, item in zip(results, items, strict=True) if isinstance(ref, str)}
    assert len(refs) >= len(items) - 1
    # Saving everything again: a blob the cancelled save had packed must still be stored.
    again = await asyncio.gather(*(repo.save_item(item) for item in items))
    await repo.close()
    async with await Repository.open(backend, PASSWORD) as reopened:
        for ref, item in zip(again, items, strict=True):
            assert await reopened.read_item(ref) == item
    await assert_check_passes(backend)


async def test_a_stream_of_known_size_waits_for_its_slot_before_reading(mem_repo: Repository) -> None:
    # With the size given, items over the limit wait for a stream slot having read nothing (a
    # caller's download not started, no head held); the refs are those of the same saves without it.
    streams = StalledStreams(2 * STREAMS)
    contents = streams.contents
    saves = [asyncio.create_task(mem_repo.save_item(streams.stream(data), len(data))) for data in contents]
    await streams.settle()
    assert streams.started == STREAMS
    streams.release()
    refs = await asyncio.wait_for(asyncio.gather(*saves), timeout=20)
    assert streams.started == len(contents)
    # A wrong size changes nothing but the wait: a short item is still stored whole.
    small = os.urandom(1000)
    small_ref = await mem_repo.save_item(iter([small]), SMALL.small_item_limit + 1)
    assert small_ref == await mem_repo.save_item(small) and small_ref.startswith("b")
    for ref, data in zip(refs, contents, strict=True):
        assert ref == await mem_repo.save_item(data)
    await mem_repo.flush()
    for ref, data in zip(refs, contents, strict=True):
        assert await mem_repo.read_item(ref) == data
