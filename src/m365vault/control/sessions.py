"""Job sessions and their log (written by the backup engine, read here), and restore sessions:
explore opens one pinned to a point in time; stop closes it. Restore sessions belong to the account
that opened them and are visible only to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from m365vault.control.accounts import Principal
from m365vault.control.enums import RestoreSessionState, RestoreSessionType
from m365vault.control.errors import Forbidden, NotFound
from m365vault.control.services import Services
from m365vault.db.config_tables import (
    Job,
    JobSession,
    JobSessionLogItem,
    Organization,
    RestoreSession,
    RestoreSessionEvent,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    offset: int
    limit: int
    total: int


@dataclass(frozen=True)
class ExploreRequest:
    """Open a restore session. `point_in_time` None means "now" (the latest restore point)."""

    type: RestoreSessionType
    point_in_time: datetime | None = None
    show_deleted: bool = False
    show_all_versions: bool = False


class JobSessions:
    def __init__(self, services: Services) -> None:
        self._s = services

    def all(self, offset: int, limit: int, job_id: uuid.UUID | None = None) -> Page[JobSession]:
        with self._s.unit_of_work() as db:
            query = select(JobSession)
            if job_id is not None:
                if db.get(Job, job_id) is None:
                    raise NotFound(f"Job with id '{job_id}' was not found.")
                query = query.where(JobSession.job_id == job_id)
            total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = db.scalars(
                query.order_by(JobSession.creation_time.desc(), JobSession.id).offset(offset).limit(limit)
            )
            return Page(list(rows), offset, limit, total)

    def get(self, session_id: uuid.UUID) -> JobSession:
        with self._s.unit_of_work() as db:
            return _job_session(db, session_id)

    def log_items(self, session_id: uuid.UUID, offset: int, limit: int) -> Page[JobSessionLogItem]:
        with self._s.unit_of_work() as db:
            _job_session(db, session_id)
            where = JobSessionLogItem.session_id == session_id
            total = db.scalar(select(func.count()).select_from(JobSessionLogItem).where(where)) or 0
            rows = db.scalars(
                select(JobSessionLogItem)
                .where(where)
                .order_by(JobSessionLogItem.usn)
                .offset(offset)
                .limit(limit)
            )
            return Page(list(rows), offset, limit, total)

    def log_item(self, session_id: uuid.UUID, item_id: uuid.UUID) -> JobSessionLogItem:
        with self._s.unit_of_work() as db:
            _job_session(db, session_id)
            row = db.scalar(
                select(JobSessionLogItem).where(
                    JobSessionLogItem.session_id == session_id, JobSessionLogItem.id == item_id
                )
            )
            if row is None:
                raise NotFound(f"Log item with id '{item_id}' was not found.")
            return row


class RestoreSessions:
    def __init__(self, services: Services) -> None:
        self._s = services
        # Set by the restore wiring: blocks until the session's operations in flight have ended.
        self.quiesce: Callable[[uuid.UUID], None] | None = None

    def explore_organization(
        self, owner: Principal, organization_id: uuid.UUID, request: ExploreRequest
    ) -> RestoreSession:
        with self._s.unit_of_work() as db:
            org = db.get(Organization, organization_id)
            if org is None:
                raise NotFound(f"Organization with id '{organization_id}' was not found.")
            return self._open(db, owner, org, None, org.name, request)

    def explore_job(self, owner: Principal, job_id: uuid.UUID, request: ExploreRequest) -> RestoreSession:
        with self._s.unit_of_work() as db:
            job = db.get(Job, job_id)
            if job is None:
                raise NotFound(f"Job with id '{job_id}' was not found.")
            org = db.get_one(Organization, job.organization_id)
            return self._open(db, owner, org, job, job.name, request)

    def _open(
        self,
        db: Session,
        owner: Principal,
        org: Organization,
        job: Job | None,
        name: str,
        request: ExploreRequest,
    ) -> RestoreSession:
        now = self._s.clock()
        # A time after the last backup means "latest"; the catalog resolves it at query time.
        session = RestoreSession(
            id=uuid.uuid4(),
            owner_user_id=owner.user_id,
            organization_id=org.id,
            job_id=job.id if job else None,
            name=name,
            organization_name=org.name,
            type=request.type.value,
            point_in_time=request.point_in_time or now,
            show_deleted=request.show_deleted,
            show_all_versions=request.show_all_versions,
            state=RestoreSessionState.Working.value,
            result="Success",
            creation_time=now,
        )
        db.add(session)
        db.flush()
        _event(db, session.id, 0, now, "Restore session started")
        return session

    def all(self, owner: Principal, offset: int, limit: int) -> Page[RestoreSession]:
        with self._s.unit_of_work() as db:
            where = RestoreSession.owner_user_id == owner.user_id
            total = db.scalar(select(func.count()).select_from(RestoreSession).where(where)) or 0
            rows = db.scalars(
                select(RestoreSession)
                .where(where)
                .order_by(RestoreSession.creation_time.desc(), RestoreSession.id)
                .offset(offset)
                .limit(limit)
            )
            return Page(list(rows), offset, limit, total)

    def get(self, owner: Principal, session_id: uuid.UUID) -> RestoreSession:
        with self._s.unit_of_work() as db:
            return _restore_session(db, owner, session_id)

    def stop(self, owner: Principal, session_id: uuid.UUID) -> None:
        """Close the session: Stopping while its operations in flight end, then Stopped with endTime.
        Stopping a stopped session changes nothing."""
        with self._s.unit_of_work() as db:
            session = _restore_session(db, owner, session_id)
            if session.state == RestoreSessionState.Stopped.value:
                return
            # Conditional, never a read-modify-write: a concurrent stop may already have closed
            # the session, and writing Stopping over Stopped would reopen it.
            db.execute(
                update(RestoreSession)
                .where(
                    RestoreSession.id == session_id, RestoreSession.state != RestoreSessionState.Stopped.value
                )
                .values(state=RestoreSessionState.Stopping.value)
                .execution_options(synchronize_session=False)
            )
        if self.quiesce is not None:
            self.quiesce(session_id)
        with self._s.unit_of_work() as db:
            _restore_session(db, owner, session_id)
            now = self._s.clock()
            # A conditional UPDATE, so that of several stops at once exactly one closes the session
            # (the database serialises the writes; the others then match no row).
            closed = db.execute(
                update(RestoreSession)
                .where(
                    RestoreSession.id == session_id, RestoreSession.state != RestoreSessionState.Stopped.value
                )
                .values(state=RestoreSessionState.Stopped.value, end_time=now)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], closed).rowcount != 1:
                return
            order = db.scalar(
                select(func.max(RestoreSessionEvent.order)).where(
                    RestoreSessionEvent.restore_session_id == session_id
                )
            )
            _event(db, session_id, (order or 0) + 1, now, "Restore session stopped")

    def events(
        self, owner: Principal, session_id: uuid.UUID, offset: int, limit: int
    ) -> Page[RestoreSessionEvent]:
        with self._s.unit_of_work() as db:
            _restore_session(db, owner, session_id)
            where = RestoreSessionEvent.restore_session_id == session_id
            total = db.scalar(select(func.count()).select_from(RestoreSessionEvent).where(where)) or 0
            rows = db.scalars(
                select(RestoreSessionEvent)
                .where(where)
                .order_by(RestoreSessionEvent.order)
                .offset(offset)
                .limit(limit)
            )
            return Page(list(rows), offset, limit, total)

    def event(self, owner: Principal, session_id: uuid.UUID, event_id: uuid.UUID) -> RestoreSessionEvent:
        with self._s.unit_of_work() as db:
            _restore_session(db, owner, session_id)
            row = db.scalar(
                select(RestoreSessionEvent).where(
                    RestoreSessionEvent.restore_session_id == session_id, RestoreSessionEvent.id == event_id
                )
            )
            if row is None:
                raise NotFound(f"Event with id '{event_id}' was not found.")
            return row


def _event(db: Session, session_id: uuid.UUID, order: int, now: datetime, text: str) -> None:
    db.add(
        RestoreSessionEvent(
            id=uuid.uuid4(),
            restore_session_id=session_id,
            order=order,
            type="None",
            status="Success",
            start_time=now,
            end_time=now,
            title=text,
            message=text,
        )
    )


def _job_session(db: Session, session_id: uuid.UUID) -> JobSession:
    row = db.get(JobSession, session_id)
    if row is None:
        raise NotFound(f"Job session with id '{session_id}' was not found.")
    return row


def _restore_session(db: Session, owner: Principal, session_id: uuid.UUID) -> RestoreSession:
    row = db.get(RestoreSession, session_id)
    if row is None:
        raise NotFound(f"Restore session with id '{session_id}' was not found.")
    if row.owner_user_id != owner.user_id:
        raise Forbidden("This restore session was started under another logon.")
    return row
