"""The scheduler's job store over the real configuration database (SQLite and PostgreSQL): nextRun
is a compare-and-set, so of two schedulers ticking at once exactly one starts a due job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from m365vault.bootstrap import ServerConfig, build_control, ensure_defaults, open_database
from m365vault.control.enums import BackupType, PeriodicallyEvery, ScheduleType
from m365vault.control.jobs import JobInput
from m365vault.control.organizations import OnlineSettingsInput, OrganizationInput
from m365vault.control.schedule import ScheduleInput
from m365vault.engine.adapters.scheduling import DbScheduledJobs
from m365vault.engine.scheduler import Scheduler


async def test_next_run_is_a_compare_and_set_and_a_due_job_starts_once(tmp_path: Path, db_url: str) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", db_url=db_url)
    engine = open_database(config)
    try:
        control = build_control(config, engine)
        ensure_defaults(control, config.data_dir, "admin", "Admin-Password-1")
        app = OnlineSettingsInput(
            office_organization_name="sched.onmicrosoft.com",
            application_id=uuid.uuid4(),
            application_secret="s",
        )
        org = await control.organizations.add(OrganizationInput(exchange=app))
        repo_id = control.repositories.all()[0].id
        policy = ScheduleInput(type=ScheduleType.PERIODICALLY, periodically_every=PeriodicallyEvery.MINUTES15)
        job = await control.jobs.create(
            org.id,
            JobInput(name="every 15", backup_type=BackupType.EntireOrganization, repository_id=repo_id,
                     schedule_policy=policy),
        )  # fmt: skip
        started: list[uuid.UUID] = []

        async def start(job_id: uuid.UUID) -> None:
            started.append(job_id)

        store = DbScheduledJobs(engine, start)
        [listed] = await store.list_jobs()
        assert listed.id == job.id and listed.is_enabled and listed.next_run is not None
        later = listed.next_run + timedelta(minutes=15)
        assert not await store.update_next_run(job.id, listed.next_run - timedelta(seconds=1), later)
        assert await store.update_next_run(job.id, listed.next_run, later)
        assert not await store.update_next_run(job.id, listed.next_run, later)  # the old value is gone

        # Two schedulers (two servers on one database) see the job due at the same moment.
        due = later.replace(tzinfo=UTC) if later.tzinfo is None else later
        now = due + timedelta(seconds=5)

        def clock() -> datetime:
            return now

        first = Scheduler(DbScheduledJobs(engine, start), ZoneInfo("UTC"), clock)
        second = Scheduler(DbScheduledJobs(engine, start), ZoneInfo("UTC"), clock)
        for scheduler in (first, second):  # both learn the policy first (as a running server has)
            scheduler._seen_policies[job.id] = listed.schedule_policy
        await asyncio.gather(first.tick(), second.tick())
        assert started == [job.id]
        [after] = await store.list_jobs()
        assert after.next_run is not None and after.next_run.replace(tzinfo=UTC) > now
    finally:
        engine.dispose()
