"""The compact in-memory index: exact lookups at scale, forced prefix collisions, other-thread reads."""

from __future__ import annotations

import gc
import os
import random
import threading
import tracemalloc

import pytest

from m365vault.repository import KdfParams, Repository, index
from m365vault.repository.backends.memory import MemoryBackend
from m365vault.repository.blob import BlobType
from m365vault.repository.crypto import Keys
from m365vault.repository.errors import IntegrityError
from m365vault.repository.index import IndexFile, MasterIndex, PackEntries
from m365vault.repository.pack import PackEntry
from tests.repository.conftest import PASSWORD, SMALL, assert_check_passes


def make_pack(rnd: random.Random, count: int, kind: BlobType = BlobType.DATA) -> list[PackEntry]:
    return [PackEntry(kind, rnd.randbytes(32), i * 100, 90 + i % 7, 200 + i) for i in range(count)]


def pack_name(rnd: random.Random) -> str:
    return rnd.randbytes(32).hex()


def test_lookups_are_exact_with_many_entries() -> None:
    rnd = random.Random(1)
    master = MasterIndex()
    packs = {pack_name(rnd): make_pack(rnd, 500) for _ in range(60)}  # 30,000 blobs, many doublings
    for pack, entries in packs.items():
        master.add_pack(pack, entries)
    assert len(master) == 30_000
    for pack, entries in packs.items():
        for entry in entries[::7]:
            assert [(loc.pack, loc.entry) for loc in master.lookup(entry.blob_id)] == [(pack, entry)]
            assert entry.blob_id in master
    assert not any(rnd.randbytes(32) in master for _ in range(2000))
    assert set(master.blob_ids()) == {e.blob_id for es in packs.values() for e in es}
    assert list(master.packs[next(iter(packs))]) == packs[next(iter(packs))]


def test_copies_in_several_packs_and_removal() -> None:
    rnd = random.Random(2)
    master = MasterIndex()
    first, second = pack_name(rnd), pack_name(rnd)
    shared = make_pack(rnd, 100)
    dictionary = make_pack(rnd, 1, BlobType.DICTIONARY)
    master.add_pack(first, shared + dictionary)
    moved = [PackEntry(e.kind, e.blob_id, e.offset + 5, e.length, e.raw_length) for e in shared[:40]]
    master.add_pack(second, moved)
    master.add_pack(second, [])  # a pack is added once
    assert len(master) == 101
    assert master.dictionaries == {dictionary[0].blob_id}
    assert sorted(master.holders(shared[0].blob_id)) == sorted([first, second])
    assert {loc.entry.offset for loc in master.lookup(shared[0].blob_id)} == {0, 5}

    master.remove_pack(first)
    assert len(master) == 40
    assert master.dictionaries == set()
    assert [loc.pack for loc in master.lookup(shared[0].blob_id)] == [second]
    assert shared[50].blob_id not in master
    assert first not in master.packs
    master.remove_pack(first)  # removing twice changes nothing
    assert len(master) == 40


def test_forced_prefix_collisions_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every id gets one of four prefixes: slots collide constantly, the full id must decide.
    monkeypatch.setattr(index, "id_prefix", lambda blob_id: bytes([blob_id[0] % 4]) * 8)
    rnd = random.Random(3)
    master = MasterIndex()
    packs = {pack_name(rnd): make_pack(rnd, 300) for _ in range(5)}
    for pack, entries in packs.items():
        master.add_pack(pack, entries)
    assert len(master) == 1500
    for pack, entries in packs.items():
        for entry in entries[::11]:
            assert [loc.pack for loc in master.lookup(entry.blob_id)] == [pack]
    assert rnd.randbytes(32) not in master
    master.remove_pack(next(iter(packs)))
    assert len(master) == 1200
    assert len(set(master.blob_ids())) == 1200


def test_reads_from_another_thread_while_the_index_grows() -> None:
    rnd = random.Random(4)
    master = MasterIndex()
    added: list[bytes] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for blob_id in list(added[-50:]):
                    assert blob_id in master  # added before we looked: must be found
        except BaseException as err:
            failures.append(err)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(40):
            entries = make_pack(rnd, 400)
            master.add_pack(pack_name(rnd), entries)
            added.extend(e.blob_id for e in entries)
    finally:
        stop.set()
        thread.join()
    assert not failures


def test_memory_per_blob_stays_small() -> None:
    rnd = random.Random(5)
    rows = [(pack_name(rnd), make_pack(rnd, 2000)) for _ in range(25)]
    gc.collect()
    tracemalloc.start()
    try:
        master = MasterIndex()
        for pack, entries in rows:
            master.add_pack(pack, entries)
        del rows
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(master) == 50_000
    assert used / 50_000 < 100  # a dict of objects per blob took ~400


def test_index_file_round_trip_and_bad_kind() -> None:
    rnd = random.Random(6)
    keys = Keys.generate()
    entries = make_pack(rnd, 10) + make_pack(rnd, 2, BlobType.MANIFEST)
    name, pack = pack_name(rnd), pack_name(rnd)
    opened = IndexFile.open(keys, name, IndexFile(packs={pack: PackEntries.of(entries)}).seal(keys, name))
    assert list(opened.packs[pack]) == entries
    records = bytearray(PackEntries.of(entries).records)
    records[0] = 9
    with pytest.raises(ValueError, match="unknown blob type"):
        PackEntries(bytes(records))
    forged = IndexFile(packs={pack: PackEntries.of(entries)})
    forged.packs[pack].records = bytes(records)  # as a damaged but authentic file would say
    with pytest.raises(IntegrityError, match="malformed"):
        IndexFile.open(keys, name, forged.seal(keys, name))


async def test_repository_with_colliding_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Save, dedup, reopen, read and check with every blob id sharing one of two slot prefixes."""
    monkeypatch.setattr(index, "id_prefix", lambda blob_id: bytes([blob_id[0] % 2]) * 8)
    backend = MemoryBackend()
    items = [os.urandom(200) + b"item %d" % i for i in range(300)] + [os.urandom(100_000)]
    async with await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL) as repo:
        refs = [await repo.save_item(item) for item in items]
        await repo.flush()
        blobs = len(repo.index)
        assert await repo.save_item(items[5]) == refs[5]  # dedup still finds it
        assert len(repo.index) == blobs
    async with await Repository.open(backend, PASSWORD) as repo:
        assert len(repo.index) == blobs
        for ref, item in zip(refs, items, strict=True):
            assert await repo.read_item(ref) == item
    await assert_check_passes(backend)
