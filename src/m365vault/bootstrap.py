"""Composition root: builds the use cases from settings (database, server key, clock) and wires the
ports (Graph connector, backup engine, repository initialiser) into them. The CLI calls this; tests
may pass fakes for the ports and a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
import signal
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from m365vault.clock import Clock, utcnow
from m365vault.control.accounts import ThrottlePolicy
from m365vault.control.errors import InvalidRequest
from m365vault.control.facade import Control
from m365vault.control.infrastructure import DEFAULT_PROXY_HOST, ProxyInput, RepositoryInput
from m365vault.control.ports import (
    BackupRunner,
    RepositoryInitialiser,
    TenantCredentials,
    TenantDirectory,
    TenantObject,
    TenantPage,
    TenantVerifier,
)
from m365vault.control.services import Services
from m365vault.db import migrate
from m365vault.db.config_tables import BackupRepository, Proxy
from m365vault.db.engine import make_engine, sqlite_url
from m365vault.engine.adapters.connector import GraphTenantListing
from m365vault.engine.local_time import load_time_zone
from m365vault.engine.scheduler import Scheduler
from m365vault.m365.errors import GraphError
from m365vault.secretbox import open_secretbox

if TYPE_CHECKING:
    from fastapi import FastAPI

    from m365vault.control.restore_actions import RestoreActions

DEFAULT_REPOSITORY_NAME = "Default Backup Repository"
log = logging.getLogger("m365vault.bootstrap")


@dataclass
class Ports:
    """The parts other issues provide. None = not wired (the use cases say what that means)."""

    tenant_verifier: TenantVerifier | None = None
    tenant_directory: TenantDirectory | None = None
    backup_runner: BackupRunner | None = None
    repository_initialiser: RepositoryInitialiser | None = None


@dataclass
class ServerConfig:
    data_dir: Path
    db_url: str | None = None
    clock: Clock = utcnow
    ports: Ports = field(default_factory=Ports)
    throttle: ThrottlePolicy | None = None
    password_hasher: PasswordHasher | None = None  # None: argon2id with RFC 9106 defaults
    restore: RestoreOptions = field(default_factory=lambda: RestoreOptions())
    product: ProductSettings | None = None  # set: wire the real connector, engine and repository

    @property
    def database_url(self) -> str:
        return self.db_url or sqlite_url(self.data_dir)


def open_database(config: ServerConfig) -> Engine:
    """Create the data dir, connect, and bring the schema up to date."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url)
    migrate.upgrade(engine)
    return engine


def build_control(config: ServerConfig, engine: Engine) -> Control:
    services = Services(
        sessions=sessionmaker(engine, expire_on_commit=False),
        clock=config.clock,
        secrets=open_secretbox(config.data_dir),
        time_zone=load_time_zone(config.product.timezone) if config.product else ZoneInfo("UTC"),
        tenant_verifier=config.ports.tenant_verifier,
        tenant_directory=config.ports.tenant_directory,
        backup_runner=config.ports.backup_runner,
        repository_initialiser=config.ports.repository_initialiser,
    )
    return Control(services, config.throttle, config.password_hasher)


@dataclass(frozen=True)
class FirstStart:
    admin_created: str | None = None  # the administrator's name, when created now
    generated_password: str | None = field(default=None, repr=False)  # shown once, never stored


def ensure_defaults(
    control: Control, data_dir: Path, admin_user: str | None, admin_password: str | None
) -> FirstStart:
    """On an empty database: the administrator, the server's own proxy and the default repository."""
    result = FirstStart()
    if control.accounts.count() == 0:
        name = admin_user or "admin"
        password = admin_password or secrets.token_urlsafe(18)
        control.accounts.add(name, password)
        result = FirstStart(name, None if admin_password else password)
    with control.services.unit_of_work() as db:
        has_proxy = db.scalar(select(Proxy.id).where(Proxy.is_default.is_(True))) is not None
        has_repository = db.scalar(select(BackupRepository.id).limit(1)) is not None
    if not has_proxy:
        proxy = control.proxies.add(
            ProxyInput(host_name=DEFAULT_PROXY_HOST, description="The backup proxy inside this server"),
            is_default=True,
        )
        if not has_repository:
            control.repositories.add(
                RepositoryInput(
                    name=DEFAULT_REPOSITORY_NAME,
                    description="Created on first start",
                    proxy_id=proxy.id,
                    path=str((data_dir / "repository").resolve()),
                )
            )
    return result


