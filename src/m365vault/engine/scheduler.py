"""The scheduler: starts enabled jobs when their schedule comes due.

The persisted `nextRun` of each job is the single source of truth for "what is due". Before a job
is started, its `nextRun` is moved to the following due time with a compare-and-set on the stored
value; only the caller whose compare-and-set wins starts the run. So a due time fires at most once,
across restarts and even with two schedulers on one database. The price is the one-in-a-crash case
where the process dies between the compare-and-set and the start: that due time is missed (the next
one is not), which is preferred over a double run.

Rules:
* disabled jobs never fire, and their `nextRun` is cleared (it is recomputed from "now" when the job
  is enabled again, so enabling does not fire a time that passed while it was disabled);
* a due time that arrives while the job is still running is skipped;
* a due time already served by a run that started at or after it (a manual start) is skipped;
* due times missed while the server was down fire once, at start-up, if the backup window permits;
* `nextRun` is recomputed after every due time and whenever the job's policy differs from the one
  this scheduler last saw. The control layer should also reset `nextRun` (to None or to
  `next_run(...)`) when it changes a policy or enables a job, and then call `wake()`.

`DueTimeScheduler` holds these rules for any kind of policy; `Scheduler` is it for jobs (with the
backup window), and the retention service uses it for repositories' cleanup schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from m365vault.clock import Clock, utcnow
from m365vault.engine.schedule import is_permitted, next_run
from m365vault.engine.schedule_policy import SchedulePolicy

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
P = TypeVar("P")  # a policy: says when something comes due
P_co = TypeVar("P_co", covariant=True)


class ScheduledJob(Protocol[P_co]):
    """What the scheduler needs to know about one job."""

    @property
    def id(self) -> Hashable: ...
    @property
    def is_enabled(self) -> bool: ...
    @property
    def schedule_policy(self) -> P_co: ...
    @property
    def last_run(self) -> datetime | None: ...
    @property
    def next_run(self) -> datetime | None: ...
    @property
    def is_running(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class JobScheduleState(Generic[P]):
    """A plain `ScheduledJob`, for adapters that read rows into values."""

    id: Hashable
    is_enabled: bool
    schedule_policy: P
    last_run: datetime | None = None
    next_run: datetime | None = None
    is_running: bool = False


class ScheduledJobs(Protocol[P_co]):
    """The job store as the scheduler sees it (implemented by the control layer)."""

    async def list_jobs(self) -> Sequence[ScheduledJob[P_co]]:
        """Every job, enabled or not, with its current state."""
        ...

    async def update_next_run(
        self, job_id: Hashable, expected: datetime | None, new: datetime | None
    ) -> bool:
        """Atomically set the job's nextRun to `new` if it still is `expected`; False otherwise.

        `expected` is the value exactly as `list_jobs` returned it.
        """
        ...

    async def start_job(self, job_id: Hashable, due: datetime) -> None:
        """Start a scheduled run for the due time `due` (as `{"start": null}` would)."""
        ...


class DueTimeScheduler(Generic[P]):
    """Fires due jobs; run `run()` as a task and cancel it to stop. Subclasses say when a policy
    comes due and whether a start is permitted at an instant."""

    kind = "job"  # what a scheduled thing is called in the log

    def __init__(
        self,
        jobs: ScheduledJobs[P],
        tz: ZoneInfo,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        poll_interval: timedelta = timedelta(seconds=60),
    ) -> None:
        self._jobs = jobs
        self._tz = tz
        self._clock = clock
        self._sleep = sleep
        # Re-reading the store now and then catches changes made without wake() (another process,
        # a clock step) at the cost of one cheap query a minute.
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._seen_policies: dict[Hashable, P] = {}

    def _next_due(self, policy: P, after: datetime) -> datetime | None:
        raise NotImplementedError

    def _permitted(self, policy: P, at: datetime) -> bool:
        return True

    def wake(self) -> None:
        """Re-read the jobs now (call after a job is created, changed, enabled or disabled)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # wakes that arrive during the tick below are kept for the wait
            try:
                soonest = await self.tick()
            except Exception:  # the store may be down for a while; try again after the poll interval
                log.exception("scheduler: could not read the %ss", self.kind)
                soonest = None
            await self._wait(self._delay_until(soonest))

    async def tick(self) -> datetime | None:
        """Handle every job once; return the earliest upcoming due time (None: nothing scheduled)."""
        now = self._clock()
        soonest: datetime | None = None
        jobs = await self._jobs.list_jobs()
        present = {job.id for job in jobs}
        for gone in self._seen_policies.keys() - present:  # deleted jobs
            del self._seen_policies[gone]
        for job in jobs:
            try:
                upcoming = await self._handle(job, now)
            except Exception:  # one broken job must not stop the schedule of the others
                log.exception("scheduler: %s %s could not be handled", self.kind, job.id)
                continue
            if upcoming is not None and (soonest is None or upcoming < soonest):
                soonest = upcoming
        return soonest

    async def _handle(self, job: ScheduledJob[P], now: datetime) -> datetime | None:
        stored = _as_utc(job.next_run)
        if not job.is_enabled:
            self._seen_policies.pop(job.id, None)
            if job.next_run is not None:
                await self._jobs.update_next_run(job.id, job.next_run, None)
            return None
        policy = job.schedule_policy
        if stored is None or self._seen_policies.get(job.id, policy) != policy:
            return await self._reschedule(job, policy, now)
        self._seen_policies[job.id] = policy
        if stored > now:
            return stored
        following = self._next_due(policy, now)
        if not await self._jobs.update_next_run(job.id, job.next_run, following):
            log.info("scheduler: %s %s was changed or claimed elsewhere; not started", self.kind, job.id)
            return None
        last_run = _as_utc(job.last_run)
        if job.is_running:
            log.info("scheduler: %s %s is still running; due time %s skipped", self.kind, job.id, stored)
        elif last_run is not None and last_run >= stored:
            log.info(
                "scheduler: %s %s already ran at %s for due time %s", self.kind, job.id, last_run, stored
            )
        elif not self._permitted(policy, now):
            log.info("scheduler: %s %s due at %s missed its backup window", self.kind, job.id, stored)
        else:
            log.info("scheduler: starting %s %s for due time %s", self.kind, job.id, stored)
            await self._jobs.start_job(job.id, stored)
        return following

    async def _reschedule(self, job: ScheduledJob[P], policy: P, now: datetime) -> datetime | None:
        upcoming = self._next_due(policy, now)
        if upcoming != _as_utc(job.next_run) and not await self._jobs.update_next_run(
            job.id, job.next_run, upcoming
        ):
            return None  # changed meanwhile: the next tick sees the new state
        self._seen_policies[job.id] = policy
        return upcoming

    def _delay_until(self, soonest: datetime | None) -> float:
        longest = self._poll_interval.total_seconds()
        if soonest is None:
            return longest
        return min(max((soonest - self._clock()).total_seconds(), 0.0), longest)

    async def _wait(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Scheduler(DueTimeScheduler[SchedulePolicy]):
    """Starts backup jobs by their v3 schedule policy, inside their backup window."""

    def _next_due(self, policy: SchedulePolicy, after: datetime) -> datetime | None:
        return next_run(policy, after, self._tz)

    def _permitted(self, policy: SchedulePolicy, at: datetime) -> bool:
        return is_permitted(policy, at, self._tz)


def _as_utc(value: datetime | None) -> datetime | None:
    """Stored times are UTC; SQLite hands them back naive, so naive means UTC here."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
