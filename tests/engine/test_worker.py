"""The per-object backup through the workers: full then incremental, write order, crashes,
resyncs, deleted collections, replays and cooperative stop."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m365vault.engine.flushing import GroupFlush
from m365vault.engine.object_backup import ObjectPorts
from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    CollectionRef,
    ContentGone,
    ItemChange,
    ObjectKind,
    PageRecord,
    SessionStatus,
    TenantUser,
)
from m365vault.engine.queue import BackupTask, OutcomeStatus
from m365vault.engine.testing import FakeTenant, MemoryCatalog, MemoryContentStore, mailbox
from tests.engine.harness import World, backup, start_backup, wait_until

ADELE = mailbox("u-adele", "adele@contoso.com")


def mail(n: int, revision: int = 0) -> bytes:
    return f"From: a@b\r\nSubject: message {n} rev {revision}\r\n\r\n".encode() + bytes([n % 251]) * (100 + n)


def populate(tenant: FakeTenant, folders: int = 2, per_folder: int = 10) -> None:
    tenant.add_user(TenantUser("u-adele", "adele@contoso.com", has_onedrive=False))
    for f in range(folders):
        for i in range(per_folder):
            tenant.put(ADELE, f"folder-{f}", f"m-{f}-{i}", mail(f * 100 + i))


def assert_catalog_matches_tenant(world: World, obj: BackupObject = ADELE) -> None:
    """Every live item of the tenant is live in the catalog with exactly its content, nothing
    else is live, and no item has two versions with the same version key (no duplicates)."""
    for collection_id in world.tenant.collection_ids(obj):
        expected = world.tenant.live(obj, collection_id)
        live = world.catalog.live_content(obj, collection_id)
        assert set(live) == set(expected), collection_id
        for item_id, ref in live.items():
            assert ref in world.store.durable
            assert world.store.blobs[ref] == expected[item_id]
        for item_id, rows in world.catalog.rows(obj, collection_id).items():
            keys = [row.version_key for row in rows]
            assert len(keys) == len(set(keys)), f"duplicate versions of {item_id}: {keys}"
            assert all(row.gone_at is not None for row in rows[:-1])


async def test_first_run_is_full_then_incremental_touches_only_changes() -> None:
    world = World(FakeTenant(page_size=3))
    populate(world.tenant)
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert world.tenant.content_reads == 20
    assert_catalog_matches_tenant(world)

    # Activity: one modified, one new, one deleted.
    world.tenant.put(ADELE, "folder-0", "m-0-3", mail(3, revision=1))
    world.tenant.put(ADELE, "folder-1", "m-1-new", mail(77))
    world.tenant.delete(ADELE, "folder-1", "m-1-5")
    reads, pages = world.tenant.content_reads, world.tenant.delta_pages_served
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert world.tenant.content_reads - reads == 2  # unchanged items cost no content read
    assert world.tenant.delta_pages_served - pages == 2  # one small page per folder
    (obj_result,) = result.objects
    assert (obj_result.counts.versions, obj_result.counts.removed) == (2, 1)
    assert_catalog_matches_tenant(world)
    rows = world.catalog.rows(ADELE, "folder-0")
    assert len(rows["m-0-3"]) == 2 and rows["m-0-3"][0].gone_at is not None
    assert len(rows["m-0-4"]) == 1
    assert rows["m-0-0"][0].gone_at is None
    assert world.catalog.rows(ADELE, "folder-1")["m-1-5"][-1].gone_at is not None

    # Nothing changed: no content, no new versions, one delta page per folder.
    reads, commits = world.tenant.content_reads, world.catalog.commits
    result, _ = await backup(world)
    assert world.tenant.content_reads == reads
    assert result.objects[0].counts.items == 0
    assert world.catalog.commits - commits <= 2


async def test_crash_between_content_and_record_redoes_the_page_without_loss_or_duplicates() -> None:
    world = World(FakeTenant(page_size=4))
    populate(world.tenant, folders=1, per_folder=10)
    world.catalog.crash_on_commit(after=1)  # page 1 commits, page 2 dies inside its transaction
    result, reporter = await backup(world)
    assert result.status is SessionStatus.FAILED
    assert result.objects[0].status is OutcomeStatus.FAILED
    assert any(title.startswith("[Failed] Processing mailbox adele") for title in reporter.titles)
    # The token saved is page 1's; page 2's items are not in the catalog.
    tokens = [token for _, coll, token in world.catalog.token_history if coll == "folder-0"]
    assert len(tokens) == 1
    assert len(world.catalog.live_content(ADELE, "folder-0")) == 4
    world.store.crash()  # the process died: unflushed content is gone (here: none was pending)

    # The tenant moves on meanwhile; the next run redoes page 2 and the rest.
    world.tenant.put(ADELE, "folder-0", "m-0-1", mail(1, revision=2))
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert_catalog_matches_tenant(world)
    assert len(world.catalog.rows(ADELE, "folder-0")) == 10


async def test_the_recorder_refuses_versions_whose_content_is_not_durable() -> None:
    """The fake catalog is strict about write order, so the other tests prove the engine obeys it."""

    world = World(FakeTenant())
    populate(world.tenant, folders=1, per_folder=2)

    async def no_flush() -> None:
        return None

    world.store.flush = no_flush  # type: ignore[method-assign]
    result, _ = await backup(world)
    assert result.status is SessionStatus.FAILED
    assert "write order violated" in (result.objects[0].error or "")
    assert world.catalog.live_content(ADELE, "folder-0") == {}


async def test_resync_marks_vanished_items_gone_and_reads_no_unchanged_content() -> None:
    world = World(FakeTenant(page_size=3))
    populate(world.tenant, folders=1, per_folder=9)
    await backup(world)
    world.tenant.delete(ADELE, "folder-0", "m-0-2")
    world.tenant.put(ADELE, "folder-0", "m-0-7", mail(7, revision=1))
    world.tenant.force_resync(ADELE, "folder-0")  # the old token is now refused (410)
    reads = world.tenant.content_reads
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert world.tenant.content_reads - reads == 1
    assert result.objects[0].counts.removed == 1
    assert result.objects[0].counts.unchanged == 7
    assert_catalog_matches_tenant(world)


async def test_crash_inside_a_resync_round_repeats_the_round() -> None:
    world = World(FakeTenant(page_size=2))
    populate(world.tenant, folders=1, per_folder=9)
    await backup(world)
    token_before = await world.catalog.load_token(ADELE, "folder-0")
    world.tenant.delete(ADELE, "folder-0", "m-0-8")
    for n in range(3):
        world.tenant.put(ADELE, "folder-0", f"m-0-{n}", mail(n, revision=1))
    world.tenant.force_resync(ADELE, "folder-0")
    # Resync pages: [3,4] [5,6] [7,0'] [1',2']: the third commits a version, the last one dies.
    world.catalog.crash_on_commit(after=1)
    result, _ = await backup(world)
    assert result.status is SessionStatus.FAILED
    assert world.catalog.rows(ADELE, "folder-0")["m-0-0"][-1].version_key != "v1"
    # No token was saved mid-resync: the round must be repeated whole for the diff to be right.
    assert await world.catalog.load_token(ADELE, "folder-0") == token_before
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert_catalog_matches_tenant(world)


async def test_a_deleted_folder_marks_its_items_gone_and_forgets_its_token() -> None:
    world = World(FakeTenant())
    populate(world.tenant, folders=2, per_folder=3)
    await backup(world)
    world.tenant.remove_collection(ADELE, "folder-1")
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert world.catalog.live_content(ADELE, "folder-1") == {}
    assert await world.catalog.load_token(ADELE, "folder-1") is None
    assert [c.id for c in await world.catalog.known_collections(ADELE)] == ["folder-0"]
    assert len(world.catalog.rows(ADELE, "folder-1")) == 3  # history stays for restore


class ReplayingSource:
    """Graph may repeat entries within and across pages: every page comes twice, and every
    change twice within it."""

    def __init__(self, tenant: FakeTenant) -> None:
        self.tenant = tenant

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        return await self.tenant.collections(obj)

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        async for page in self.tenant.changes(obj, collection, token):
            doubled = [change for change in page.changes for _ in range(2)]
            yield ChangePage(doubled, None, final=False, resync=page.resync)
            yield ChangePage(doubled, page.token, final=page.final, resync=page.resync)

    def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        return self.tenant.content(obj, collection, change)


async def test_replayed_changes_record_each_version_once_and_read_it_once() -> None:
    world = World(FakeTenant(page_size=4))
    world.source = ReplayingSource(world.tenant)
    populate(world.tenant, folders=1, per_folder=8)
    await backup(world)
    assert world.tenant.content_reads == 8
    world.tenant.put(ADELE, "folder-0", "m-0-0", mail(0, revision=1))
    world.tenant.delete(ADELE, "folder-0", "m-0-1")
    await backup(world)
    assert world.tenant.content_reads == 9
    assert_catalog_matches_tenant(world)


class VanishingSource(ReplayingSource):
    """The item `gone_id` is deleted between the delta listing and the content download."""

    def __init__(self, tenant: FakeTenant, gone_id: str) -> None:
        super().__init__(tenant)
        self.gone_id = gone_id

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        async for page in self.tenant.changes(obj, collection, token):
            yield page

    async def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        if change.item_id == self.gone_id:
            raise ContentGone(change.item_id)
        async for chunk in self.tenant.content(obj, collection, change):
            yield chunk


async def test_an_item_deleted_before_its_download_is_skipped() -> None:
    world = World(FakeTenant())
    populate(world.tenant, folders=1, per_folder=4)
    world.source = VanishingSource(world.tenant, "m-0-2")
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert set(world.catalog.live_content(ADELE, "folder-0")) == {"m-0-0", "m-0-1", "m-0-3"}


@pytest.mark.timeout(20)
async def test_stop_abandons_the_current_page_within_a_bound_and_keeps_what_was_recorded() -> None:
    world = World(FakeTenant(page_size=5))
    for n in range(6):
        user = world.tenant.add_user(TenantUser(f"u-{n}", f"user{n}@contoso.com", has_onedrive=False))
        for i in range(40):
            world.tenant.put(mailbox(user.id), "inbox", f"m-{i}", mail(i))
    world.tenant.content_delay = 0.01  # ~50 ms of source time per item in flight
    started = await start_backup(world, threads=3)
    await wait_until(lambda: world.catalog.commits >= 3)
    asked = time.monotonic()
    await started.run.stop()
    result = await started.result()
    assert time.monotonic() - asked < 2.0
    assert result.status is SessionStatus.STOPPED
    assert {r.status for r in result.objects} <= {OutcomeStatus.STOPPED, OutcomeStatus.SUCCESS}
    assert started.reporter.status is SessionStatus.STOPPED
    assert started.reporter.titles[-1].startswith("[Warning] Job was stopped by user")
    recorded = sum(len(world.catalog.live_content(mailbox(f"u-{n}"), "inbox")) for n in range(6))
    assert 0 < recorded < 240
    assert recorded % 5 == 0  # whole pages only, never half a page

    # What was recorded stays; the next run finishes the job with nothing lost or doubled.
    world.tenant.content_delay = 0.0
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    for n in range(6):
        assert_catalog_matches_tenant(world, mailbox(f"u-{n}"))


class SlowFlushStore(MemoryContentStore):
    """Flushes take time and only cover what was saved when they began, as a real pack upload."""

    async def flush(self) -> None:
        covered = set(self.blobs)
        self.flushes += 1
        await asyncio.sleep(0.01)
        self.durable |= covered


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_group_flush_shares_flushes_and_never_covers_a_late_ref() -> None:
    store = SlowFlushStore()
    saver = GroupFlush(store)

    async def save_then_flush(n: int) -> str:
        ref = await saver.save(one_chunk(bytes([n]) * 10))
        await saver.flush()
        assert ref in store.durable, "flush returned before the ref was durable"
        return ref

    refs = await asyncio.gather(*(save_then_flush(n) for n in range(40)))
    assert len(set(refs)) == 40
    assert store.flushes <= 3  # forty requests, shared

    # A ref saved while a flush runs needs the next flush, not the running one.
    first = asyncio.ensure_future(save_then_flush(100))
    await asyncio.sleep(0.002)
    late = await save_then_flush(101)
    await first
    assert late in store.durable


async def test_group_flush_reports_a_failed_flush_to_every_waiter() -> None:
    class BrokenStore(MemoryContentStore):
        async def flush(self) -> None:
            await asyncio.sleep(0.005)
            raise OSError("disk full")

    saver = GroupFlush(BrokenStore())
    results = await asyncio.gather(*(saver.flush() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


async def test_a_full_run_through_group_flush_keeps_write_order() -> None:
    world = World(FakeTenant(page_size=2))
    world.store = SlowFlushStore()
    world.catalog = MemoryCatalog(world.store)
    for n in range(4):
        world.tenant.add_user(TenantUser(f"u-{n}", f"user{n}@contoso.com", has_onedrive=False))
        for i in range(6):
            world.tenant.put(mailbox(f"u-{n}"), "inbox", f"m-{i}", mail(n * 10 + i))
    shared = GroupFlush(world.store)

    async def ports(task: BackupTask) -> ObjectPorts:
        return ObjectPorts(world.tenant, shared, world.catalog)

    world.ports = ports  # type: ignore[method-assign]
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert shared.inner_flushes < 12  # 12 pages committed; flushes were shared
    for n in range(4):
        assert_catalog_matches_tenant(world, mailbox(f"u-{n}"))


class ScriptedSource:
    """A source that replays scripted rounds, one per run, for version-chain cases."""

    def __init__(self, rounds: list[list[ItemChange]]) -> None:
        self.rounds = rounds
        self.reads: list[str] = []

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        return [CollectionRef("docs", "drive", "Documents")]

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        number = 0 if token is None else int(token)
        yield ChangePage(self.rounds[number], str(number + 1), final=True)

    async def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        self.reads.append(f"{change.item_id}@{change.version_key}")
        yield f"{change.item_id} at {change.version_key}".encode()


async def test_version_chains_removals_and_re_adds_within_a_page() -> None:
    def up(item: str, key: str) -> ItemChange:
        return ItemChange(item, key)

    def rm(item: str) -> ItemChange:
        return ItemChange(item, removed=True)

    source = ScriptedSource(
        [
            # Run 1: a file with its history, an item added then removed, one removed then re-added.
            [up("f1", "1"), up("f1", "2"), up("f1", "3"), up("tmp", "1"), rm("tmp"), up("x", "1")],
            # Run 2: the connector re-reports known versions of f1 and one new one; x goes and comes back.
            [up("f1", "2"), up("f1", "3"), up("f1", "4"), rm("x"), up("x", "1"), up("f1", "4")],
        ]
    )
    world = World(FakeTenant())
    world.tenant.add_user(TenantUser("u-adele", "adele@contoso.com", has_mailbox=False))
    world.source = source
    onedrive = BackupObject(ObjectKind.ONEDRIVE, "u-adele", "adele@contoso.com")
    await backup(world)
    rows = world.catalog.rows(onedrive, "docs")
    assert [r.version_key for r in rows["f1"]] == ["1", "2", "3"]
    assert [r.gone_at is None for r in rows["f1"]] == [False, False, True]
    assert "tmp" not in rows  # added and removed within the page: nothing to keep or read
    assert source.reads == ["f1@1", "f1@2", "f1@3", "x@1"]

    result, _ = await backup(world)
    rows = world.catalog.rows(onedrive, "docs")
    assert [r.version_key for r in rows["f1"]] == ["1", "2", "3", "4"]
    assert [r.version_key for r in rows["x"]] == ["1"] and rows["x"][0].gone_at is None
    assert source.reads[4:] == ["f1@4"]
    assert (result.objects[0].counts.versions, result.objects[0].counts.unchanged) == (1, 3)


# ---------------------------------------------------------------- model-based: any history, any crash

OBJECTS = [mailbox("u-a", "a@contoso.com"), mailbox("u-b", "b@contoso.com")]
FOLDERS = ["inbox", "sent", "archive"]

operation = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 7)),
    st.tuples(st.just("delete"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 7)),
    st.tuples(st.just("resync"), st.integers(0, 1), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("drop_folder"), st.integers(0, 1), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("backup"), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just("crash"), st.integers(0, 4), st.just(0), st.just(0)),
    st.tuples(st.just("drop_connection"), st.integers(0, 12), st.just(0), st.just(0)),
    st.tuples(st.just("stop"), st.integers(0, 6), st.just(0), st.just(0)),
)


async def backup_stopped_after(world: World, commits: int) -> None:
    """A run stopped by the user right after its `commits`-th page commit."""
    started = await start_backup(world, threads=2)
    original = world.catalog.record_page
    seen = 0

    async def record_then_maybe_stop(obj: BackupObject, page: PageRecord) -> None:
        nonlocal seen
        await original(obj, page)
        seen += 1
        if seen == commits:
            await started.run.stop()

    world.catalog.record_page = record_then_maybe_stop  # type: ignore[method-assign]
    try:
        await started.result()
    finally:
        del world.catalog.record_page


def check_history(world: World, obj: BackupObject) -> None:
    """Every recorded version is one the tenant really had, with its exact content."""
    for collection_id in FOLDERS:
        for item_id, rows in world.catalog.rows(obj, collection_id).items():
            for row in rows:
                assert row.content_ref in world.store.durable
                content = world.store.blobs[row.content_ref]
                assert content.startswith(f"{obj.id}/{collection_id}/{item_id}/".encode())


@settings(
    max_examples=int(os.environ.get("ENGINE_MODEL_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(operation, max_size=25), st.integers(1, 4))
def test_any_history_of_changes_crashes_and_resyncs_ends_exactly_like_the_tenant(ops, page_size) -> None:
    async def scenario() -> None:
        world = World(FakeTenant(page_size=page_size))
        for obj in OBJECTS:
            world.tenant.add_user(TenantUser(obj.id, obj.name, has_onedrive=False))
        revision = 0
        for kind, o, f, i in ops:
            obj, folder = OBJECTS[o % 2], FOLDERS[f]
            present = folder in world.tenant.collection_ids(obj)
            if kind == "put":
                revision += 1
                world.tenant.put(
                    obj, folder, f"i{i}", f"{obj.id}/{folder}/i{i}/{revision}".encode() * (i + 1)
                )
            elif kind == "delete" and present and f"i{i}" in world.tenant.live(obj, folder):
                world.tenant.delete(obj, folder, f"i{i}")
            elif kind == "resync" and present:
                world.tenant.force_resync(obj, folder)
            elif kind == "drop_folder" and present:
                world.tenant.remove_collection(obj, folder)
            elif kind == "backup":
                result, _ = await backup(world, threads=2)
                assert result.status in (SessionStatus.SUCCESS, SessionStatus.WARNING)
                for each in OBJECTS:
                    if world.tenant.collection_ids(each):
                        assert_catalog_matches_tenant(world, each)
            elif kind == "crash":
                world.catalog.crash_on_commit(after=o)
                await backup(world, threads=2)
                world.catalog.crash_on_commit(None)  # disarm if the run ended first
                world.store.crash()
            elif kind == "stop":
                await backup_stopped_after(world, commits=o)
            elif kind == "drop_connection":
                world.tenant.fail_read(after=o)
                await backup(world, threads=2)
                world.tenant.fail_read(None)
            for each in OBJECTS:
                check_history(world, each)
        await backup(world, threads=2)
        for obj in OBJECTS:
            assert_catalog_matches_tenant(world, obj)
            check_history(world, obj)
            for folder in FOLDERS:
                if folder not in world.tenant.collection_ids(obj):
                    assert world.catalog.live_content(obj, folder) == {}

    asyncio.run(scenario())
