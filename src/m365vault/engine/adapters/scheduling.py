"""The job table as the scheduler's `ScheduledJobs`, and the scheduler task of a server.

`update_next_run` is a real compare-and-set (`UPDATE ... WHERE next_run IS expected`): only one
scheduler (or process) wins a due time. Jobs without a schedule policy are not listed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, exists, select, update

from m365vault.clock import Clock
from m365vault.db.config_tables import Job, JobSession
from m365vault.engine.schedule_policy import SchedulePolicy
from m365vault.engine.scheduler import JobScheduleState, ScheduledJob, Scheduler

log = logging.getLogger(__name__)


class DbScheduledJobs:
    def __init__(self, engine: Engine, start: Callable[[uuid.UUID], Awaitable[object]]) -> None:
        self._engine = engine
        self._start = start

    async def list_jobs(self) -> Sequence[ScheduledJob]:
        def read() -> list[ScheduledJob]:
            running = exists().where(JobSession.job_id == Job.id, JobSession.status == "Running")
            query = select(Job.id, Job.is_enabled, Job.schedule_policy, Job.last_run, Job.next_run, running)
            found: list[ScheduledJob] = []
            with self._engine.connect() as conn:
                for row in conn.execute(query):
                    if not row[2]:
                        continue
                    try:
                        policy = SchedulePolicy.from_v3(row[2])
                    except ValueError:
                        log.warning("job %s has an unreadable schedule policy; not scheduled", row[0])
                        continue
                    found.append(JobScheduleState(row[0], bool(row[1]), policy, row[3], row[4], bool(row[5])))
            return found

        return await asyncio.to_thread(read)

    async def update_next_run(
        self, job_id: Hashable, expected: datetime | None, new: datetime | None
    ) -> bool:
        def write() -> bool:
            current = Job.next_run.is_(None) if expected is None else Job.next_run == expected
            with self._engine.begin() as conn:
                done = conn.execute(update(Job).where(Job.id == job_id, current).values(next_run=new))
                return bool(done.rowcount)

        return await asyncio.to_thread(write)

    async def start_job(self, job_id: Hashable, due: datetime) -> None:
        assert isinstance(job_id, uuid.UUID)
        try:
            await self._start(job_id)
        except Exception:
            log.exception("scheduler: job %s could not be started for %s", job_id, due)


def start_scheduler(
    engine: Engine, start: Callable[[uuid.UUID], Awaitable[object]], tz: ZoneInfo, clock: Clock
) -> tuple[Scheduler, asyncio.Task[None]]:
    scheduler = Scheduler(DbScheduledJobs(engine, start), tz, clock)
    return scheduler, asyncio.create_task(scheduler.run(), name="scheduler")
