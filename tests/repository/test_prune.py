"""Prune: two phases, safe against concurrent backups, repacks, never touches locked objects."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from m365vault.clock import FakeClock
from m365vault.repository import KdfParams, ObjectLockPolicy, Repository, SafetyParameters
from m365vault.repository.backends.base import Kind
from m365vault.repository.backends.memory import MemoryBackend
from tests.repository.conftest import PASSWORD, SMALL, assert_check_passes
from tests.repository.test_repository import compressible

GRACE = SafetyParameters(grace=timedelta(minutes=10))


def setup_clock() -> FakeClock:
    return FakeClock(step=timedelta(seconds=1))  # every read moves time on: no ties between events


async def fresh(clock: FakeClock, lock: ObjectLockPolicy | None = None) -> tuple[MemoryBackend, Repository]:
    backend = MemoryBackend(clock)
    repo = await Repository.init(
        backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL, clock=clock, object_lock=lock
    )
    return backend, repo


async def pack_count(backend: MemoryBackend) -> int:
    return len([i async for i in backend.list(Kind.DATA)])


async def test_two_phases_mark_then_sweep_after_grace() -> None:
    clock = setup_clock()
    backend, repo = await fresh(clock)
    keep = await repo.save_item(compressible(200_000, seed=1))
    await repo.flush()
    drop = await repo.save_item(os.urandom(200_000))
    await repo.close()
    before = await pack_count(backend)

    repo = await Repository.open(backend, PASSWORD, clock=clock)
    marked = await repo.prune([keep], safety=GRACE)
    assert marked.phase == "marked" and marked.marked_delete >= 1
    assert await pack_count(backend) == before  # phase 1 deletes nothing
    assert (await repo.prune([keep], safety=GRACE)).phase == "waiting"  # grace not over
    clock.advance(timedelta(hours=2))
    swept = await repo.prune([keep], safety=GRACE)
    assert swept.phase == "swept" and swept.deleted_packs >= 1 and swept.freed_bytes > 200_000
    assert await repo.read_item(keep) == compressible(200_000, seed=1)
    with pytest.raises(Exception):  # noqa: B017 - the dropped item is gone, whatever the error
        await repo.read_item(drop)
    await repo.close()
    await assert_check_passes(backend)


async def test_backup_during_prune_keeps_what_it_references() -> None:
    clock = setup_clock()
    backend, repo = await fresh(clock)
    shared = compressible(150_000, seed=5)
    old = await repo.save_item(shared)
    await repo.close()

    # A writer opened before the mark deduplicates against the soon-to-be-marked blobs...
    early = await Repository.open(backend, PASSWORD, clock=clock)
    early_ref = await early.save_item(shared)
    assert early_ref == old

    pruner = await Repository.open(backend, PASSWORD, clock=clock)
    assert (await pruner.prune([], safety=GRACE)).phase == "marked"  # nothing is live yet

    # ...a writer opened after the mark must store a fresh copy instead of deduplicating.
    late = await Repository.open(backend, PASSWORD, clock=clock)
    late_ref = await late.save_item(shared + b"!")
    again = await late.save_item(shared)
    await late.flush()
    assert again == old
    await late.close()

    clock.advance(timedelta(minutes=15))  # past the grace period, the early lock not yet stale
    # The early writer has not flushed since the mark: its lock holds the sweep back.
    waiting = await pruner.prune([], safety=GRACE)
    assert waiting.phase == "waiting" and any("not seen" in w for w in waiting.waiting_for)
    await early.flush()  # it learns of the mark; the caller records its ref within the grace period
    swept = await pruner.prune([early_ref, late_ref], safety=GRACE)
    assert swept.phase == "swept"
    await early.close()
    await pruner.close()
    async with await Repository.open(backend, PASSWORD, clock=clock) as reader:
        assert await reader.read_item(early_ref) == shared
        assert await reader.read_item(late_ref) == shared + b"!"
    await assert_check_passes(backend)


async def test_partly_used_packs_are_repacked() -> None:
    clock = setup_clock()
    backend, repo = await fresh(clock)
    refs = [await repo.save_item(os.urandom(20_000)) for _ in range(10)]  # one pack, ten items
    await repo.flush()
    assert await pack_count(backend) == 1
    live = refs[:2]
    contents = {r: await repo.read_item(r) for r in live}
    assert (await repo.prune(live, safety=SafetyParameters.none())).marked_repack == 1
    report = await repo.prune(live, safety=SafetyParameters.none())
    assert report.repacked_blobs == 2 and report.deleted_packs == 1
    stats = await repo.stats()
    assert stats.blobs == 2 and stats.pack_bytes < 50_000
    for r in live:
        assert await repo.read_item(r) == contents[r]
    await repo.close()
    await assert_check_passes(backend)


async def test_crash_garbage_is_collected() -> None:
    clock = setup_clock()
    backend, repo = await fresh(clock)
    ref = await repo.save_item(b"kept")
    await repo.flush()
    await repo._rotate_pack(only_full=False)  # nothing pending: no-op
    await repo.save_item(os.urandom(50_000))
    await repo._rotate_pack(only_full=False)
    await repo._drain_uploads()  # a pack stored, then the "crash" before its index
    repo._unindexed.clear()
    repo._closed = True
    repo._pool.shutdown()
    repo = await Repository.open(backend, PASSWORD, clock=clock)
    assert (await repo.stats()).unindexed_packs == 1
    assert (await repo.prune(None, safety=SafetyParameters.none())).marked_delete == 1
    # The dead writer's lock holds the sweep back until it is stale.
    assert (await repo.prune(None, safety=SafetyParameters.none())).phase == "waiting"
    clock.advance(timedelta(minutes=31))
    assert (await repo.prune(None, safety=SafetyParameters.none())).deleted_packs == 1
    assert (await repo.stats()).unindexed_packs == 0
    assert await repo.read_item(ref) == b"kept"
    await repo.close()
    await assert_check_passes(backend)


async def test_prune_never_touches_locked_objects() -> None:
    clock = setup_clock()
    backend, repo = await fresh(clock, ObjectLockPolicy("COMPLIANCE", 7))
    keep = await repo.save_item(b"keep me")
    await repo.save_item(os.urandom(100_000))
    await repo.flush()
    indexes = {i.handle async for i in backend.list(Kind.INDEX)}
    await repo.prune([keep], safety=SafetyParameters.none())
    locked = await repo.prune([keep], safety=SafetyParameters.none())
    assert locked.phase == "swept" and locked.deleted_packs == 0 and locked.kept_locked >= 1
    assert indexes <= {i.handle async for i in backend.list(Kind.INDEX)}  # locked index files stay
    assert await repo.read_item(keep) == b"keep me"
    await repo.close()
    await assert_check_passes(backend)

    clock.advance(timedelta(days=8))  # retention over: now the space can be reclaimed
    async with await Repository.open(backend, PASSWORD, clock=clock) as repo:
        await repo.prune([keep], safety=SafetyParameters.none())
        freed = await repo.prune([keep], safety=SafetyParameters.none())
        assert freed.deleted_packs >= 1
        assert await repo.read_item(keep) == b"keep me"
    await assert_check_passes(backend)


@pytest.mark.s3
async def test_prune_on_an_object_lock_bucket(s3_factory) -> None:
    backend = await s3_factory(object_lock=True)
    try:
        repo = await Repository.init(
            backend,
            PASSWORD,
            kdf=KdfParams.for_tests(),
            config=SMALL,
            object_lock=ObjectLockPolicy("GOVERNANCE", 1),
        )
        keep = await repo.save_item(compressible(60_000))
        await repo.save_item(os.urandom(60_000))
        await repo.flush()
        assert (await repo.prune([keep], safety=SafetyParameters.none())).phase == "marked"
        swept = await repo.prune([keep], safety=SafetyParameters.none())
        assert swept.deleted_packs == 0 and swept.kept_locked >= 1
        await repo.close()
        await assert_check_passes(backend)
    finally:
        await backend.close()


async def _writer_beside_a_marking_prune(
    clock: FakeClock,
) -> tuple[MemoryBackend, bytes, Repository, Repository]:
    """A repository holding one unreferenced item, a writer holding a lock, and a pruner whose
    first phase has marked that item's pack: (backend, the item, writer, pruner)."""
    backend, repo = await fresh(clock)
    dropped = os.urandom(100_000)
    await repo.save_item(dropped)
    await repo.close()
    writer = await Repository.open(backend, PASSWORD, clock=clock)
    await writer.save_item(b"keeps a lock")
    await writer.flush()
    pruner = await Repository.open(backend, PASSWORD, clock=clock)
    assert (await pruner.prune([], safety=GRACE)).phase == "marked"
    return backend, dropped, writer, pruner


