"""Backup jobs, their selected and excluded items, and the job actions of the seed:
enable, disable, start, stop, explore.

Rules held here (once, for every API version and the CLI):
- a SelectedItems job always has at least one selected item;
- an organization has at most one EntireOrganization job;
- a running job cannot be deleted;
- start and stop go to the `BackupRunner`; without one they fail with NotAvailable and change
  nothing (they never pretend to run a backup).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from m365vault.control.enums import BackupType, JobItemType, JobStatus
from m365vault.control.errors import InvalidRequest, NotAvailable, NotFound
from m365vault.control.schedule import ScheduleInput, merge_policy, next_run
from m365vault.control.services import Services, in_thread
from m365vault.db.config_tables import BackupRepository, Job, JobItem, JobSession, Organization, Proxy

SELECTED, EXCLUDED = "selected", "excluded"
_OBJECT_FIELD = {JobItemType.User: "user", JobItemType.Group: "group", JobItemType.Site: "site"}


@dataclass(frozen=True)
class JobItemInput:
    """A job item: its type and the v3 item document (`user`/`group`/`site` object and flags)."""

    type: JobItemType
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobInput:
    name: str | None = None
    description: str | None = None
    backup_type: BackupType | None = None
    schedule_policy: ScheduleInput | None = None
    proxy_id: uuid.UUID | None = None
    repository_id: uuid.UUID | None = None
    run_now: bool | None = None
    selected_items: list[JobItemInput] | None = None
    excluded_items: list[JobItemInput] | None = None


def _object_key(item: JobItemInput) -> str:
    field_name = _OBJECT_FIELD.get(item.type)
    if field_name is None:
        return item.type.value  # whole-organization kinds: one of each per list
    obj = item.payload.get(field_name)
    key = obj.get("id") or obj.get("url") if isinstance(obj, dict) else None
    if not key or not isinstance(key, str):
        raise InvalidRequest(f"A job item of type {item.type.value} needs '{field_name}' with an 'id'.")
    return key


class Jobs:
    def __init__(self, services: Services) -> None:
        self._s = services

    # ------------------------------------------------------------ reading
    def all(self, organization_id: uuid.UUID | None = None) -> list[Job]:
        with self._s.unit_of_work() as db:
            query = select(Job).order_by(Job.name_key)
            if organization_id is not None:
                if db.get(Organization, organization_id) is None:
                    raise NotFound(f"Organization with id '{organization_id}' was not found.")
                query = query.where(Job.organization_id == organization_id)
            return list(db.scalars(query))

    def get(self, job_id: uuid.UUID) -> Job:
        with self._s.unit_of_work() as db:
            return _job(db, job_id)

    def items(self, job_id: uuid.UUID, kind: str) -> list[JobItem]:
        with self._s.unit_of_work() as db:
            _job(db, job_id)
            return list(
                db.scalars(
                    select(JobItem)
                    .where(JobItem.job_id == job_id, JobItem.kind == kind)
                    .order_by(JobItem.position)
                )
            )

    def item(self, job_id: uuid.UUID, kind: str, item_id: uuid.UUID) -> JobItem:
        with self._s.unit_of_work() as db:
            _job(db, job_id)
            item = db.scalar(
                select(JobItem).where(JobItem.job_id == job_id, JobItem.kind == kind, JobItem.id == item_id)
            )
            if item is None:
                raise NotFound(f"Job item with id '{item_id}' was not found.")
            return item

    # ------------------------------------------------------------ writing
    async def create(self, organization_id: uuid.UUID, spec: JobInput) -> Job:
        """Create a job; with `run_now` it is started at once (which needs the backup runner)."""
        job = await in_thread(lambda: self._create(organization_id, spec))
        if spec.run_now:
            await self.start(job.id)
        return job

    async def edit(self, job_id: uuid.UUID, spec: JobInput) -> Job:
        job = await in_thread(lambda: self._edit(job_id, spec))
        if spec.run_now:
            await self.start(job.id)
        return job

    def _create(self, organization_id: uuid.UUID, spec: JobInput) -> Job:
        if not spec.name or not spec.name.strip():
            raise InvalidRequest("'name' is required.")
        if spec.backup_type is None:
            raise InvalidRequest("'backupType' is required.")
        if spec.repository_id is None:
            raise InvalidRequest("'repositoryId' is required.")
        now = self._s.clock()
        try:
            with self._s.unit_of_work() as db:
                if db.get(Organization, organization_id) is None:
                    raise NotFound(f"Organization with id '{organization_id}' was not found.")
                policy = (
                    merge_policy(None, spec.schedule_policy, creating=True) if spec.schedule_policy else None
                )
                job = Job(
                    id=uuid.uuid4(),
                    organization_id=organization_id,
                    name=spec.name.strip(),
                    name_key=spec.name.strip().casefold(),
                    description=spec.description or "",
                    backup_type=spec.backup_type.value,
                    schedule_policy=policy,
                    is_enabled=True,
                    next_run=next_run(policy, now, self._s.time_zone),
                    created_at=now,
                )
                self._place(db, job, spec.repository_id, spec.proxy_id)
                self._check_name(db, job)
                self._check_entire_org(db, job)
                db.add(job)
                db.flush()
                self._add_items(db, job.id, SELECTED, spec.selected_items or [])
                self._add_items(db, job.id, EXCLUDED, spec.excluded_items or [])
                self._check_has_selection(db, job)
                self._check_can_run_now(spec)  # last: every other mistake is reported first
        except IntegrityError as exc:
            raise InvalidRequest("The job conflicts with an existing one (name or items).") from exc
        return job

    def _edit(self, job_id: uuid.UUID, spec: JobInput) -> Job:
        try:
            with self._s.unit_of_work() as db:
                job = _job(db, job_id)
                if spec.name is not None:
                    if not spec.name.strip():
                        raise InvalidRequest("'name' must not be empty.")
                    job.name, job.name_key = spec.name.strip(), spec.name.strip().casefold()
                    self._check_name(db, job)
                if spec.description is not None:
                    job.description = spec.description
                if spec.backup_type is not None:
                    job.backup_type = spec.backup_type.value
                    self._check_entire_org(db, job)
                if spec.repository_id is not None or spec.proxy_id is not None:
                    self._place(db, job, spec.repository_id or job.repository_id, spec.proxy_id)
                if spec.schedule_policy is not None:
                    job.schedule_policy = merge_policy(
                        job.schedule_policy, spec.schedule_policy, creating=False
                    )
                    job.next_run = (
                        next_run(job.schedule_policy, self._s.clock(), self._s.time_zone)
                        if job.is_enabled
                        else None
                    )
                if spec.selected_items is not None:
                    db.execute(delete(JobItem).where(JobItem.job_id == job.id, JobItem.kind == SELECTED))
                    self._add_items(db, job.id, SELECTED, spec.selected_items)
                if spec.excluded_items is not None:
                    db.execute(delete(JobItem).where(JobItem.job_id == job.id, JobItem.kind == EXCLUDED))
                    self._add_items(db, job.id, EXCLUDED, spec.excluded_items)
                self._check_has_selection(db, job)
                self._check_can_run_now(spec)
                db.flush()
                return job
        except IntegrityError as exc:
            raise InvalidRequest("The job conflicts with an existing one (name or items).") from exc

    def delete(self, job_id: uuid.UUID) -> None:
        with self._s.unit_of_work() as db:
            job = _job(db, job_id)
            if _running_session(db, job_id) is not None:
                raise InvalidRequest(f"Job '{job.name}' is running and cannot be removed. Stop it first.")
            db.delete(job)

    def add_items(self, job_id: uuid.UUID, kind: str, items: list[JobItemInput]) -> list[JobItem]:
        if not items:
            raise InvalidRequest("At least one job item is required.")
        try:
            with self._s.unit_of_work() as db:
                _job(db, job_id)
                return self._add_items(db, job_id, kind, items)
        except IntegrityError as exc:
            raise InvalidRequest("The item is already in this job.") from exc

    def replace_item(self, job_id: uuid.UUID, kind: str, item_id: uuid.UUID, item: JobItemInput) -> JobItem:
        try:
            with self._s.unit_of_work() as db:
                _job(db, job_id)
                row = db.scalar(
                    select(JobItem).where(
                        JobItem.job_id == job_id, JobItem.kind == kind, JobItem.id == item_id
                    )
                )
                if row is None:
                    raise NotFound(f"Job item with id '{item_id}' was not found.")
                row.type, row.object_key, row.payload = item.type.value, _object_key(item), dict(item.payload)
                db.flush()
                return row
        except IntegrityError as exc:
            raise InvalidRequest("The item is already in this job.") from exc

    def remove_item(self, job_id: uuid.UUID, kind: str, item_id: uuid.UUID) -> None:
        with self._s.unit_of_work() as db:
            job = _job(db, job_id)
            row = db.scalar(
                select(JobItem).where(JobItem.job_id == job_id, JobItem.kind == kind, JobItem.id == item_id)
            )
            if row is None:
                raise NotFound(f"Job item with id '{item_id}' was not found.")
            db.delete(row)
            db.flush()
            self._check_has_selection(db, job)

    # ------------------------------------------------------------ actions (the seed)
    def enable(self, job_id: uuid.UUID) -> None:
        self._set_enabled(job_id, True)

    def disable(self, job_id: uuid.UUID) -> None:
        self._set_enabled(job_id, False)

    def _set_enabled(self, job_id: uuid.UUID, enabled: bool) -> None:
        with self._s.unit_of_work() as db:
            job = _job(db, job_id)
            if job.is_enabled != enabled:
                job.is_enabled = enabled
                job.next_run = (
                    next_run(job.schedule_policy, self._s.clock(), self._s.time_zone) if enabled else None
                )

    def _next_run(self, policy: dict[str, Any] | None) -> datetime | None:
        return next_run(policy, self._s.clock(), self._s.time_zone)

    async def start(self, job_id: uuid.UUID) -> uuid.UUID:
        """Run the job now (allowed for disabled jobs too); returns the new session id."""

        def check() -> None:
            with self._s.unit_of_work() as db:
                job = _job(db, job_id)
                if self._s.backup_runner is None:
                    raise NotAvailable(
                        "The backup engine is not available on this server; the job was not started."
                    )
                if _running_session(db, job_id) is not None:
                    raise InvalidRequest(f"Job '{job.name}' is already running.")

        await in_thread(check)
        assert self._s.backup_runner is not None
        try:
            return await self._s.backup_runner.start(job_id)
        except ValueError as exc:  # lost a race with another start
            raise InvalidRequest(str(exc)) from exc

    async def stop(self, job_id: uuid.UUID) -> None:
        def running() -> uuid.UUID:
            with self._s.unit_of_work() as db:
                job = _job(db, job_id)
                session_id = _running_session(db, job_id)
                if session_id is None:
                    raise InvalidRequest(f"Job '{job.name}' is not running.")
                if self._s.backup_runner is None:
                    raise NotAvailable(
                        "The backup engine is not available on this server; the job was not stopped."
                    )
                return session_id

        session_id = await in_thread(running)
        assert self._s.backup_runner is not None
        try:
            await self._s.backup_runner.stop(job_id, session_id)
        except ValueError as exc:  # the run ended meanwhile
            raise InvalidRequest(str(exc)) from exc

    # ------------------------------------------------------------ rules
    def _place(self, db: Session, job: Job, repository_id: uuid.UUID, proxy_id: uuid.UUID | None) -> None:
        repo = db.get(BackupRepository, repository_id)
        if repo is None:
            raise InvalidRequest(f"Backup repository with id '{repository_id}' does not exist.")
        if proxy_id is not None:
            if db.get(Proxy, proxy_id) is None:
                raise InvalidRequest(f"Proxy with id '{proxy_id}' does not exist.")
            if proxy_id != repo.proxy_id:
                raise InvalidRequest("The repository is not hosted by the given proxy.")
        job.repository_id, job.proxy_id = repo.id, repo.proxy_id

    def _check_can_run_now(self, spec: JobInput) -> None:
        # Raised inside the transaction, so the job is not created or changed either.
        if spec.run_now and self._s.backup_runner is None:
            raise NotAvailable(
                "runNow cannot be honoured: the backup engine is not available on this server."
            )

    def _check_name(self, db: Session, job: Job) -> None:
        clash = db.scalar(select(Job.id).where(Job.name_key == job.name_key, Job.id != job.id))
        if clash is not None:
            raise InvalidRequest(f"A job named '{job.name}' already exists.")

    def _check_entire_org(self, db: Session, job: Job) -> None:
        if job.backup_type != BackupType.EntireOrganization.value:
            return
        other = db.scalar(
            select(Job.name).where(
                Job.organization_id == job.organization_id,
                Job.backup_type == BackupType.EntireOrganization.value,
                Job.id != job.id,
            )
        )
        if other is not None:
            raise InvalidRequest(f"The organization already has an entire-organization job ('{other}').")

    def _check_has_selection(self, db: Session, job: Job) -> None:
        if job.backup_type != BackupType.SelectedItems.value:
            return
        count = db.scalar(
            select(func.count())
            .select_from(JobItem)
            .where(JobItem.job_id == job.id, JobItem.kind == SELECTED)
        )
        if not count:
            raise InvalidRequest("A SelectedItems job needs at least one selected item.")

    def _add_items(
        self, db: Session, job_id: uuid.UUID, kind: str, items: list[JobItemInput]
    ) -> list[JobItem]:
        position = db.scalar(select(func.max(JobItem.position)).where(JobItem.job_id == job_id)) or 0
        rows = []
        seen: set[tuple[str, str]] = set()
        for item in items:
            key = (item.type.value, _object_key(item))
            if key in seen:
                raise InvalidRequest(f"The item '{key[1]}' is listed twice.")
            seen.add(key)
            position += 1
            row = JobItem(
                id=uuid.uuid4(),
                job_id=job_id,
                kind=kind,
                type=item.type.value,
                object_key=key[1],
                payload=dict(item.payload),
                position=position,
            )
            db.add(row)
            rows.append(row)
        db.flush()
        return rows


def _job(db: Session, job_id: uuid.UUID) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job with id '{job_id}' was not found.")
    return job


def _running_session(db: Session, job_id: uuid.UUID) -> uuid.UUID | None:
    return db.scalar(
        select(JobSession.id)
        .where(JobSession.job_id == job_id, JobSession.status == JobStatus.Running.value)
        .limit(1)
    )