def build_app(
    config: ServerConfig, admin_user: str | None = None, admin_password: str | None = None
) -> tuple[FastAPI, FirstStart]:
    from m365vault.api.app import create_app  # the web stack, only for the server

    engine = open_database(config)
    product = wire_product(config, engine) if config.product is not None else None
    control = build_control(config, engine)
    if product is not None:
        product.bind(control)
    first = ensure_defaults(control, config.data_dir, admin_user, admin_password)
    _warn_unwired(config.ports)
    app = create_app(control, build_restore(config, control, engine))
    if product is not None:
        product.attach(app)
    return app, first


# ---------------------------------------------------------------------------------------------- restore
@dataclass
class RestoreOptions:
    """Restore sessions: how long an idle session lives, and which CA the tenants' Graph endpoints
    are checked against when restoring (True: the system's; a PEM path, e.g. an emulator's)."""

    idle_timeout: timedelta = timedelta(minutes=30)
    graph_verify: bool | str = True


def build_restore(config: ServerConfig, control: Control, engine: Engine) -> RestoreActions:
    """Restore sessions over the catalog and repositories in this server's database and data dir."""
    # The restore stack (connector, repository, output formats) only for the server, as the web stack.
    from m365vault.catalog import CatalogReader
    from m365vault.control.explore import RestoreExplorer, RestoreWiring
    from m365vault.control.restore_actions import RestoreActions
    from m365vault.restore.content import RepositoryAccess, RepositoryPool
    from m365vault.restore.tenant import graph_client

    repositories = control.repositories

    def locate(repository_id: str) -> RepositoryAccess:
        try:
            row = repositories.get(uuid.UUID(repository_id))
        except ValueError as err:
            raise KeyError(repository_id) from err
        return RepositoryAccess(row.path, repositories.password(row.id))

    verify = config.restore.graph_verify
    wiring = RestoreWiring(
        catalog=CatalogReader(engine),
        repositories=RepositoryPool(locate),
        graph=lambda credentials: graph_client(credentials, verify),
        idle_timeout=config.restore.idle_timeout,
    )
    explorer = RestoreExplorer(control.services, wiring)
    control.restore_sessions.quiesce = explorer.quiesce
    return RestoreActions(explorer, control.settings)


def _warn_unwired(ports: Ports) -> None:
    """Say at start what this server cannot do yet, rather than let an operator find out later."""
    missing = {
        "tenant_verifier": "organization credentials are stored without being checked",
        "tenant_directory": "tenant listings (Users, Groups, Sites, OneDrives) answer 501",
        "backup_runner": "job start/stop answer 501",
        "repository_initialiser": "new local repositories are only created as directories",
    }
    for name, consequence in missing.items():
        if getattr(ports, name) is None:
            log.warning("%s is not wired: %s", name, consequence)


# ---------------------------------------------------------------- the product's real parts
# (issue 4.7, 5, 6: connector, repository, engine; kept apart from the rest to ease merges)


@dataclass(frozen=True)
class ProductSettings:
    """How the real parts are wired. `graph_ca_file` / `graph_insecure` set TLS verification
    towards Graph and the login authority (e.g. a self-signed emulator); `timezone` is the one
    schedules are read in (None: the system's)."""

    graph_ca_file: str | None = None
    graph_insecure: bool = False
    timezone: str | None = None
    threads: int | None = None  # None: the default proxy's threadsNumber
    content_budget: int = 32 * 1024 * 1024  # item content the workers hold at once (engine/budget.py)
    scheduler: bool = True


