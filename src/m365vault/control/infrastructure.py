"""Backup proxies and backup repositories.

The default proxy is the worker pool inside the server; other proxies are `m365vault proxy`
processes and stay Offline until the engine sees them. A repository lives on a proxy at a path and
has its own password (generated unless given), sealed with the server key. Creating a repository
hands it to the `RepositoryInitialiser`; when none is wired, only the directory is created.
"""

from __future__ import annotations

import re
import secrets
import shutil
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from m365vault.control.enums import (
    DailyType,
    DayOfWeek,
    MonthlyDayNumber,
    ProxyStatus,
    RetentionFrequencyType,
    RetentionPeriodType,
    RetentionType,
    ThrottlingUnit,
    YearlyRetentionPeriod,
)
from m365vault.control.errors import InvalidRequest, NotFound
from m365vault.control.services import Services
from m365vault.db.config_tables import BackupRepository, Job, Proxy

DEFAULT_PROXY_HOST = "localhost"
DEFAULT_PROXY_PORT = 9193
DEFAULT_THREADS = 64
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


@dataclass(frozen=True)
class ProxyInput:
    host_name: str | None = None
    description: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    threads_number: int | None = None
    enable_network_throttling: bool | None = None
    throttling_value: int | None = None
    throttling_unit: ThrottlingUnit | None = None


@dataclass(frozen=True)
class RepositoryInput:
    name: str | None = None
    description: str | None = None
    proxy_id: uuid.UUID | None = None
    path: str | None = None
    password: str | None = field(default=None, repr=False)
    retention_type: RetentionType | None = None
    retention_period_type: RetentionPeriodType | None = None
    daily_retention_period: int | None = None
    monthly_retention_period: int | None = None
    yearly_retention_period: YearlyRetentionPeriod | None = None
    retention_frequency_type: RetentionFrequencyType | None = None
    daily_time: str | None = None
    daily_type: DailyType | None = None
    monthly_time: str | None = None
    monthly_daynumber: MonthlyDayNumber | None = None
    monthly_dayofweek: DayOfWeek | None = None


@dataclass(frozen=True)
class Capacity:
    capacity_bytes: int
    free_space_bytes: int


