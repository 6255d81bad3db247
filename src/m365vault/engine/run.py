"""One backup run (a job session): plan, dispatch, collect, retry, report, finish.

The caller (control/) has created the job session row (status Running) and hands a
`SessionReporter` bound to it. The run logs `[Success] Job started`, connects to the organization
by planning through the directory, puts one task per object on the queue, follows the workers'
page events for live `progress` and `statistics`, retries failed objects `retries` times after
`wait_minutes`, and finishes the session:

- Stopped: a stop was requested, or the backup window ended (`deadline`);
- Failed: the run could not start (planning failed) or every object failed after its retries;
- Warning: some objects failed after their retries, or skipped unreadable items, or the plan had
  warnings (a selected object is missing), or there was nothing to back up;
- Success otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from m365vault.clock import Clock
from m365vault.engine.object_backup import StopRequested, describe_error, until_stopped
from m365vault.engine.planner import JobScope, Plan, plan_backup
from m365vault.engine.ports import (
    BackupObject,
    LogItem,
    LogStatus,
    SessionReporter,
    SessionStatistics,
    SessionStatus,
    TenantDirectory,
)
from m365vault.engine.queue import (
    BackupTask,
    OutcomeStatus,
    PageProgress,
    TaskOutcome,
    TaskQueue,
)
from m365vault.engine.statistics import Counts, human_bytes, session_statistics

Sleep = Callable[[float], Awaitable[None]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry failed objects `retries` more times, `wait_minutes` after each pass."""

    retries: int = 0
    wait_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.wait_minutes < 0:
            raise ValueError("retries and wait_minutes must not be negative")


@dataclass(frozen=True)
class RunRequest:
    run_id: str  # the job session id
    organization_id: str
    organization_name: str
    scope: JobScope
    retry: RetryPolicy = RetryPolicy()
    deadline: datetime | None = None  # end of the backup window; None: no window


class StopReason(enum.Enum):
    USER = "user"
    WINDOW = "window"


@dataclass(frozen=True)
class ObjectResult:
    obj: BackupObject
    status: OutcomeStatus
    attempts: int
    counts: Counts
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    status: SessionStatus
    objects: tuple[ObjectResult, ...]
    statistics: SessionStatistics
    progress: int
    plan: Plan | None = None
    stop_reason: StopReason | None = None


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


