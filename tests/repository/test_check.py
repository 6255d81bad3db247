"""check finds named damage and names the items it affects; repair_index rebuilds a lost index."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from m365vault.repository import KdfParams, Repository, WrongPassword
from m365vault.repository.backends.base import Handle, Kind
from m365vault.repository.backends.memory import MemoryBackend
from tests.repository.conftest import PASSWORD, SMALL
from tests.repository.test_repository import compressible


async def populated() -> tuple[MemoryBackend, dict[str, bytes]]:
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    items = {}
    for i in range(12):
        data = compressible(random.Random(i).randint(100, 120_000), seed=i)
        items[await repo.save_item(data)] = data
    await repo.close()
    return backend, items


async def handles(backend: MemoryBackend, kind: Kind) -> list[Handle]:
    return sorted([i.handle async for i in backend.list(kind)])


def flip(position: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        at = position % len(data)
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    return change


async def flip_byte_in_pack(b: MemoryBackend) -> None:
    b.tamper((await handles(b, Kind.DATA))[0], flip(100))


async def flip_byte_in_pack_header(b: MemoryBackend) -> None:
    b.tamper((await handles(b, Kind.DATA))[0], lambda d: flip(len(d) - 20)(d))


async def truncate_pack(b: MemoryBackend) -> None:
    b.tamper((await handles(b, Kind.DATA))[-1], lambda d: d[: len(d) // 2])


async def delete_pack(b: MemoryBackend) -> None:
    b.drop((await handles(b, Kind.DATA))[0])


async def flip_byte_in_index(b: MemoryBackend) -> None:
    b.tamper((await handles(b, Kind.INDEX))[0], flip(40))


DAMAGE = [flip_byte_in_pack, flip_byte_in_pack_header, truncate_pack, delete_pack, flip_byte_in_index]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
async def test_damage_is_found_and_named(damage: Callable[[MemoryBackend], object]) -> None:
    backend, items = await populated()
    await damage(backend)  # type: ignore[misc]
    async with await Repository.open(backend, PASSWORD) as repo:
        report = await repo.check(read_data=True, refs=list(items))
        assert not report.ok
        broken = set(report.affected_refs())
        assert broken and broken <= set(items)  # refs named are real items
        for ref in set(items) - broken:  # and every item not named still reads back whole
            assert await repo.read_item(ref) == items[ref]


async def test_any_flipped_byte_in_any_pack_is_found_by_read_data() -> None:
    backend, items = await populated()
    packs = await handles(backend, Kind.DATA)
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    for _ in range(6):
        pack = rnd.choice(packs)
        size = (await backend.stat(pack)).size
        position = rnd.randrange(size)
        backend.tamper(pack, flip(position))
        async with await Repository.open(backend, PASSWORD) as repo:
            assert not (await repo.check(read_data=True)).ok, f"flip at {position} of {pack} went unnoticed"
            report = await repo.check(read_data=True, refs=list(items))
            assert report.affected_refs(), "the damage must name the items it affects"
            assert set(report.affected_refs()) <= set(items)
        backend.tamper(pack, flip(position))  # undo for the next round
    async with await Repository.open(backend, PASSWORD) as repo:
        assert (await repo.check(read_data=True)).ok


async def test_structure_check_without_read_data_misses_nothing_structural() -> None:
    backend, _ = await populated()
    await truncate_pack(backend)
    async with await Repository.open(backend, PASSWORD) as repo:
        assert not (await repo.check(read_data=False)).ok


async def test_deleted_index_is_named_by_refs_and_repaired_from_pack_headers() -> None:
    backend, items = await populated()
    for h in await handles(backend, Kind.INDEX):
        backend.drop(h)
    async with await Repository.open(backend, PASSWORD) as repo:
        report = await repo.check(refs=list(items))
        assert not report.ok and set(report.affected_refs()) == set(items)
        assert report.warnings  # the packs are there, but no index lists them
        assert await repo.repair_index() == len(await handles(backend, Kind.DATA))
        report = await repo.check(read_data=True, refs=list(items))
        assert report.ok and not report.warnings
        for ref, data in items.items():
            assert await repo.read_item(ref) == data


async def test_corrupt_key_file() -> None:
    backend, _ = await populated()
    key = (await handles(backend, Kind.KEYS))[0]
    backend.tamper(key, lambda d: d[:30] + b"#" + d[31:])
    with pytest.raises(WrongPassword, match="damaged"):
        await Repository.open(backend, PASSWORD)


async def test_damaged_second_key_file_is_reported_by_check() -> None:
    backend, _ = await populated()
    async with await Repository.open(backend, PASSWORD) as repo:
        extra = await repo.add_key("other", KdfParams.for_tests())
    backend.tamper(Handle(Kind.KEYS, extra), lambda d: d[:-10])
    async with await Repository.open(backend, PASSWORD) as repo:
        report = await repo.check()
        assert [p.object for p in report.errors] == [f"keys/{extra}"]
