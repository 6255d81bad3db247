"""The engine's own cost: a full and an incremental run over in-memory ports, against the same
ports driven by the bare minimum loop (page -> save each item -> flush -> record) in the same run.

The ratio engine/bare says what planning, the queue, workers, metering, stop handling, replay
collapse and session reporting cost on top of the ports; with real ports (Graph latency, zstd,
encryption) the ports dominate and this ratio bounds the engine's share.
"""

from __future__ import annotations

import asyncio
import time

from m365vault.clock import FakeClock
from m365vault.engine.object_backup import ObjectPorts
from m365vault.engine.planner import JobScope
from m365vault.engine.ports import ItemVersion, PageRecord, TenantUser
from m365vault.engine.queue import BackupTask, InProcessQueue
from m365vault.engine.run import BackupRun, RunRequest
from m365vault.engine.testing import (
    FakeTenant,
    MemoryCatalog,
    MemoryContentStore,
    RecordingReporter,
    mailbox,
)
from m365vault.engine.worker import ProxyWorkers

MAILBOXES = 16
ITEMS = 400
SIZE = 4096
PAGE = 100


def tenant() -> FakeTenant:
    t = FakeTenant(page_size=PAGE)
    for n in range(MAILBOXES):
        t.add_user(TenantUser(f"u-{n}", f"user{n}@contoso.com", has_onedrive=False))
        for i in range(ITEMS):
            t.put(mailbox(f"u-{n}"), "inbox", f"m-{i}", (f"{n}-{i}-".encode() * SIZE)[:SIZE])
    return t


async def engine_run(t: FakeTenant, store: MemoryContentStore, catalog: MemoryCatalog, n: int) -> float:
    queue = InProcessQueue()
    clock = FakeClock()

    async def ports(task: BackupTask) -> ObjectPorts:
        return ObjectPorts(t, store, catalog)

    request = RunRequest(f"run-{n}", "org", "contoso", JobScope(True))
    run = BackupRun(request, directory=t, queue=queue, reporter=RecordingReporter(), clock=clock)
    started = time.perf_counter()
    async with ProxyWorkers(queue, ports, clock=clock, threads=8):
        await run.execute()
    return time.perf_counter() - started


async def bare_run(t: FakeTenant, store: MemoryContentStore, catalog: MemoryCatalog) -> float:
    clock = FakeClock()
    started = time.perf_counter()
    for n in range(MAILBOXES):
        obj = mailbox(f"u-{n}")
        for collection in await t.collections(obj):
            token = await catalog.load_token(obj, collection.id)
            async for page in t.changes(obj, collection, token):
                versions = []
                for change in page.changes:
                    ref = await store.save(t.content(obj, collection, change))
                    versions.append(ItemVersion(change.item_id, change.version_key, ref, SIZE))
                await store.flush()
                await catalog.record_page(obj, PageRecord(collection, versions, [], page.token, clock()))
    return time.perf_counter() - started


async def measure() -> None:
    items = MAILBOXES * ITEMS
    t = tenant()
    bare_store = MemoryContentStore()
    bare = await bare_run(t, bare_store, MemoryCatalog(bare_store))
    store = MemoryContentStore()
    catalog = MemoryCatalog(store)
    full = await engine_run(t, store, catalog, 1)
    for n in range(MAILBOXES // 10 + 1):  # touch ~1 % of the items
        for i in range(0, ITEMS, 25):
            t.put(mailbox(f"u-{n}"), "inbox", f"m-{i}", b"changed" * 100)
    incremental = await engine_run(t, store, catalog, 2)
    mb = items * SIZE / 1e6
    print(f"items: {items} in {MAILBOXES} mailboxes, {mb:.1f} MB, pages of {PAGE}")
    print(f"bare loop over the ports : {bare:6.3f} s  {items / bare:9.0f} items/s  {mb / bare:7.1f} MB/s")
    print(f"engine, full run         : {full:6.3f} s  {items / full:9.0f} items/s  {mb / full:7.1f} MB/s")
    print(f"engine/bare throughput   : {bare / full:.2f}")
    print(f"engine, incremental (~1%): {incremental:6.3f} s  = {incremental / full:.1%} of the full run")


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
