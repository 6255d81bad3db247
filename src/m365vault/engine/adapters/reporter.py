"""The job session tables as the engine's `SessionReporter`, and restart recovery.

`finish` writes the session's final status and end time together with the job's `lastStatus`
and, when something was backed up (Success or Warning), the organization's first/last backup
times: one transaction, so the API never shows a finished session beside a job still Running.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from m365vault.clock import Clock
from m365vault.db.config_tables import Job, JobSession, JobSessionLogItem, Organization
from m365vault.engine.ports import LogItem, SessionStatistics, SessionStatus

log = logging.getLogger(__name__)

RECOVERY_TITLE = (
    "[Failed] Job session was interrupted: the server stopped while it was running "
    "(what was recorded before stays; the next run continues from there)"
)


def statistics_document(stats: SessionStatistics) -> dict[str, object]:
    return {
        "processingRateBytesPS": stats.processing_rate_bytes_ps,
        "processingRateItemsPS": stats.processing_rate_items_ps,
        "readRateBytesPS": stats.read_rate_bytes_ps,
        "writeRateBytesPS": stats.write_rate_bytes_ps,
        "transferredDataBytes": stats.transferred_data_bytes,
        "processedObjects": stats.processed_objects,
        "bottleneck": stats.bottleneck.value,
    }


def append_log(db: Session, session_id: uuid.UUID, title: str, start: datetime, end: datetime | None) -> None:
    usn = (
        db.scalar(select(func.max(JobSessionLogItem.usn)).where(JobSessionLogItem.session_id == session_id))
        or 0
    ) + 1
    db.add(JobSessionLogItem(session_id=session_id, usn=usn, title=title, creation_time=start, end_time=end))


class DbSessionReporter:
    """Log items and progress are written behind the run, in group commits: the run goes on at
    once, and whatever was told while a write was in flight goes into the next transaction. The
    run reports each object as it ends, and a log item and a progress write each (one transaction
    apiece, in turn) held the objects that ended meanwhile back: a medium incremental logged its
    last 40 objects 3 ms apart, one after another (bench_backup (b)). `finish` writes what is still waiting
    with the final status. A write that fails is logged and dropped, as a log or progress write
    always was (best effort); the final status write is not."""

    def __init__(self, sessions: sessionmaker[Session], session_id: uuid.UUID) -> None:
        self._sessions = sessions
        self.session_id = session_id
        self._logs: list[LogItem] = []  # usn order = call order
        self._progress: tuple[int, SessionStatistics] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.finished = False

    async def log(self, item: LogItem) -> None:
        self._logs.append(item)
        self._write_behind()

    async def progress(self, progress: int, statistics: SessionStatistics) -> None:
        self._progress = (progress, statistics)  # only the latest is worth writing
        self._write_behind()

    async def drain(self) -> None:
        """Wait until everything told so far is written (or its write failed)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def _write_behind(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_waiting())

    async def _write_waiting(self) -> None:
        try:
            while self._logs or self._progress is not None:
                logs, self._logs = self._logs, []
                progress, self._progress = self._progress, None
                try:
                    await asyncio.to_thread(self._write, logs, progress)
                except Exception:
                    log.warning("session %s: log or progress write failed", self.session_id, exc_info=True)
        finally:
            self._writer = None

    def _write(self, logs: list[LogItem], progress: tuple[int, SessionStatistics] | None) -> None:
        with self._sessions.begin() as db:
            self._update(db, logs, progress)

    def _update(
        self, db: Session, logs: list[LogItem], progress: tuple[int, SessionStatistics] | None
    ) -> None:
        for item in logs:
            append_log(db, self.session_id, item.title, item.creation_time, item.end_time)
        if progress is not None:
            row = db.get(JobSession, self.session_id)
            if row is not None and row.end_time is None:
                row.progress = progress[0]
                row.statistics = statistics_document(progress[1])

    async def finish(self, status: SessionStatus, end_time: datetime) -> None:
        await self.drain()
        logs, self._logs = self._logs, []
        progress, self._progress = self._progress, None

        def write() -> None:
            with self._sessions.begin() as db:
                self._update(db, logs, progress)
                row = db.get(JobSession, self.session_id)
                if row is None:
                    return
                row.status = status.value
                row.end_time = end_time
                job = db.get(Job, row.job_id)
                if job is None:
                    return
                job.last_status = status.value
                if status in (SessionStatus.SUCCESS, SessionStatus.WARNING):
                    org = db.get(Organization, job.organization_id)
                    if org is not None:
                        org.first_backup_time = org.first_backup_time or row.creation_time
                        org.last_backup_time = row.creation_time

        await asyncio.to_thread(write)
        self.finished = True


def close_interrupted_sessions(sessions: sessionmaker[Session], clock: Clock) -> int:
    """At start: sessions still Running belong to a server that died. Close them as Failed with a
    log item saying why, and their jobs too. Returns how many were closed."""
    now = clock()
    with sessions.begin() as db:
        stale = list(db.scalars(select(JobSession).where(JobSession.status == SessionStatus.RUNNING.value)))
        for row in stale:
            row.status = SessionStatus.FAILED.value
            row.end_time = now
            append_log(db, row.id, RECOVERY_TITLE, now, now)
            job = db.get(Job, row.job_id)
            if job is not None and job.last_status == SessionStatus.RUNNING.value:
                job.last_status = SessionStatus.FAILED.value
        return len(stale)