class Product:
    """The wired parts and their lifecycle (started with the app, closed at its shutdown)."""

    def __init__(self, config: ServerConfig, engine: Engine, settings: ProductSettings) -> None:
        from m365vault.engine.adapters.connector import (
            GraphClients,
            GraphTenantListing,
            GraphTenantVerifier,
            GraphTls,
        )
        from m365vault.engine.adapters.runner import EngineBackupRunner, repository_location
        from m365vault.engine.adapters.storage import OpenRepositories, RepositoryFormatter

        self.settings = settings
        self.engine = engine
        self.clock = config.clock
        self.tz = load_time_zone(settings.timezone)
        self.control: Control | None = None
        tls = GraphTls.from_env(settings.graph_ca_file, settings.graph_insecure or None)
        clients = GraphClients(tls)
        sessions = sessionmaker(engine, expire_on_commit=False)
        repositories = OpenRepositories(
            lambda repo_id: self._bound().repositories.password(repo_id), repository_location(sessions)
        )
        self.runner = EngineBackupRunner(
            engine,
            clock=config.clock,
            tz=self.tz,
            clients=clients,
            repositories=repositories,
            credentials=lambda org_id: self._bound().organizations.credentials(org_id),
            threads=settings.threads or _default_threads(sessions),
            content_budget=settings.content_budget,
        )
        self.verifier = GraphTenantVerifier(tls)
        self.listing = _TenantListing(GraphTenantListing(clients))
        self.formatter = RepositoryFormatter()
        self._background: list[asyncio.Task[None]] = []
        self.scheduler: Scheduler | None = None

    def _bound(self) -> Control:
        if self.control is None:
            raise RuntimeError("the product is not bound to the control layer yet")
        return self.control

    def bind(self, control: Control) -> None:
        from m365vault.engine.adapters.reporter import close_interrupted_sessions

        self.control = control
        closed = close_interrupted_sessions(control.services.sessions, self.clock)
        if closed:
            log.warning(
                "closed %d job session(s) left Running by a previous server process as Failed", closed
            )

    def attach(self, app: FastAPI) -> None:
        app.state.product = self
        app.router.add_event_handler("startup", self.start)
        app.router.add_event_handler("shutdown", self.close)

    async def start(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
        if self.settings.scheduler:
            from m365vault.engine.adapters.scheduling import start_scheduler

            self.scheduler, task = start_scheduler(
                self.engine, lambda job_id: self._bound().jobs.start(job_id), self.tz, self.clock
            )
            self._background.append(task)
            self._background.append(self._start_retention())

    def _start_retention(self) -> asyncio.Task[None]:
        """Each repository's retention pass and prune on its cleanup schedule."""
        from m365vault.engine.adapters.retention import start_retention
        from m365vault.engine.adapters.storage import open_or_create
        from m365vault.repository import Repository

        async def open_repository(repository_id: uuid.UUID) -> Repository:
            repositories = self._bound().repositories
            row = await asyncio.to_thread(repositories.get, repository_id)
            password = await asyncio.to_thread(repositories.password, repository_id)
            return await open_or_create(row.path, password, create=False, clock=self.clock)

        _, task = start_retention(self.engine, open_repository, self.tz, self.clock)
        return task

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.runner.close()


class _TenantListing:
    """control.ports.TenantDirectory over the connector's listing (its values are plain copies)."""

    def __init__(self, inner: GraphTenantListing) -> None:
        self._inner = inner

    async def list_objects(
        self, credentials: TenantCredentials, kind: str, offset: int, limit: int, parent_id: str | None = None
    ) -> TenantPage:
        try:
            page = await self._inner.list_objects(credentials, kind, offset, limit, parent_id)
        except GraphError as exc:  # the tenant refused or failed: say why, never a bare 500
            raise InvalidRequest(f"The organization's tenant could not be read: {exc.reason}") from exc
        objects = [TenantObject(o.id, o.name, o.display_name, dict(o.extra)) for o in page.items]
        return TenantPage(objects, page.total)


def _dump_tasks() -> None:
    """`kill -USR1 <server pid>`: log where every task of the server waits (diagnosing a stall)."""
    buffer = io.StringIO()
    for task in asyncio.all_tasks():
        buffer.write(f"--- {task.get_name()}\n")
        awaited: Any = task.get_coro()
        while awaited is not None:  # follow the await chain down to where the task waits
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                buffer.write(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}\n")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    log.warning("asyncio tasks:\n%s", buffer.getvalue())


def wire_product(config: ServerConfig, engine: Engine) -> Product:
    """Fill the unset ports of `config` with the real parts."""
    assert config.product is not None
    product = Product(config, engine, config.product)
    ports = config.ports
    ports.tenant_verifier = ports.tenant_verifier or product.verifier
    ports.tenant_directory = ports.tenant_directory or product.listing
    ports.backup_runner = ports.backup_runner or product.runner
    ports.repository_initialiser = ports.repository_initialiser or product.formatter
    return product


def _default_threads(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        threads = db.scalar(select(Proxy.threads_number).where(Proxy.is_default.is_(True)))
    return int(threads or 64)
