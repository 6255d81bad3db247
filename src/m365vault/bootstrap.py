"""Composition root: builds the use cases from settings (database, server key, clock) and wires the
ports (Graph connector, backup engine, repository initialiser) into them. The CLI calls this; tests
may pass fakes for the ports and a fake clock."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from m365vault.clock import Clock, utcnow
from m365vault.control.accounts import ThrottlePolicy
from m365vault.control.facade import Control
from m365vault.control.infrastructure import DEFAULT_PROXY_HOST, ProxyInput, RepositoryInput
from m365vault.control.ports import BackupRunner, RepositoryInitialiser, TenantDirectory, TenantVerifier
from m365vault.control.services import Services
from m365vault.db import migrate
from m365vault.db.config_tables import BackupRepository, Proxy
from m365vault.db.engine import make_engine, sqlite_url
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
    control = build_control(config, engine)
    first = ensure_defaults(control, config.data_dir, admin_user, admin_password)
    _warn_unwired(config.ports)
    return create_app(control, build_restore(config, control, engine)), first


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
