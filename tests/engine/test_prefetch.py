"""Incremental runs with a source that reads first pages ahead (as `$batch` does): groups of
collections are prefetched with their saved tokens, and unchanged collections' new tokens are
saved together in one transaction per group, never ahead of what the catalog holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from m365vault.engine.object_backup import GROUP
from m365vault.engine.ports import BackupObject, ChangePage, CollectionRef, ItemChange, SessionStatus
from m365vault.engine.testing import FakeTenant
from tests.engine.harness import World, backup
from tests.engine.test_worker import ADELE, assert_catalog_matches_tenant, mail, populate


class PrefetchingTenant:
    """The fake tenant as a `PrefetchingSource`: prefetch records what it was asked for."""

    def __init__(self, tenant: FakeTenant) -> None:
        self.tenant = tenant
        self.prefetched: list[list[tuple[str, str | None]]] = []

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        return await self.tenant.collections(obj)

    async def prefetch(self, obj: BackupObject, starts: Sequence[tuple[CollectionRef, str | None]]) -> None:
        self.prefetched.append([(collection.id, token) for collection, token in starts])

    def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        return self.tenant.changes(obj, collection, token)

    def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        return self.tenant.content(obj, collection, change)


def saved_tokens(world: World) -> dict[str, str]:
    latest: dict[str, str] = {}
    for _, collection, token in world.catalog.token_history:
        latest[collection] = token
    return latest


async def test_groups_are_prefetched_and_quiet_tokens_saved_together() -> None:
    folders = GROUP + 5
    world = World(FakeTenant(page_size=50))
    source = PrefetchingTenant(world.tenant)
    world.source = source
    populate(world.tenant, folders=folders, per_folder=2)
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert [len(group) for group in source.prefetched] == [GROUP, 5]
    assert all(token is None for group in source.prefetched for _, token in group)

    world.tenant.put(ADELE, "folder-3", "m-3-new", mail(303))
    before, commits = saved_tokens(world), world.catalog.commits
    source.prefetched.clear()
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    # Each group was read ahead from the tokens the catalog held.
    assert dict(pair for group in source.prefetched for pair in group) == before
    # One commit for the changed folder, one per group for the 24 unchanged ones.
    assert world.catalog.commits - commits == 1 + 2
    after = saved_tokens(world)
    assert set(after) == set(before) and all(after[c] != before[c] for c in before)
    assert_catalog_matches_tenant(world)


async def test_a_failed_quiet_commit_keeps_the_old_tokens_and_the_next_run_catches_up() -> None:
    world = World(FakeTenant(page_size=50))
    populate(world.tenant, folders=3, per_folder=2)
    await backup(world)
    world.tenant.put(ADELE, "folder-0", "m-0-new", mail(7))
    before = saved_tokens(world)
    world.catalog.crash_on_commit(after=1)  # folder-0's page commits; the quiet group's dies
    result, _ = await backup(world)
    assert result.status is SessionStatus.FAILED
    after = saved_tokens(world)
    assert after["folder-0"] != before["folder-0"]
    assert after["folder-1"] == before["folder-1"] and after["folder-2"] == before["folder-2"]

    world.tenant.put(ADELE, "folder-2", "m-2-new", mail(9))
    result, _ = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert_catalog_matches_tenant(world)
    assert all(saved_tokens(world)[c] != before[c] for c in before)
