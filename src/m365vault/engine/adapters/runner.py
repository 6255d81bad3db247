"""control's `BackupRunner` on the `BackupEngine`: job sessions, runs and what they leave behind.

`start` creates the JobSession (Running) and marks the job (lastStatus Running, lastRun), builds
the run's ports (the tenant's Graph client, the job's repository, a catalog recorder for the
organization and repository, a reporter on the session row) and hands the run to the engine.
When the run ends, every object that ended Success/Warning gets a catalog restore point at the
run's end and its user becomes a licensed user. `stop` asks the engine to stop and waits (at most
`stop_timeout`) for the run to end Stopped.

Choices: the job's retry settings give the engine's RetryPolicy; when the backup window is
enabled, a run started inside the window is stopped at the window's end (a manual start outside
the window is not held to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from m365vault.clock import Clock
from m365vault.db.config_tables import BackupRepository, Job, JobItem, JobSession, LicensedUser, Organization
from m365vault.engine.adapters.connector import Credentials, GraphClients, GraphPlanningDirectory
from m365vault.engine.adapters.recorder import CatalogRecorder
from m365vault.engine.adapters.reporter import DbSessionReporter, append_log
from m365vault.engine.adapters.source import GraphChangeSource
from m365vault.engine.adapters.storage import OpenRepositories
from m365vault.engine.budget import DEFAULT_BUDGET
from m365vault.engine.flushing import GroupFlush
from m365vault.engine.object_backup import ObjectPorts
from m365vault.engine.planner import (
    GroupItem,
    JobScope,
    PartialOrganizationItem,
    PersonalSitesItem,
    SiteItem,
    UserItem,
)
from m365vault.engine.planner import (
    JobItem as ScopeItem,
)
from m365vault.engine.ports import ObjectKind, SessionStatus
from m365vault.engine.queue import BackupTask, OutcomeStatus
from m365vault.engine.run import RetryPolicy, RunRequest, RunResult
from m365vault.engine.schedule import window_end
from m365vault.engine.schedule_policy import SchedulePolicy
from m365vault.engine.service import BackupEngine

log = logging.getLogger(__name__)
STOP_TIMEOUT = 10.0


# ---------------------------------------------------------------- job -> engine request


def _flag(payload: Mapping[str, Any], name: str, default: bool = False) -> bool:
    for key, value in payload.items():
        if key.casefold() == name.casefold():
            return bool(value)
    return default


def _object_id(payload: Mapping[str, Any], name: str) -> str:
    obj = payload.get(name) or {}
    return str(obj.get("id") or obj.get("url") or "")


def scope_item(item_type: str, payload: Mapping[str, Any]) -> ScopeItem:
    kind = item_type.casefold()
    if kind == "user":
        return UserItem(
            _object_id(payload, "user"),
            mailbox=_flag(payload, "mailbox"),
            archive_mailbox=_flag(payload, "archiveMailbox"),
            onedrive=_flag(payload, "oneDrive"),
            personal_site=_flag(payload, "personalSite"),
        )
    if kind == "group":
        return GroupItem(
            _object_id(payload, "group"),
            members=_flag(payload, "members"),
            mailbox=_flag(payload, "mailbox"),
            group_site=_flag(payload, "groupSite"),
            member_mailbox=_flag(payload, "memberMailbox", True),
            member_archive_mailbox=_flag(payload, "memberArchiveMailbox", True),
            member_onedrive=_flag(payload, "memberOnedrive", True),
            member_site=_flag(payload, "memberSite", True),
        )
    if kind == "site":
        return SiteItem(_object_id(payload, "site"))
    if kind == "personalsites":
        return PersonalSitesItem()
    return PartialOrganizationItem(
        mailbox=_flag(payload, "mailbox"),
        archive_mailbox=_flag(payload, "archiveMailbox"),
        onedrive=_flag(payload, "oneDrive"),
        sites=_flag(payload, "sites"),
    )


def retry_policy(policy: Mapping[str, Any] | None) -> RetryPolicy:
    if not policy or not policy.get("retryEnabled"):
        return RetryPolicy()
    return RetryPolicy(
        retries=max(0, int(policy.get("retryNumber") or 0)),
        wait_minutes=max(0.0, float(policy.get("retryWaitInterval") or 0)),
    )


def deadline(policy: Mapping[str, Any] | None, started: datetime, tz: ZoneInfo) -> datetime | None:
    if not policy or not policy.get("backupWindowEnabled"):
        return None
    try:
        end = window_end(SchedulePolicy.from_v3(policy), started, tz)
    except ValueError:
        log.warning("unreadable schedule policy; the run has no backup window", exc_info=True)
        return None
    return end if end is not None and end > started else None


# ---------------------------------------------------------------- the runner


@dataclass
class _RunContext:
    session_id: uuid.UUID
    job_id: uuid.UUID
    organization_id: uuid.UUID
    client: Any
    saver: GroupFlush
    recorder: CatalogRecorder
    reporter: DbSessionReporter
    task: asyncio.Task[RunResult] | None = None
    after: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Prepared:
    session_id: uuid.UUID
    job_id: uuid.UUID
    request: RunRequest
    organization_id: uuid.UUID
    repository_id: uuid.UUID
    exchange: bool
    sharepoint: bool


class EngineBackupRunner:
    """control.ports.BackupRunner backed by engine.BackupEngine (one per server process)."""

    def __init__(
        self,
        db: Engine,
        *,
        clock: Clock,
        tz: ZoneInfo,
        clients: GraphClients,
        repositories: OpenRepositories,
        credentials: Callable[[uuid.UUID], Credentials],
        threads: int = 64,
        content_budget: int = DEFAULT_BUDGET,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self._db = db
        self._sessions = sessionmaker(db, expire_on_commit=False)
        self._clock = clock
        self._tz = tz
        self._clients = clients
        self._repositories = repositories
        self._credentials = credentials
        self._stop_timeout = stop_timeout
        self._engine = BackupEngine(
            self._resolve, clock=clock, threads=threads, content_budget=content_budget
        )
        self._started = False
        self._runs: dict[str, _RunContext] = {}
        self._start_lock = asyncio.Lock()

    # ------------------------------------------------------------ lifecycle

    async def _ensure_started(self) -> None:
        if not self._started:
            await self._engine.start()
            self._started = True

    async def close(self) -> None:
        """Stop every run (they end Stopped), then release clients and repositories."""
        if self._started:
            await self._engine.close()
            tasks = [ctx.task for ctx in self._runs.values() if ctx.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._repositories.close()
        await self._clients.close()

    def is_running(self, job_id: uuid.UUID) -> bool:
        return any(ctx.job_id == job_id for ctx in self._runs.values())

    async def wait(self, session_id: uuid.UUID) -> RunResult | None:
        """Wait for a run to end (tests, demo); None if it is not active here."""
        ctx = self._runs.get(str(session_id))
        if ctx is None or ctx.task is None:
            return None
        result = await asyncio.shield(ctx.task)
        await asyncio.sleep(0)  # let the done callback schedule the after-run work
        if ctx.after is not None:
            await asyncio.shield(ctx.after)
        return result

    # ------------------------------------------------------------ BackupRunner

    async def start(self, job_id: uuid.UUID) -> uuid.UUID:
        async with self._start_lock:  # one session per job even with concurrent starts
            if self.is_running(job_id):
                raise ValueError("the job is already running")
            await self._ensure_started()
            prepared = await asyncio.to_thread(self._create_session, job_id)
            try:
                ctx = await self._context(prepared)
            except Exception as exc:
                await asyncio.to_thread(self._fail_session, prepared.session_id, exc)
                raise
            self._runs[str(prepared.session_id)] = ctx
            directory = GraphPlanningDirectory(
                ctx.client, exchange=prepared.exchange, sharepoint=prepared.sharepoint
            )
            ctx.task = await self._engine.start_run(
                prepared.request, directory=directory, reporter=ctx.reporter
            )
            ctx.task.add_done_callback(lambda task: self._ended(ctx, task))
            return prepared.session_id

    async def stop(self, job_id: uuid.UUID, session_id: uuid.UUID) -> None:
        ctx = self._runs.get(str(session_id))
        if ctx is None or ctx.task is None:
            # Not running here (a leftover row): close it so the job can run again.
            await asyncio.to_thread(self._close_orphan, session_id)
            return
        await self._engine.stop_run(str(session_id))
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(ctx.task), self._stop_timeout)

    # ------------------------------------------------------------ helpers

    def _create_session(self, job_id: uuid.UUID) -> _Prepared:
        now = self._clock()
        with self._sessions.begin() as db:
            job = db.get(Job, job_id)
            if job is None:
                raise ValueError(f"job {job_id} does not exist")
            org = db.get(Organization, job.organization_id)
            assert org is not None  # foreign key
            items = list(
                db.scalars(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position))
            )
            selected = [scope_item(i.type, i.payload) for i in items if i.kind == "selected"]
            excluded = [scope_item(i.type, i.payload) for i in items if i.kind == "excluded"]
            session = JobSession(
                id=uuid.uuid4(),
                job_id=job_id,
                status=SessionStatus.RUNNING.value,
                creation_time=now,
                statistics={},
            )
            db.add(session)
            job.last_status = SessionStatus.RUNNING.value
            job.last_run = now
            request = RunRequest(
                run_id=str(session.id),
                organization_id=str(org.id),
                organization_name=org.name,
                scope=JobScope(job.backup_type == "EntireOrganization", tuple(selected), tuple(excluded)),
                retry=retry_policy(job.schedule_policy),
                deadline=deadline(job.schedule_policy, now, self._tz),
            )
            return _Prepared(
                session.id,
                job_id,
                request,
                org.id,
                job.repository_id,
                org.is_exchange_online,
                org.is_sharepoint_online,
            )

    async def _context(self, prepared: _Prepared) -> _RunContext:
        creds = await asyncio.to_thread(self._credentials, prepared.organization_id)
        client = await self._clients.client(creds)
        saver = await self._repositories.saver(prepared.repository_id)
        recorder = CatalogRecorder(
            self._db,
            str(prepared.organization_id),
            str(prepared.repository_id),
            session_id=str(prepared.session_id),
        )
        reporter = DbSessionReporter(self._sessions, prepared.session_id)
        return _RunContext(
            prepared.session_id, prepared.job_id, prepared.organization_id, client, saver, recorder, reporter
        )

    def _fail_session(self, session_id: uuid.UUID, exc: BaseException) -> None:
        now = self._clock()
        with self._sessions.begin() as db:
            row = db.get(JobSession, session_id)
            if row is None:
                return
            row.status, row.end_time = SessionStatus.FAILED.value, now
            append_log(db, session_id, f"[Failed] Job could not start: {exc}", now, now)
            job = db.get(Job, row.job_id)
            if job is not None:
                job.last_status = SessionStatus.FAILED.value

    def _close_orphan(self, session_id: uuid.UUID) -> None:
        now = self._clock()
        with self._sessions.begin() as db:
            row = db.get(JobSession, session_id)
            if row is None or row.status != SessionStatus.RUNNING.value:
                return
            row.status, row.end_time = SessionStatus.STOPPED.value, now
            append_log(db, session_id, "[Warning] Job was stopped by user (no run was active)", now, now)
            job = db.get(Job, row.job_id)
            if job is not None:
                job.last_status = SessionStatus.STOPPED.value

    async def _resolve(self, task: BackupTask) -> ObjectPorts:
        ctx = self._runs[task.run_id]
        source = GraphChangeSource(ctx.client, self._clock, ctx.saver, self._engine.budget)
        return ObjectPorts(source, ctx.saver, ctx.recorder)

    def _ended(self, ctx: _RunContext, task: asyncio.Task[RunResult]) -> None:
        ctx.after = asyncio.get_running_loop().create_task(
            self._after_run(ctx, task), name=f"after-run-{ctx.session_id}"
        )

    async def _after_run(self, ctx: _RunContext, task: asyncio.Task[RunResult]) -> None:
        try:
            if task.cancelled() or task.exception() is not None:
                if not ctx.reporter.finished:  # the run could not even report its end
                    await ctx.reporter.drain()  # its log so far first, then why it failed
                    await asyncio.to_thread(
                        self._fail_session, ctx.session_id, task.exception() or RuntimeError("cancelled")
                    )
                return
            result = task.result()
            await asyncio.to_thread(self._remember, ctx, result)
        except Exception:
            log.exception("after run %s", ctx.session_id)
        finally:
            self._runs.pop(str(ctx.session_id), None)

    def _remember(self, ctx: _RunContext, result: RunResult) -> None:
        """Restore points and licensed users for the objects this run backed up."""
        now = self._clock()
        done = [r.obj for r in result.objects if r.status in (OutcomeStatus.SUCCESS, OutcomeStatus.WARNING)]
        for obj in done:
            ctx.recorder.restore_point(obj, now)
        users = {o.id: o.name for o in done if o.kind in (ObjectKind.MAILBOX, ObjectKind.ONEDRIVE)}
        if not users:
            return
        with self._sessions.begin() as db:
            for user_id, name in users.items():
                row = db.get(LicensedUser, (ctx.organization_id, user_id))
                if row is None:
                    db.add(
                        LicensedUser(
                            organization_id=ctx.organization_id,
                            user_id=user_id,
                            name=name,
                            first_backup_time=now,
                            last_backup_time=now,
                        )
                    )
                else:
                    row.last_backup_time = now


def repository_location(sessions: sessionmaker[Session]) -> Callable[[uuid.UUID], str]:
    def location(repository_id: uuid.UUID) -> str:
        with sessions() as db:
            repo = db.get(BackupRepository, repository_id)
            if repo is None:
                raise ValueError(f"backup repository {repository_id} does not exist")
            return repo.path

    return location