def _given(spec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if value is not None:
            out[f.name] = value.value if hasattr(value, "value") else value
    return out


def _time_of_day(value: str, field: str) -> str:
    if not _TIME_OF_DAY.match(value):
        raise InvalidRequest(f"'{field}' must be a time of day as HH:mm:ss.")
    return value if len(value) == 8 else value + ":00"


class Proxies:
    def __init__(self, services: Services) -> None:
        self._s = services

    def all(self) -> list[Proxy]:
        with self._s.unit_of_work() as db:
            return list(db.scalars(select(Proxy).order_by(Proxy.is_default.desc(), Proxy.host_key)))

    def get(self, proxy_id: uuid.UUID) -> Proxy:
        with self._s.unit_of_work() as db:
            proxy = db.get(Proxy, proxy_id)
            if proxy is None:
                raise NotFound(f"Proxy with id '{proxy_id}' was not found.")
            return proxy

    def add(self, spec: ProxyInput, *, is_default: bool = False) -> Proxy:
        if not spec.host_name or not spec.host_name.strip():
            raise InvalidRequest("'hostName' is required.")
        proxy = Proxy(
            id=uuid.uuid4(),
            host_name=spec.host_name.strip(),
            host_key=spec.host_name.strip().casefold(),
            description=spec.description or "",
            port=DEFAULT_PROXY_PORT,
            threads_number=DEFAULT_THREADS,
            enable_network_throttling=False,
            throttling_value=0,
            throttling_unit=ThrottlingUnit.Mbps.value,
            # Remote proxies report in through the engine; until then they are Offline.
            status=(ProxyStatus.Online if is_default else ProxyStatus.Offline).value,
            is_default=is_default,
        )
        self._apply(proxy, spec)
        try:
            with self._s.unit_of_work() as db:
                db.add(proxy)
        except IntegrityError as exc:
            raise InvalidRequest(f"Proxy '{proxy.host_name}' has already been added.") from exc
        return proxy

    def edit(self, proxy_id: uuid.UUID, spec: ProxyInput) -> Proxy:
        try:
            with self._s.unit_of_work() as db:
                proxy = db.get(Proxy, proxy_id)
                if proxy is None:
                    raise NotFound(f"Proxy with id '{proxy_id}' was not found.")
                if spec.host_name is not None:
                    if not spec.host_name.strip():
                        raise InvalidRequest("'hostName' must not be empty.")
                    proxy.host_name, proxy.host_key = (
                        spec.host_name.strip(),
                        spec.host_name.strip().casefold(),
                    )
                self._apply(proxy, spec)
                db.flush()
                return proxy
        except IntegrityError as exc:
            raise InvalidRequest(f"Proxy '{spec.host_name}' has already been added.") from exc

    def delete(self, proxy_id: uuid.UUID) -> None:
        with self._s.unit_of_work() as db:
            proxy = db.get(Proxy, proxy_id)
            if proxy is None:
                raise NotFound(f"Proxy with id '{proxy_id}' was not found.")
            if proxy.is_default:
                raise InvalidRequest("The server's own proxy cannot be removed.")
            repos = db.scalar(
                select(func.count())
                .select_from(BackupRepository)
                .where(BackupRepository.proxy_id == proxy_id)
            )
            jobs = db.scalar(select(func.count()).select_from(Job).where(Job.proxy_id == proxy_id))
            if repos or jobs:
                raise InvalidRequest(
                    f"Proxy '{proxy.host_name}' cannot be removed: repositories or jobs use it. "
                    "Remove them first."
                )
            db.delete(proxy)

    def repositories(self, proxy_id: uuid.UUID) -> list[BackupRepository]:
        self.get(proxy_id)
        with self._s.unit_of_work() as db:
            return list(
                db.scalars(
                    select(BackupRepository)
                    .where(BackupRepository.proxy_id == proxy_id)
                    .order_by(BackupRepository.name_key)
                )
            )

    def default(self) -> Proxy | None:
        with self._s.unit_of_work() as db:
            return db.scalar(select(Proxy).where(Proxy.is_default.is_(True)))

    def _apply(self, proxy: Proxy, spec: ProxyInput) -> None:
        if spec.description is not None:
            proxy.description = spec.description
        if spec.port is not None:
            if not 1 <= spec.port <= 65535:
                raise InvalidRequest("'port' must be between 1 and 65535.")
            proxy.port = spec.port
        if spec.threads_number is not None:
            if not 1 <= spec.threads_number <= 1024:
                raise InvalidRequest("'threadsNumber' must be between 1 and 1024.")
            proxy.threads_number = spec.threads_number
        if spec.enable_network_throttling is not None:
            proxy.enable_network_throttling = spec.enable_network_throttling
        if spec.throttling_value is not None:
            if not 0 <= spec.throttling_value <= 2**31 - 1:
                raise InvalidRequest("'throttlingValue' must be between 0 and 2147483647.")
            proxy.throttling_value = spec.throttling_value
        if spec.throttling_unit is not None:
            proxy.throttling_unit = spec.throttling_unit.value
        if spec.username is not None:
            proxy.username = spec.username
        if spec.password is not None:
            proxy.password_sealed = self._s.secrets.seal(spec.password, f"proxy:{proxy.id}:password")


class Repositories:
    def __init__(self, services: Services) -> None:
        self._s = services

    def all(self) -> list[BackupRepository]:
        with self._s.unit_of_work() as db:
            return list(db.scalars(select(BackupRepository).order_by(BackupRepository.name_key)))

    def get(self, repository_id: uuid.UUID) -> BackupRepository:
        with self._s.unit_of_work() as db:
            repo = db.get(BackupRepository, repository_id)
            if repo is None:
                raise NotFound(f"Backup repository with id '{repository_id}' was not found.")
            return repo

    def add(self, spec: RepositoryInput) -> BackupRepository:
        if not spec.name or not spec.name.strip():
            raise InvalidRequest("'name' is required.")
        if not spec.path:
            raise InvalidRequest("'path' is required.")
        path = Path(spec.path)
        if not path.is_absolute() or ".." in path.parts:
            raise InvalidRequest("'path' must be an absolute path.")
        with self._s.unit_of_work() as db:
            if spec.proxy_id is None:
                proxy = db.scalar(select(Proxy).where(Proxy.is_default.is_(True)))
            else:
                proxy = db.get(Proxy, spec.proxy_id)
            if proxy is None:
                raise InvalidRequest(f"Proxy with id '{spec.proxy_id}' does not exist.")
            proxy_id, local = proxy.id, proxy.is_default
        password = spec.password or secrets.token_urlsafe(32)
        repo_id = uuid.uuid4()
        repo = BackupRepository(
            id=repo_id,
            name=spec.name.strip(),
            name_key=spec.name.strip().casefold(),
            description=spec.description or "",
            proxy_id=proxy_id,
            path=str(path),
            retention_type=RetentionType.ItemLevel.value,
            retention_period_type=RetentionPeriodType.Yearly.value,
            yearly_retention_period=YearlyRetentionPeriod.Years3.value,
            retention_frequency_type=RetentionFrequencyType.Daily.value,
            daily_time="18:00:00",
            daily_type=DailyType.EVERYDAY.value,
            password_sealed=self._s.secrets.seal(password, f"repository:{repo_id}:password"),
            created_at=self._s.clock(),
        )
        self._apply_retention(repo, spec)
        self._check_unique(repo)
        if local:
            self._initialise(repo_id, str(path), password)
        try:
            with self._s.unit_of_work() as db:
                db.add(repo)
        except IntegrityError as exc:
            raise InvalidRequest("A backup repository with this name or path already exists.") from exc
        return repo

    def edit(self, repository_id: uuid.UUID, spec: RepositoryInput) -> BackupRepository:
        repo = self.get(repository_id)
        if spec.path is not None and str(Path(spec.path)) != repo.path:
            raise InvalidRequest("The path of a backup repository cannot be changed.")
        if spec.proxy_id is not None and spec.proxy_id != repo.proxy_id:
            raise InvalidRequest("The proxy of a backup repository cannot be changed.")
        if spec.password is not None:
            raise InvalidRequest("The password of a backup repository cannot be changed here.")
        if spec.name is not None:
            if not spec.name.strip():
                raise InvalidRequest("'name' must not be empty.")
            repo.name, repo.name_key = spec.name.strip(), spec.name.strip().casefold()
        if spec.description is not None:
            repo.description = spec.description
        self._apply_retention(repo, spec)
        self._check_unique(repo)
        try:
            with self._s.unit_of_work() as db:
                db.merge(repo)
        except IntegrityError as exc:
            raise InvalidRequest("A backup repository with this name already exists.") from exc
        return repo

    def delete(self, repository_id: uuid.UUID) -> None:
        """Forget the repository (its data stays on disk)."""
        with self._s.unit_of_work() as db:
            repo = db.get(BackupRepository, repository_id)
            if repo is None:
                raise NotFound(f"Backup repository with id '{repository_id}' was not found.")
            jobs = db.scalar(select(func.count()).select_from(Job).where(Job.repository_id == repository_id))
            if jobs:
                raise InvalidRequest(
                    f"Backup repository '{repo.name}' cannot be removed: {jobs} backup job(s) use it."
                )
            db.delete(repo)

    def password(self, repository_id: uuid.UUID) -> str:
        """The repository's plaintext password, for the storage engine only."""
        repo = self.get(repository_id)
        return self._s.secrets.open(repo.password_sealed, f"repository:{repo.id}:password")

    def capacity(self, repo: BackupRepository, local: bool) -> Capacity | None:
        """Size and free space of the file system holding a repository on this host."""
        if not local:
            return None
        probe = Path(repo.path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            usage = shutil.disk_usage(probe)
        except OSError:
            return None
        return Capacity(usage.total, usage.free)

    def _check_unique(self, repo: BackupRepository) -> None:
        with self._s.unit_of_work() as db:
            clash = db.scalar(
                select(BackupRepository.id).where(
                    BackupRepository.id != repo.id,
                    (BackupRepository.name_key == repo.name_key) | (BackupRepository.path == repo.path),
                )
            )
        if clash is not None:
            raise InvalidRequest("A backup repository with this name or path already exists.")

    def _initialise(self, repo_id: uuid.UUID, path: str, password: str) -> None:
        initialiser = self._s.repository_initialiser
        try:
            if initialiser is not None:
                initialiser.initialise(repo_id, path, password)
            else:
                # No storage engine wired yet: reserve the directory; the engine formats it later.
                Path(path).mkdir(parents=True, exist_ok=True)
        except ValueError as exc:
            raise InvalidRequest(f"The repository cannot be created at '{path}': {exc}") from exc
        except OSError as exc:
            raise InvalidRequest(f"The repository cannot be created at '{path}': {exc.strerror}") from exc

    def _apply_retention(self, repo: BackupRepository, spec: RepositoryInput) -> None:
        given = _given(spec)
        for key in ("daily_time", "monthly_time"):
            if key in given:
                given[key] = _time_of_day(given[key], "dailyTime" if key == "daily_time" else "monthlyTime")
        for key in ("daily_retention_period", "monthly_retention_period"):
            if key in given and not 1 <= given[key] <= 100_000:
                raise InvalidRequest(f"'{_camel(key)}' must be a positive number.")
        for key, value in given.items():
            if key.startswith(("retention_", "daily_", "monthly_", "yearly_")):
                setattr(repo, key, value)
                repo.retention_next_pass = None  # the retention service computes it anew
        needed = {
            "Daily": ("daily_retention_period",),
            "Monthly": ("monthly_retention_period",),
            "Yearly": ("yearly_retention_period",),
        }[repo.retention_period_type] + {
            "Daily": ("daily_time", "daily_type"),
            "Monthly": ("monthly_time", "monthly_daynumber", "monthly_dayofweek"),
        }[repo.retention_frequency_type]
        missing = [_camel(k) for k in needed if getattr(repo, k) is None]
        if missing:
            raise InvalidRequest(f"Missing retention settings: {', '.join(missing)}.")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.capitalize() for p in rest)
