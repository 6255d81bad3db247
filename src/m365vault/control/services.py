"""What every use case needs: a session factory (the unit of work), the clock, the secret box and
the optional ports. Built once by `m365vault.bootstrap`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from zoneinfo import ZoneInfo

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from m365vault.clock import Clock
from m365vault.control.ports import BackupRunner, RepositoryInitialiser, TenantDirectory, TenantVerifier
from m365vault.secretbox import SecretBox

T = TypeVar("T")


@dataclass
class Services:
    sessions: sessionmaker[Session]
    clock: Clock
    secrets: SecretBox
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # schedules' times of day
    # Ports; None means "that part is not wired into this server" (see each use case).
    tenant_verifier: TenantVerifier | None = None
    tenant_directory: TenantDirectory | None = None
    backup_runner: BackupRunner | None = None
    repository_initialiser: RepositoryInitialiser | None = None

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: committed when the block ends normally, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking database work from an async use case without stalling the event loop."""
    return await anyio.to_thread.run_sync(fn)
