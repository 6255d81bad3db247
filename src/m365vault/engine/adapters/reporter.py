"""The job session tables as the engine's `SessionReporter`, and restart recovery.

`finish` writes the session's final status and end time together with the job's `lastStatus`
and, when something was backed up (Success or Warning), the organization's first/last backup
times: one transaction, so the API never shows a finished session beside a job still Running.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from m365vault.clock import Clock
from m365vault.db.config_tables import Job, JobSession, JobSessionLogItem, Organization
from m365vault.engine.ports import LogItem, SessionStatistics, SessionStatus

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
    def __init__(self, sessions: sessionmaker[Session], session_id: uuid.UUID) -> None:
        self._sessions = sessions
        self.session_id = session_id
        self._lock = asyncio.Lock()  # usn order = call order
        self.finished = False

    async def log(self, item: LogItem) -> None:
        def write() -> None:
            with self._sessions.begin() as db:
                append_log(db, self.session_id, item.title, item.creation_time, item.end_time)

        async with self._lock:
            await asyncio.to_thread(write)

    async def progress(self, progress: int, statistics: SessionStatistics) -> None:
        def write() -> None:
            with self._sessions.begin() as db:
                row = db.get(JobSession, self.session_id)
                if row is not None and row.end_time is None:
                    row.progress = progress
                    row.statistics = statistics_document(statistics)

        async with self._lock:
            await asyncio.to_thread(write)

    async def finish(self, status: SessionStatus, end_time: datetime) -> None:
        def write() -> None:
            with self._sessions.begin() as db:
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

        async with self._lock:
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