class BackupRun:
    def __init__(
        self,
        request: RunRequest,
        *,
        directory: TenantDirectory,
        queue: TaskQueue,
        reporter: SessionReporter,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        progress_interval: float = 1.0,
    ) -> None:
        self.request = request
        self._directory = directory
        self._queue = queue
        self._reporter = reporter
        self._clock = clock
        self._sleep = sleep
        self._progress_interval = progress_interval
        self._stop = asyncio.Event()
        self.stop_reason: StopReason | None = None
        self.total = Counts()
        self.progress = 0
        self._started = time.monotonic()
        self._last_push = 0.0
        self._per_object: dict[tuple[str, str], Counts] = {}

    # ------------------------------------------------------------ control

    async def stop(self, reason: StopReason = StopReason.USER) -> None:
        """Ask the run to stop; workers abandon their current page, recorded pages stay."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()
        await self._queue.request_stop(self.request.run_id)

    @property
    def statistics(self) -> SessionStatistics:
        return session_statistics(self.total, time.monotonic() - self._started)

    # ------------------------------------------------------------ the run

    async def execute(self) -> RunResult:
        self._started = time.monotonic()
        await self._queue.open_run(self.request.run_id)
        watchdog = asyncio.create_task(self._watch_deadline()) if self.request.deadline else None
        try:
            return await self._execute()
        except Exception as exc:  # the session must end even if the reporter or queue broke
            with contextlib.suppress(Exception):
                await self._log(LogStatus.FAILED, f"Job failed: {describe_error(exc)}")
                await self._reporter.finish(SessionStatus.FAILED, self._clock())
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await self._queue.close_run(self.request.run_id)

    async def _execute(self) -> RunResult:
        request = self.request
        await self._log(LogStatus.SUCCESS, f"Job started at {_stamp(self._clock())}")
        try:
            plan = await until_stopped(self._stop, plan_backup(request.scope, self._directory))
        except StopRequested:
            return await self._finish((), None)
        except Exception as exc:
            await self._log(
                LogStatus.FAILED,
                f"Failed to connect to organization {request.organization_name}: {describe_error(exc)}",
            )
            return await self._finish((), None, could_not_start=True)
        await self._log(LogStatus.SUCCESS, f"Connected to organization {request.organization_name}")
        for warning in plan.warnings:
            await self._log(LogStatus.WARNING, warning)
        if plan.objects:
            await self._log(LogStatus.SUCCESS, f"Found {len(plan.objects)} objects to process")
        else:
            await self._log(LogStatus.WARNING, "No objects to process")
        results = await self._dispatch(plan)
        return await self._finish(results, plan)

    async def _dispatch(self, plan: Plan) -> tuple[ObjectResult, ...]:
        retry = self.request.retry
        final: dict[tuple[str, str], ObjectResult] = {}
        pending = list(plan.objects)
        attempt = 1
        while pending and not self._stop.is_set():
            for obj in pending:
                task = BackupTask(self.request.run_id, self.request.organization_id, obj, attempt)
                await self._queue.put(task)
            will_retry: list[BackupObject] = []
            settle = functools.partial(self._settle, attempt=attempt, final=final, will_retry=will_retry)
            await self._collect(len(pending), settle)
            if not will_retry:
                break
            try:
                await until_stopped(self._stop, self._sleep(retry.wait_minutes * 60))
            except StopRequested:
                for obj in will_retry:  # the retry will not happen: their failure is final
                    result = final[obj.key]
                    await self._log(LogStatus.FAILED, f"Processing {obj.describe()} failed: {result.error}")
                break
            retrying = set(will_retry)
            pending = [obj for obj in plan.objects if obj in retrying]
            attempt += 1
        # Objects never dispatched (stop before their pass) count as stopped.
        for obj in plan.objects:
            final.setdefault(obj.key, ObjectResult(obj, OutcomeStatus.STOPPED, attempt, Counts(), None))
        return tuple(final[obj.key] for obj in plan.objects)

    async def _settle(
        self,
        outcome: TaskOutcome,
        *,
        attempt: int,
        final: dict[tuple[str, str], ObjectResult],
        will_retry: list[BackupObject],
    ) -> None:
        """Record one object's outcome as it arrives (a pass can take hours: log it now)."""
        retry = self.request.retry
        obj = outcome.task.obj
        counts = self._per_object.get(obj.key, Counts())
        final[obj.key] = ObjectResult(obj, outcome.status, attempt, counts, outcome.error)
        retryable = attempt <= retry.retries and not self._stop.is_set()
        if outcome.status is OutcomeStatus.FAILED and retryable:
            will_retry.append(obj)
            await self._log(
                LogStatus.WARNING,
                f"Processing {obj.describe()} failed (attempt {attempt}), retrying in "
                f"{retry.wait_minutes:g} minutes: {outcome.error}",
            )
        else:
            await self._object_done(obj, outcome, counts)

    async def _collect(self, expected: int, settle: Callable[[TaskOutcome], Awaitable[None]]) -> None:
        settled = 0
        while settled < expected:
            event = await self._queue.next_event(self.request.run_id)
            if isinstance(event, PageProgress):
                self.total = self.total + event.counts
                key = event.obj.key
                self._per_object[key] = self._per_object.get(key, Counts()) + event.counts
                await self._push_progress()
            else:
                settled += 1
                await settle(event)

    async def _object_done(self, obj: BackupObject, outcome: TaskOutcome, counts: Counts) -> None:
        if outcome.status is OutcomeStatus.SUCCESS:
            self.progress += 1
            await self._log(
                LogStatus.SUCCESS,
                f"Processing {obj.describe()} finished: {counts.versions} items "
                f"({human_bytes(counts.bytes)}) backed up, {counts.removed} removed",
            )
        elif outcome.status is OutcomeStatus.WARNING:
            self.progress += 1
            await self._log(
                LogStatus.WARNING,
                f"Processing {obj.describe()} finished with warnings: {counts.versions} items "
                f"({human_bytes(counts.bytes)}) backed up, {counts.removed} removed; {outcome.error}",
            )
        elif outcome.status is OutcomeStatus.FAILED:
            self.progress += 1
            await self._log(LogStatus.FAILED, f"Processing {obj.describe()} failed: {outcome.error}")
        else:
            await self._log(
                LogStatus.WARNING,
                f"Processing {obj.describe()} was stopped: {counts.versions} items "
                f"({human_bytes(counts.bytes)}) backed up before the stop",
            )
        await self._push_progress(force=True)

    async def _push_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_push >= self._progress_interval:
            self._last_push = now
            await self._best_effort(self._reporter.progress(self.progress, self.statistics))

    async def _watch_deadline(self) -> None:
        deadline = self.request.deadline
        assert deadline is not None
        while True:
            remaining = (deadline - self._clock()).total_seconds()
            if remaining <= 0:
                await self.stop(StopReason.WINDOW)
                return
            await self._sleep(min(remaining, 60.0))

    # ------------------------------------------------------------ the end

    def _status(
        self, results: tuple[ObjectResult, ...], plan: Plan | None, could_not_start: bool
    ) -> SessionStatus:
        if self.stop_reason is not None:
            return SessionStatus.STOPPED
        if could_not_start or plan is None:
            return SessionStatus.FAILED
        failed = sum(1 for result in results if result.status is OutcomeStatus.FAILED)
        if results and failed == len(results):
            return SessionStatus.FAILED
        warned = any(result.status is OutcomeStatus.WARNING for result in results)
        if failed or warned or plan.warnings or not results:
            return SessionStatus.WARNING
        return SessionStatus.SUCCESS

    async def _finish(
        self, results: tuple[ObjectResult, ...], plan: Plan | None, could_not_start: bool = False
    ) -> RunResult:
        status = self._status(results, plan, could_not_start)
        now = self._clock()
        done = sum(1 for result in results if result.status is not OutcomeStatus.STOPPED)
        summary = (
            f": {done} of {len(results)} objects processed, {self.total.versions} items "
            f"({human_bytes(self.total.bytes)}) backed up, {self.total.removed} removed"
            if plan is not None
            else ""
        )
        if status is SessionStatus.STOPPED:
            if self.stop_reason is StopReason.WINDOW:
                await self._log(
                    LogStatus.WARNING,
                    f"Job was terminated at {_stamp(now)}: the backup window ended{summary}",
                )
            else:
                await self._log(LogStatus.WARNING, f"Job was stopped by user at {_stamp(now)}{summary}")
        elif status is SessionStatus.SUCCESS:
            await self._log(LogStatus.SUCCESS, f"Job finished at {_stamp(now)}{summary}")
        elif status is SessionStatus.WARNING:
            await self._log(LogStatus.WARNING, f"Job finished with warnings at {_stamp(now)}{summary}")
        else:
            await self._log(LogStatus.FAILED, f"Job failed at {_stamp(now)}{summary}")
        statistics = self.statistics
        await self._best_effort(self._reporter.progress(self.progress, statistics))
        await self._reporter.finish(status, self._clock())
        logger.info("run %s ended %s: %d objects", self.request.run_id, status.value, len(results))
        return RunResult(status, results, statistics, self.progress, plan, self.stop_reason)

    async def _log(self, status: LogStatus, text: str) -> None:
        now = self._clock()
        await self._best_effort(self._reporter.log(LogItem(status, f"[{status.value}] {text}", now, now)))

    async def _best_effort(self, update: Awaitable[None]) -> None:
        """A log or progress write that fails (a busy database) must not abort the backup;
        the final status write in `_finish` is not best-effort."""
        try:
            await update
        except Exception:
            logger.warning("run %s: session update failed", self.request.run_id, exc_info=True)
