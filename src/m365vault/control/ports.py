"""The narrow interfaces that later parts plug into the use cases (wired in `m365vault.bootstrap`).

- `TenantVerifier` / `TenantDirectory`: the Microsoft Graph connector (`m365vault.m365`).
- `BackupRunner`: the backup engine (`m365vault.engine`).
- `RepositoryInitialiser`: the storage engine (`m365vault.repository`).

Each is optional in `Services`; the use cases say plainly what happens when one is missing.
The implementations live in lower layers that may not import `control`, so the ports exchange only
plain values and builtin exceptions; `TenantCredentials` is read by attribute (a connector may
declare a structurally equal type of its own).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TenantCredentials:
    """What the connector needs to reach one tenant with application-only auth.

    Exactly one of `application_secret` and `certificate_pfx` is set. The secret values are
    plaintext here: never log this object (its repr hides them)."""

    organization_name: str  # e.g. contoso.onmicrosoft.com
    region: str  # Worldwide | USgovCommunity | USgovDefence | Germany | China
    application_id: uuid.UUID
    application_secret: str | None = field(default=None, repr=False)
    certificate_pfx: bytes | None = field(default=None, repr=False)
    certificate_password: str | None = field(default=None, repr=False)
    graph_endpoint: str | None = None  # override of the region's Graph URL (national clouds, emulator)
    authority_endpoint: str | None = None  # override of the region's login authority URL
    exchange_online: bool = True
    sharepoint_online: bool = True


class TenantVerifier(Protocol):
    async def verify(self, credentials: TenantCredentials) -> str | None:
        """Obtain a token and make one cheap Graph call. Return None when the tenant accepts the
        credentials, else the reason to show the user (e.g. the AADSTS error text)."""
        ...


@dataclass(frozen=True)
class TenantObject:
    """A user, group, site or OneDrive as listed by the tenant. `extra` carries type-specific
    fields already in v3 output names (e.g. {"type": "User"} or {"url": ...})."""

    id: str
    name: str
    display_name: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TenantPage:
    items: list[TenantObject]
    total: int | None = None


class TenantDirectory(Protocol):
    """Tenant listings behind /Organizations/{id}/Users, /Groups, /Sites, /Users/{id}/OneDrives."""

    async def list_objects(
        self, credentials: TenantCredentials, kind: str, offset: int, limit: int, parent_id: str | None = None
    ) -> TenantPage:
        """`kind` is "users", "groups", "sites" or "onedrives" (then `parent_id` is the user id)."""
        ...


class BackupRunner(Protocol):
    """The backup engine as the job actions see it."""

    async def start(self, job_id: uuid.UUID) -> uuid.UUID:
        """Create a JobSession (status Running), set the job's lastStatus/lastRun, begin the run,
        and return the session id. The use case has checked that no session of the job is Running,
        but two starts can race: raise ValueError (message shown to the user) if the job already
        runs."""
        ...

    async def stop(self, job_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Stop the running session; it and the job end as Stopped with endTime set. Raise
        ValueError if that session is no longer running."""
        ...


class RepositoryInitialiser(Protocol):
    """Creates the on-disk repository for a BackupRepositories row."""

    def initialise(self, repository_id: uuid.UUID, path: str, password: str) -> None:
        """Create (or open and check the password of) the repository at `path`. Raise ValueError
        (or OSError) with a user-facing message if that is impossible."""
        ...
