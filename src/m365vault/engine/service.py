"""The engine as the server holds it: one queue, one proxy's workers, the runs in progress.

control/ calls `start_run` for `{"start": null}` (after creating the job session row) and
`stop_run` for `{"stop": null}`; the scheduler calls `start_run` too. The engine keys runs by
their job session id; which job is running is control's bookkeeping.
"""

from __future__ import annotations

import asyncio

from m365vault.clock import Clock
from m365vault.engine.budget import DEFAULT_BUDGET, ContentBudget
from m365vault.engine.ports import SessionReporter, TenantDirectory
from m365vault.engine.queue import InProcessQueue, TaskQueue
from m365vault.engine.run import BackupRun, RunRequest, RunResult, Sleep, StopReason
from m365vault.engine.worker import DEFAULT_THREADS, PortsResolver, ProxyWorkers


class RunAlreadyActive(Exception):
    pass


class BackupEngine:
    def __init__(
        self,
        resolve: PortsResolver,
        *,
        clock: Clock,
        threads: int = DEFAULT_THREADS,
        content_budget: int = DEFAULT_BUDGET,
        queue: TaskQueue | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._queue = queue or InProcessQueue()
        self._clock = clock
        self._sleep = sleep
        self._workers = ProxyWorkers(
            self._queue, resolve, clock=clock, threads=threads, content_budget=content_budget
        )
        self._runs: dict[str, tuple[BackupRun, asyncio.Task[RunResult]]] = {}

    @property
    def budget(self) -> ContentBudget:
        """The workers' content budget (sources that read content ahead hold it too)."""
        return self._workers.budget

    async def start(self) -> None:
        await self._workers.start()

    async def close(self) -> None:
        """Stop every run (they end Stopped, recorded pages stay), then the workers."""
        for run_id in list(self._runs):
            await self.stop_run(run_id)
        await asyncio.gather(*(task for _, task in self._runs.values()), return_exceptions=True)
        await self._workers.close()
        await self._queue.close()

    async def start_run(
        self, request: RunRequest, *, directory: TenantDirectory, reporter: SessionReporter
    ) -> asyncio.Task[RunResult]:
        """Begin a run in the background; the task's result is the run's result."""
        if request.run_id in self._runs:
            raise RunAlreadyActive(f"run {request.run_id} is already active")
        run = BackupRun(
            request,
            directory=directory,
            queue=self._queue,
            reporter=reporter,
            clock=self._clock,
            sleep=self._sleep,
        )
        task = asyncio.create_task(run.execute(), name=f"backup-run-{request.run_id}")
        self._runs[request.run_id] = (run, task)
        task.add_done_callback(lambda _: self._runs.pop(request.run_id, None))
        return task

    def is_active(self, run_id: str) -> bool:
        return run_id in self._runs

    def run(self, run_id: str) -> BackupRun | None:
        """The live run (for its `progress` and `statistics`), None once it ended."""
        entry = self._runs.get(run_id)
        return entry[0] if entry else None

    async def stop_run(self, run_id: str, reason: StopReason = StopReason.USER) -> bool:
        """Ask a run to stop; False when it is not active. Await the task from `start_run` to
        know when it has ended (workers abandon their page within seconds)."""
        entry = self._runs.get(run_id)
        if entry is None:
            return False
        await entry[0].stop(reason)
        return True
