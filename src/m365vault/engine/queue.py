"""The task queue between a run and the proxy workers, and the in-process implementation.

A run puts one task per object; workers take tasks, publish a progress event after every
committed page and an outcome at the end; the run reads its own events. A stop request reaches
every worker holding a task of that run through the run's stop signal. The protocol is shaped so a
NATS JetStream work queue (tasks), a subject per run (events) and a stop subject can implement it
for scale-out proxies.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from dataclasses import dataclass, field
from typing import Protocol

from m365vault.engine.ports import BackupObject
from m365vault.engine.statistics import Counts


@dataclass(frozen=True)
class BackupTask:
    run_id: str
    organization_id: str
    obj: BackupObject
    attempt: int = 1


class OutcomeStatus(enum.Enum):
    SUCCESS = "Success"
    WARNING = "Warning"  # backed up, but some unreadable items were skipped (`error` names them)
    FAILED = "Failed"
    STOPPED = "Stopped"


@dataclass(frozen=True)
class PageProgress:
    """One committed page: what it added to the run's statistics."""

    run_id: str
    obj: BackupObject
    counts: Counts


@dataclass(frozen=True)
class TaskOutcome:
    run_id: str
    task: BackupTask
    status: OutcomeStatus
    counts: Counts = field(default_factory=Counts)
    error: str | None = None


TaskEvent = PageProgress | TaskOutcome


class StopSignal(Protocol):
    """Set once the run is stopping (`asyncio.Event` satisfies it)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> bool: ...


class QueueClosed(Exception):
    """`take` on a closed queue: the worker should exit."""


class TaskQueue(Protocol):
    async def open_run(self, run_id: str) -> None:
        """Start receiving the run's events; call before putting its tasks."""
        ...

    async def close_run(self, run_id: str) -> None: ...

    async def put(self, task: BackupTask) -> None: ...

    async def take(self) -> BackupTask:
        """The next task, waiting for one; raises QueueClosed once the queue is closed."""
        ...

    async def publish(self, event: TaskEvent) -> None: ...

    async def next_event(self, run_id: str) -> TaskEvent: ...

    async def request_stop(self, run_id: str) -> None:
        """Stop the run: queued tasks end Stopped without running, running ones are signalled."""
        ...

    def stop_signal(self, run_id: str) -> StopSignal:
        """The run's stop signal; already set for a run that is not open (a stale task)."""
        ...

    async def close(self) -> None: ...


class InProcessQueue:
    """The embedded deployment's queue: asyncio queues in the server's event loop."""

    def __init__(self) -> None:
        self._tasks: collections.deque[BackupTask] = collections.deque()
        self._ready = asyncio.Condition()
        self._events: dict[str, asyncio.Queue[TaskEvent]] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._closed = False

    async def open_run(self, run_id: str) -> None:
        if run_id in self._events:
            raise ValueError(f"run {run_id} is already open")
        self._events[run_id] = asyncio.Queue()
        self._stops[run_id] = asyncio.Event()

    async def close_run(self, run_id: str) -> None:
        self._events.pop(run_id, None)
        stop = self._stops.pop(run_id, None)
        if stop is not None:
            stop.set()  # a task still held by a worker must not keep running for nobody

    async def put(self, task: BackupTask) -> None:
        if self._closed:
            raise QueueClosed("the task queue is closed")
        async with self._ready:
            self._tasks.append(task)
            self._ready.notify()

    async def take(self) -> BackupTask:
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._tasks) or self._closed)
            if self._closed:
                raise QueueClosed("the task queue is closed")
            return self._tasks.popleft()

    async def publish(self, event: TaskEvent) -> None:
        events = self._events.get(event.run_id)
        if events is not None:  # events of a closed run have nobody to read them
            events.put_nowait(event)

    async def next_event(self, run_id: str) -> TaskEvent:
        return await self._events[run_id].get()

    async def request_stop(self, run_id: str) -> None:
        stop = self._stops.get(run_id)
        if stop is None:
            return
        stop.set()
        async with self._ready:
            dropped = [task for task in self._tasks if task.run_id == run_id]
            kept = [task for task in self._tasks if task.run_id != run_id]
            self._tasks = collections.deque(kept)
        for task in dropped:
            await self.publish(TaskOutcome(run_id, task, OutcomeStatus.STOPPED))

    def stop_signal(self, run_id: str) -> StopSignal:
        stop = self._stops.get(run_id)
        if stop is None:
            stale = asyncio.Event()
            stale.set()
            return stale
        return stop

    async def close(self) -> None:
        async with self._ready:
            self._closed = True
            self._ready.notify_all()

    def pending(self) -> int:
        return len(self._tasks)
