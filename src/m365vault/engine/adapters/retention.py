"""Each repository's retention on its own cleanup schedule: the catalog's retention pass, then both
phases of the repository's prune.

When: `RetentionScheduler` is the job scheduler's due-time machinery over
`backup_repositories.retention_next_pass` (compare-and-set, so one server runs a due pass once).
A pass whose time came while the server was down runs once at start-up; a due time that comes
while the repository's previous pass still runs is skipped; a failed pass is logged and the
repository's next pass time is already set, so it is retried then.

Prune against running backups: the service does not wait for jobs. Prune's own two phases make it
safe (format §8): phase 1 only writes a mark; writers stop deduplicating against marked packs as
soon as they see it; the sweep waits the grace period and for every live writer to have seen the
mark, then re-reads the catalog's live references, so content a backup referenced meanwhile stays.
One pass marks and, after the grace period, sweeps; a mark left by an interrupted pass is swept by
the next one before it marks again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from m365vault.catalog import ContentRefs, InvalidPolicy, RetentionPass, RetentionPolicy, RetentionResult
from m365vault.clock import Clock
from m365vault.db.config_tables import BackupRepository
from m365vault.engine.schedule import next_retention_pass
from m365vault.engine.scheduler import DueTimeScheduler, JobScheduleState, ScheduledJob, Sleep
from m365vault.repository import PruneReport, Repository, SafetyParameters

log = logging.getLogger(__name__)

# While the sweep waits for a writer to see the mark: writers refresh their locks this often.
SWEEP_RETRY = timedelta(minutes=5)
# After this long past its mark every writer lock has seen the mark or gone stale (30 minutes);
# a sweep still waiting then is left to the next pass.
SWEEP_GIVE_UP = timedelta(minutes=40)

_POLICY_COLUMNS = (
    "retention_type",
    "retention_period_type",
    "daily_retention_period",
    "monthly_retention_period",
    "yearly_retention_period",
    "retention_frequency_type",
    "daily_time",
    "daily_type",
    "monthly_time",
    "monthly_daynumber",
    "monthly_dayofweek",
)


def _v3_name(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.capitalize() for part in rest)


class RetentionScheduler(DueTimeScheduler[RetentionPolicy]):
    """Runs each repository's retention pass at the times of its cleanup schedule."""

    kind = "repository"

    def _next_due(self, policy: RetentionPolicy, after: datetime) -> datetime | None:
        return next_retention_pass(policy, after, self._tz)


@dataclass
class PassResult:
    retention: RetentionResult
    prunes: list[PruneReport] = field(default_factory=list)
    swept: bool = False  # the pass's own mark was swept (False: left to the next pass)

    @property
    def freed_bytes(self) -> int:
        return sum(report.freed_bytes for report in self.prunes)


class RepositoryMaintenance:
    """One repository's pass: retention in the catalog, then mark and sweep in the repository."""

    def __init__(
        self,
        engine: Engine,
        open_repository: Callable[[uuid.UUID], Awaitable[Repository]],
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        safety: SafetyParameters | None = None,
    ) -> None:
        self._engine = engine
        self._open = open_repository
        self._clock = clock
        self._sleep = sleep
        self._safety = safety or SafetyParameters()
        self._refs = ContentRefs(engine)

    async def run(self, repository_id: uuid.UUID, policy: RetentionPolicy) -> PassResult:
        started = self._clock()
        retention = await asyncio.to_thread(
            RetentionPass(self._engine, self._clock).run, str(repository_id), policy
        )
        log.info(
            "retention: repository %s: %d versions and %d restore points older than %s removed, "
            "%d content references released",
            repository_id,
            retention.versions_removed,
            retention.restore_points_removed,
            retention.cutoff.isoformat() if retention.cutoff else "(keep forever)",
            retention.refs_released,
        )
        result = PassResult(retention)
        repo = await self._open(repository_id)
        try:
            await self._prune(repository_id, repo, result)
        finally:
            await repo.close()
        finished = result.swept or result.prunes[-1].phase == "nothing to do"
        if finished:
            # Everything released before this pass has been reclaimed or found live again.
            await asyncio.to_thread(self._forget_released, repository_id, started)
        log.info(
            "retention: repository %s: prune reclaimed %d bytes (%d packs deleted, %d repacked)%s",
            repository_id,
            result.freed_bytes,
            sum(report.deleted_packs for report in result.prunes),
            sum(report.repacked_packs for report in result.prunes),
            "" if finished else "; the sweep is left to the next pass",
        )
        return result

    async def _prune(self, repository_id: uuid.UUID, repo: Repository, result: PassResult) -> None:
        marked = False
        give_up = self._clock() + self._safety.grace + SWEEP_GIVE_UP
        while True:
            live = await asyncio.to_thread(lambda: list(self._refs.live_refs(str(repository_id))))
            report = await repo.prune(live, safety=self._safety)
            result.prunes.append(report)
            if report.phase == "nothing to do":
                return
            if report.phase == "swept":
                if marked:
                    result.swept = True
                    return
                continue  # an earlier pass's mark: now mark what this pass released
            if report.phase == "marked":
                marked = True
                give_up = self._clock() + self._safety.grace + SWEEP_GIVE_UP
                wait = self._safety.grace
            else:  # waiting for the grace period or for a writer to see the mark
                wait = SWEEP_RETRY
                if self._clock() >= give_up:
                    log.warning(
                        "retention: repository %s: sweep still waiting (%s)",
                        repository_id,
                        "; ".join(report.waiting_for),
                    )
                    return
            await self._sleep(wait.total_seconds())

    def _forget_released(self, repository_id: uuid.UUID, before: datetime) -> None:
        done = [ref for ref, at in self._refs.released_refs(str(repository_id)) if at <= before]
        self._refs.forget_released(str(repository_id), done)


