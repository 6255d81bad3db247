"""The content budget: what the workers hold of item content is bounded by configuration, waits
are served in order, and no wait can deadlock (an item never waits once its download started)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from m365vault.clock import FakeClock
from m365vault.engine.budget import HELD_WHOLE, UNKNOWN_SIZE, ContentBudget
from m365vault.engine.object_backup import ObjectBackup, ObjectPorts
from m365vault.engine.ports import BackupObject, ChangePage, CollectionRef, ItemChange, TenantUser
from m365vault.engine.statistics import Counts
from m365vault.engine.testing import FakeTenant, MemoryCatalog, MemoryContentStore, mailbox
from tests.engine.harness import World, backup, start_backup, wait_until


async def test_an_item_waits_until_the_budget_has_room_and_waiters_go_in_order() -> None:
    budget = ContentBudget(100)
    order: list[str] = []
    first = budget.hold(60)
    await first.__aenter__()

    async def item(name: str, size: int) -> None:
        async with budget.hold(size):
            order.append(name)

    waiting = [asyncio.create_task(item("b", 60)), asyncio.create_task(item("c", 10))]
    await asyncio.sleep(0.01)
    # "c" would fit beside "a" but must not overtake "b", which came first.
    assert order == [] and budget.used == 60
    await first.__aexit__(None, None, None)
    await asyncio.gather(*waiting)
    assert order == ["b", "c"] and budget.used == 0 and budget.peak <= 100


async def test_an_item_bigger_than_the_budget_runs_alone_when_it_is_empty() -> None:
    budget = ContentBudget(1000)
    small = budget.hold(10)
    await small.__aenter__()
    big = asyncio.create_task(budget.hold(HELD_WHOLE).__aenter__())
    await asyncio.sleep(0.01)
    assert not big.done()
    await small.__aexit__(None, None, None)
    hold = await asyncio.wait_for(big, 1)
    assert budget.used == HELD_WHOLE
    await hold.__aexit__(None, None, None)
    assert budget.used == 0


async def test_a_started_item_grows_without_waiting_up_to_what_the_repository_holds() -> None:
    budget = ContentBudget(UNKNOWN_SIZE)
    async with budget.hold(None) as hold:
        assert budget.used == UNKNOWN_SIZE
        hold.received(UNKNOWN_SIZE // 2)
        assert budget.used == UNKNOWN_SIZE  # within its reservation
        hold.received(4 * HELD_WHOLE)  # over the budget, yet no wait: it already streams
        assert budget.used == HELD_WHOLE  # the rest goes through the repository's stream windows
    assert budget.used == 0 and budget.peak == HELD_WHOLE


async def test_a_cancelled_waiter_leaves_no_charge_and_lets_the_next_one_in() -> None:
    budget = ContentBudget(100)
    first = budget.hold(80)
    await first.__aenter__()
    blocked = asyncio.create_task(budget.hold(90).__aenter__())
    behind = asyncio.create_task(budget.hold(15).__aenter__())
    await asyncio.sleep(0.01)
    assert not behind.done()
    blocked.cancel()
    hold = await asyncio.wait_for(behind, 1)  # no longer queued behind the cancelled one
    assert budget.used == 95
    await hold.__aexit__(None, None, None)
    await first.__aexit__(None, None, None)
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert budget.used == 0


async def test_a_release_between_a_cancel_and_the_cancelled_task_running_grants_it_nothing() -> None:
    # stop() cancels waiting lanes while running lanes finish: the release can come first
    budget = ContentBudget(100)
    first = budget.hold(80)
    await first.__aenter__()
    blocked = asyncio.create_task(budget.hold(90).__aenter__())
    await asyncio.sleep(0.01)
    blocked.cancel()
    await first.__aexit__(None, None, None)  # before `blocked` has run its cancellation
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert budget.used == 0
    again = await asyncio.wait_for(budget.hold(100).__aenter__(), 1)  # nothing leaked or stuck
    await again.__aexit__(None, None, None)
    assert budget.used == 0


def mailboxes(tenant: FakeTenant, users: int, per_user: int, size: int) -> None:
    for u in range(users):
        tenant.add_user(TenantUser(f"u-{u}", f"user{u}@contoso.com", has_onedrive=False))
        for i in range(per_user):
            content = f"Subject: {u}/{i}\r\n\r\n".encode() + bytes([i % 251]) * size
            tenant.put(mailbox(f"u-{u}", f"user{u}@contoso.com"), "inbox", f"m-{u}-{i}", content)


async def test_a_backup_holds_no_more_content_than_its_budget_and_completes_with_a_tiny_one() -> None:
    world = World(FakeTenant(page_size=8))
    mailboxes(world.tenant, users=6, per_user=8, size=200_000)
    world.tenant.content_delay = 0.001
    budget = 3 * UNKNOWN_SIZE  # room for 3 of the 6 x 4 items that could be in flight
    started = await start_backup(world, threads=6, content_budget=budget)
    await wait_until(lambda: started.workers.budget.used > 0)
    result = await started.result()
    assert result.status.name == "SUCCESS"
    assert world.store.saves == 48
    # Each item holds its 200 kB (more than reserved) once started; at most 3 start together.
    assert started.workers.budget.peak <= 3 * 200_100
    assert started.workers.budget.used == 0

    # A budget smaller than any item: one item at a time, and the run still ends.
    world = World(FakeTenant(page_size=8))
    mailboxes(world.tenant, users=3, per_user=4, size=50_000)
    result, _ = await backup(world, threads=3, content_budget=1)
    assert result.status.name == "SUCCESS" and world.store.saves == 12


async def test_read_ahead_holds_are_uncapped_and_covered_items_never_wait() -> None:
    budget = ContentBudget(2 * HELD_WHOLE)
    page = budget.read_ahead(3 * HELD_WHOLE)  # bigger than the budget: starts when it is empty
    async with page as held:
        assert budget.used == 3 * HELD_WHOLE
        held.received(4 * HELD_WHOLE)  # more arrived than expected: all of it counts, no wait
        assert budget.used == 4 * HELD_WHOLE
        queued = asyncio.create_task(budget.hold(10).__aenter__())
        await asyncio.sleep(0.01)
        assert not queued.done()
        # An item of the page behind that waiter: it would wait for its own page forever.
        async with budget.covered() as item:
            item.received(HELD_WHOLE)
            assert budget.used == 4 * HELD_WHOLE
        held.keep(HELD_WHOLE)  # what stays once the read's own buffers are gone: room again
        hold = await asyncio.wait_for(queued, 1)
        assert budget.used == HELD_WHOLE + 10
    await hold.__aexit__(None, None, None)
    assert budget.used == 0 and budget.peak == 4 * HELD_WHOLE


class ReadAheadSource:
    """The tenant read as an archive mailbox is: each page's contents fetched with the page, under
    one read-ahead hold of the shared budget, until the next page is asked for."""

    def __init__(self, tenant: FakeTenant, budget: ContentBudget, item_size: int) -> None:
        self._tenant = tenant
        self._budget = budget
        self._item_size = item_size  # what the page says of its items' sizes
        self._held: dict[str, bytes] = {}
        self.collections = tenant.collections

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        async for page in self._tenant.changes(obj, collection, token):
            live = [change for change in page.changes if not change.removed]
            async with self._budget.read_ahead(len(live) * self._item_size) as hold:
                for change in live:
                    pieces = [piece async for piece in self._tenant.content(obj, collection, change)]
                    self._held[change.item_id] = b"".join(pieces)
                    hold.received(len(self._held[change.item_id]))
                try:
                    yield replace(page, changes=[replace(c, read_ahead=not c.removed) for c in page.changes])
                finally:
                    for change in live:
                        self._held.pop(change.item_id, None)

    async def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        yield self._held[change.item_id]


async def test_objects_reading_pages_ahead_share_the_budget_and_never_deadlock() -> None:
    tenant = FakeTenant(page_size=4)
    mailboxes(tenant, users=8, per_user=12, size=20_000)
    store = MemoryContentStore()
    catalog = MemoryCatalog(store)
    # Room for half a page: pages go one at a time, each past the budget while it is alone in it;
    # were their items to wait on the budget too, every object would wait on its own page.
    budget = ContentBudget(40_000)
    source = ReadAheadSource(tenant, budget, 20_000)

    async def no_progress(_: Counts) -> None:
        return None

    backups = [
        ObjectBackup(
            mailbox(f"u-{u}", f"user{u}@contoso.com"),
            ObjectPorts(source, store, catalog),
            stop=asyncio.Event(),
            clock=FakeClock(),
            on_page=no_progress,
            budget=budget,
        )
        for u in range(8)
    ]
    await asyncio.wait_for(asyncio.gather(*(b.run() for b in backups)), 10)
    assert store.saves == 96 and budget.used == 0
    assert 4 * 20_000 < budget.peak <= 4 * 20_050  # one page of 4 items at a time
