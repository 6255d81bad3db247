"""Proxy workers: `threads` concurrent loops that take tasks and back up one object each.

The number of loops is the proxy's `threadsNumber` (v3 default 64): it bounds how many objects
a proxy reads at once. The workers are asyncio tasks (the connector and the repository are
async; CPU work happens off the event loop inside the repository).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from m365vault.clock import Clock
from m365vault.engine.budget import DEFAULT_BUDGET, ContentBudget
from m365vault.engine.object_backup import (
    ObjectBackup,
    ObjectPorts,
    StopRequested,
    describe_error,
)
from m365vault.engine.ports import ServiceUnavailable
from m365vault.engine.queue import (
    BackupTask,
    OutcomeStatus,
    PageProgress,
    QueueClosed,
    TaskOutcome,
    TaskQueue,
)
from m365vault.engine.statistics import Counts

PortsResolver = Callable[[BackupTask], Awaitable[ObjectPorts]]
"""Gives the ports for a task: the connector bound to its organization, the repository of its
job and the catalog of its organization."""

DEFAULT_THREADS = 64
logger = logging.getLogger(__name__)


class ProxyWorkers:
    def __init__(
        self,
        queue: TaskQueue,
        resolve: PortsResolver,
        *,
        clock: Clock,
        threads: int = DEFAULT_THREADS,
        item_concurrency: int = 4,
        content_budget: int = DEFAULT_BUDGET,
    ) -> None:
        if threads < 1:
            raise ValueError("a proxy needs at least one thread")
        self._queue = queue
        self._resolve = resolve
        self._clock = clock
        self._threads = threads
        self._item_concurrency = item_concurrency
        # One budget for every worker: what the proxy holds of item content is bounded by it, not
        # by how many workers happen to be busy.
        self.budget = ContentBudget(content_budget)
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._loops:
            raise RuntimeError("workers already started")
        self._loops = [
            asyncio.create_task(self._loop(), name=f"proxy-worker-{n}") for n in range(self._threads)
        ]

    async def close(self) -> None:
        """Stop taking tasks and cancel the loops (runs should be stopped first)."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []

    async def __aenter__(self) -> ProxyWorkers:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _loop(self) -> None:
        while True:
            try:
                task = await self._queue.take()
            except QueueClosed:
                return
            await self.run_task(task)

    async def run_task(self, task: BackupTask) -> TaskOutcome:
        """Back up one object and publish its outcome; never raises for a failed object."""
        stop = self._queue.stop_signal(task.run_id)
        total = Counts()
        if stop.is_set():
            outcome = TaskOutcome(task.run_id, task, OutcomeStatus.STOPPED)
            await self._queue.publish(outcome)
            return outcome

        async def on_page(counts: Counts) -> None:
            nonlocal total
            total = total + counts
            await self._queue.publish(PageProgress(task.run_id, task.obj, counts))

        status, error = OutcomeStatus.SUCCESS, None
        try:
            ports = await self._resolve(task)
            backup = ObjectBackup(
                task.obj,
                ports,
                stop=stop,
                clock=self._clock,
                on_page=on_page,
                item_concurrency=self._item_concurrency,
                budget=self.budget,
            )
            await backup.run()
            if backup.total.skipped:
                status = OutcomeStatus.WARNING
                more = backup.total.skipped - len(backup.skipped_items)
                count = backup.total.skipped
                noun = "item" if count == 1 else "items"
                error = f"{count} {noun} could not be read: " + "; ".join(backup.skipped_items)
                error += f"; and {more} more" if more > 0 else ""
        except StopRequested:
            status = OutcomeStatus.STOPPED
        except ServiceUnavailable as exc:  # configuration, not a fault: a warning, not a failure
            status, error = OutcomeStatus.WARNING, str(exc)
        except Exception as exc:  # the run decides about retries; the worker carries on
            status, error = OutcomeStatus.FAILED, describe_error(exc)
            logger.warning("run %s: %s failed", task.run_id, task.obj.describe(), exc_info=True)
            if stop.is_set():
                status = OutcomeStatus.STOPPED
        outcome = TaskOutcome(task.run_id, task, status, total, error)
        with contextlib.suppress(Exception):
            await self._queue.publish(outcome)
        return outcome