async def _assert_saved_again(backend: MemoryBackend, clock: FakeClock, ref: str, content: bytes) -> None:
    async with await Repository.open(backend, PASSWORD, clock=clock) as reader:
        assert await reader.read_item(ref) == content
    await assert_check_passes(backend)


async def test_a_writer_open_across_a_whole_prune_does_not_reuse_swept_blobs() -> None:
    # The server keeps its writer open between backups: after the sweep removed a pack and its
    # mark, the writer's old index must not let it deduplicate against the deleted blob.
    clock = setup_clock()
    backend, dropped, writer, pruner = await _writer_beside_a_marking_prune(clock)
    clock.advance(timedelta(minutes=15))
    await writer.flush()  # sees the mark
    assert (await pruner.prune([], safety=GRACE)).deleted_packs >= 1
    await pruner.close()
    await writer.flush()  # learns that the mark is gone
    again = await writer.save_item(dropped)
    await writer.flush()
    await writer.close()
    await _assert_saved_again(backend, clock, again, dropped)


async def test_a_writer_idle_past_its_lock_does_not_reuse_swept_blobs() -> None:
    # An idle writer's lock goes stale and the sweep no longer waits for it: it must re-read the
    # index before it writes again.
    clock = setup_clock()
    backend, dropped, writer, pruner = await _writer_beside_a_marking_prune(clock)
    clock.advance(timedelta(minutes=31))  # the writer's lock is stale now
    assert (await pruner.prune([], safety=GRACE)).deleted_packs >= 1
    await pruner.close()
    again = await writer.save_item(dropped)
    await writer.close()
    await _assert_saved_again(backend, clock, again, dropped)
