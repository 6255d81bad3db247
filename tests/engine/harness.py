"""Wires the engine to the in-memory ports the way the server wires it to the real ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from m365vault.clock import Clock, FakeClock
from m365vault.engine.budget import DEFAULT_BUDGET
from m365vault.engine.object_backup import ObjectPorts
from m365vault.engine.planner import JobScope
from m365vault.engine.ports import ChangeSource
from m365vault.engine.queue import BackupTask, InProcessQueue
from m365vault.engine.run import BackupRun, RetryPolicy, RunRequest, RunResult, Sleep
from m365vault.engine.testing import FakeTenant, MemoryCatalog, MemoryContentStore, RecordingReporter
from m365vault.engine.worker import ProxyWorkers


@dataclass
class World:
    """One organization, its repository and its catalog, surviving across runs."""

    tenant: FakeTenant = field(default_factory=FakeTenant)
    store: MemoryContentStore = field(default_factory=MemoryContentStore)
    catalog: MemoryCatalog = field(init=False)
    source: ChangeSource | None = None  # a wrapper around the tenant, when a test needs one
    runs: int = 0

    def __post_init__(self) -> None:
        self.catalog = MemoryCatalog(self.store)

    async def ports(self, task: BackupTask) -> ObjectPorts:
        return ObjectPorts(self.source or self.tenant, self.store, self.catalog)


@dataclass
class Started:
    run: BackupRun
    reporter: RecordingReporter
    task: asyncio.Task[RunResult]
    workers: ProxyWorkers
    queue: InProcessQueue

    async def result(self) -> RunResult:
        try:
            return await self.task
        finally:
            await self.workers.close()
            await self.queue.close()


async def start_backup(
    world: World,
    scope: JobScope | None = None,
    *,
    threads: int = 4,
    retry: RetryPolicy | None = None,
    deadline: datetime | None = None,
    clock: Clock | None = None,
    sleep: Sleep = asyncio.sleep,
    content_budget: int = DEFAULT_BUDGET,
) -> Started:
    world.runs += 1
    queue = InProcessQueue()
    clock = clock or FakeClock()
    reporter = RecordingReporter()
    request = RunRequest(
        f"run-{world.runs}",
        "org-1",
        "contoso",
        scope or JobScope(entire_organization=True),
        retry or RetryPolicy(),
        deadline,
    )
    run = BackupRun(request, directory=world.tenant, queue=queue, reporter=reporter, clock=clock, sleep=sleep)
    workers = ProxyWorkers(queue, world.ports, clock=clock, threads=threads, content_budget=content_budget)
    await workers.start()
    task = asyncio.create_task(run.execute())
    return Started(run, reporter, task, workers, queue)


async def backup(
    world: World, scope: JobScope | None = None, **options
) -> tuple[RunResult, RecordingReporter]:
    started = await start_backup(world, scope, **options)
    return await started.result(), started.reporter


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a condition of the in-memory world (the fakes have no events to wait on)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