class DbRetentionSchedules:
    """The repository table as the retention scheduler's store; a due pass runs in a task of its
    own, so one long pass (prune waits an hour between its phases) holds no other repository up."""

    def __init__(
        self, engine: Engine, run_pass: Callable[[uuid.UUID, RetentionPolicy], Awaitable[object]]
    ) -> None:
        self._engine = engine
        self._run_pass = run_pass
        self._policies: dict[uuid.UUID, RetentionPolicy] = {}
        self._passes: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def list_jobs(self) -> Sequence[ScheduledJob[RetentionPolicy]]:
        def read() -> list[tuple[uuid.UUID, dict[str, Any], datetime | None]]:
            columns = [getattr(BackupRepository, name) for name in _POLICY_COLUMNS]
            query = select(BackupRepository.id, BackupRepository.retention_next_pass, *columns)
            with self._engine.connect() as conn:
                return [
                    (row[0], {_v3_name(n): v for n, v in zip(_POLICY_COLUMNS, row[2:], strict=True)}, row[1])
                    for row in conn.execute(query)
                ]

        found: list[ScheduledJob[RetentionPolicy]] = []
        policies: dict[uuid.UUID, RetentionPolicy] = {}
        for repository_id, fields, next_pass in await asyncio.to_thread(read):
            try:
                policy = RetentionPolicy.from_v3({k: v for k, v in fields.items() if v is not None})
            except InvalidPolicy as exc:
                log.warning(
                    "retention: repository %s has an unusable policy (%s); no pass", repository_id, exc
                )
                continue
            policies[repository_id] = policy
            running = repository_id in self._passes
            found.append(JobScheduleState(repository_id, True, policy, None, next_pass, running))
        self._policies = policies
        return found

    async def update_next_run(
        self, job_id: Hashable, expected: datetime | None, new: datetime | None
    ) -> bool:
        def write() -> bool:
            column = BackupRepository.retention_next_pass
            current = column.is_(None) if expected is None else column == expected
            with self._engine.begin() as conn:
                done = conn.execute(
                    update(BackupRepository)
                    .where(BackupRepository.id == job_id, current)
                    .values(retention_next_pass=new)
                )
                return bool(done.rowcount)

        return await asyncio.to_thread(write)

    async def start_job(self, job_id: Hashable, due: datetime) -> None:
        assert isinstance(job_id, uuid.UUID)
        policy = self._policies[job_id]
        task = asyncio.create_task(self._pass(job_id, policy, due), name=f"retention-{job_id}")
        self._passes[job_id] = task
        task.add_done_callback(lambda _: self._passes.pop(job_id, None))

    async def _pass(self, repository_id: uuid.UUID, policy: RetentionPolicy, due: datetime) -> None:
        try:
            await self._run_pass(repository_id, policy)
        except Exception:
            log.exception(
                "retention: the pass of repository %s due at %s failed; it runs again at its next pass time",
                repository_id,
                due.isoformat(),
            )

    async def close(self) -> None:
        """Stop running passes (each phase of prune is safe to interrupt)."""
        tasks = list(self._passes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def start_retention(
    engine: Engine,
    open_repository: Callable[[uuid.UUID], Awaitable[Repository]],
    tz: ZoneInfo,
    clock: Clock,
) -> tuple[RetentionScheduler, asyncio.Task[None]]:
    maintenance = RepositoryMaintenance(engine, open_repository, clock)
    store = DbRetentionSchedules(engine, maintenance.run)
    scheduler = RetentionScheduler(store, tz, clock)

    async def run() -> None:
        try:
            await scheduler.run()
        finally:
            await store.close()

    return scheduler, asyncio.create_task(run(), name="retention")
