"""The Graph connector behind control's tenant ports and the engine's planning directory.

One `GraphClient` per (tenant, app, endpoints) for the process lifetime: it owns the token cache,
the connection pool and the throttling lanes, which must be shared by every task of that tenant.
TLS verification towards Graph is a server setting (`GraphTls`): the system CAs by default, a CA
file for a self-signed Graph (the emulator), or none (development only).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from m365vault.engine.adapters.source import onedrive_collection
from m365vault.engine.ports import TenantGroup, TenantSite, TenantUser
from m365vault.m365 import archive, enumeration
from m365vault.m365.client import GraphClient, segment
from m365vault.m365.errors import GraphError, GraphNotFound
from m365vault.m365.paging import Page, items
from m365vault.m365.settings import AppCredentials, settings_for
from m365vault.m365.tenant import verify_tenant
from m365vault.m365.throttle import Scope

log = logging.getLogger(__name__)

CA_FILE_ENV = "M365VAULT_GRAPH_CA_FILE"
INSECURE_ENV = "M365VAULT_GRAPH_INSECURE"


Credentials = AppCredentials  # the name the engine adapters use


@dataclass(frozen=True)
class GraphTls:
    """How the server verifies Graph's and the authority's certificates."""

    ca_file: str | None = None
    insecure: bool = False

    @classmethod
    def from_env(cls, ca_file: str | None = None, insecure: bool | None = None) -> GraphTls:
        ca = ca_file or os.environ.get(CA_FILE_ENV) or None
        off = insecure if insecure is not None else os.environ.get(INSECURE_ENV, "") in ("1", "true", "yes")
        return cls(ca, off)

    @property
    def verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.ca_file or True


class GraphClients:
    """The process's Graph clients, one per tenant app (kept until `close`)."""

    def __init__(self, tls: GraphTls) -> None:
        self.tls = tls
        self._clients: dict[Hashable, GraphClient] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def _key(creds: Credentials) -> Hashable:
        secret = creds.application_secret or (creds.certificate_pfx or b"").hex()
        return (
            creds.organization_name,
            str(creds.application_id),
            creds.graph_endpoint,
            creds.authority_endpoint,
            hash(secret),  # a new secret must not reuse a client holding the old one
        )

    async def client(self, creds: Credentials) -> GraphClient:
        key = self._key(creds)
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = GraphClient.for_tenant(settings_for(creds, self.tls.verify))
                self._clients[key] = client
            return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class GraphTenantVerifier:
    """control.ports.TenantVerifier: a token and a tenant read, or the reason they failed."""

    def __init__(self, tls: GraphTls) -> None:
        self._tls = tls

    async def verify(self, credentials: Credentials) -> str | None:
        try:
            settings = settings_for(credentials, self._tls.verify)
        except ValueError as exc:
            return str(exc)
        try:
            await verify_tenant(settings)
        except GraphError as exc:
            return exc.reason
        except OSError as exc:  # TLS or connection failure before Graph answered
            return f"cannot reach the tenant: {exc}"
        return None


@dataclass(frozen=True)
class ListedObject:
    """Structurally control.ports.TenantObject."""

    id: str
    name: str
    display_name: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ListedPage:
    """Structurally control.ports.TenantPage."""

    items: list[ListedObject]
    total: int | None = None


class GraphTenantListing:
    """control.ports.TenantDirectory: /Organizations/{id}/Users, /Groups, /Sites, OneDrives.

    Graph pages by next link only, so an offset is served by walking pages from the start (the
    listings are directory-sized; v3 clients walk them in order)."""

    def __init__(self, clients: GraphClients) -> None:
        self._clients = clients

    async def list_objects(
        self, credentials: Credentials, kind: str, offset: int, limit: int, parent_id: str | None = None
    ) -> ListedPage:
        client = await self._clients.client(credentials)
        if kind == "onedrives":
            if parent_id is None:
                raise ValueError("a OneDrive listing needs the user id")
            drive = await enumeration.get_user_drive(client, parent_id)
            found = [self._onedrive(drive)] if drive else []
            return ListedPage(items=found[offset : offset + limit], total=len(found))
        walks: dict[str, Callable[[GraphClient], AsyncIterator[Page]]] = {
            "users": enumeration.list_users,
            "groups": enumeration.list_groups,
            "sites": enumeration.list_sites,
        }
        walk = walks.get(kind)
        if walk is None:
            raise ValueError(f"unknown tenant listing {kind!r}")
        chosen: list[ListedObject] = []
        seen = 0
        async for page in walk(client):
            for raw in page.items:
                if offset <= seen < offset + limit:
                    chosen.append(self._convert(kind, raw))
                seen += 1
            if seen >= offset + limit and page.next_link:
                return ListedPage(items=chosen, total=None)
        return ListedPage(items=chosen, total=seen)

    def _convert(self, kind: str, raw: dict[str, Any]) -> ListedObject:
        make = ListedObject
        if kind == "users":
            return make(
                id=str(raw["id"]),
                name=str(raw.get("userPrincipalName") or raw.get("mail") or raw["id"]),
                display_name=raw.get("displayName"),
                extra={"type": "User" if raw.get("userType", "Member") != "Shared" else "Shared"},
            )
        if kind == "groups":
            return make(
                id=str(raw["id"]),
                name=str(raw.get("mail") or raw.get("displayName") or raw["id"]),
                display_name=raw.get("displayName"),
                extra={"type": "Office365"},
            )
        return make(
            id=str(raw["id"]),
            name=str(raw.get("displayName") or raw.get("name") or raw["id"]),
            display_name=raw.get("displayName"),
            extra={"url": raw.get("webUrl"), "title": raw.get("displayName") or raw.get("name")},
        )

    def _onedrive(self, drive: dict[str, Any]) -> ListedObject:
        return ListedObject(
            id=str(drive["id"]),
            name=str(drive.get("name") or "OneDrive"),
            display_name=drive.get("name"),
            extra={"url": drive.get("webUrl")},
        )


class GraphPlanningDirectory:
    """engine.ports.TenantDirectory for one organization (the planner's view of the tenant).

    Choices: a Microsoft 365 (Unified, mail-enabled) group has a mailbox, read as conversations
    (Group-Conversation.Read.All); this is decided from the group's own properties, with no request
    per group, and a group whose conversations cannot be read fails at backup time with Graph's reason.
    A user's in-place archive is found through Graph beta's exchange settings (one sub-request per
    user with a mailbox, 20 per beta `$batch`; see m365/archive.py). After a refused probe (403:
    User.Read.All missing, or beta not reachable) the rest of the listing is not probed: those users
    report no archive and `archive_problem` carries Graph's reason, which the planner turns into a
    plan warning. Personal sites are covered through each user's OneDrive (their document library),
    so no personal site is planned.
    """

    def __init__(self, client: GraphClient, *, exchange: bool = True, sharepoint: bool = True) -> None:
        self._client = client
        self._exchange = exchange
        self._sharepoint = sharepoint
        self._archive_refused: str | None = None  # Graph's reason once an archive probe was refused

    async def users(self) -> AsyncIterator[TenantUser]:
        async for page in enumeration.discover_users(
            self._client, probe_mailbox=self._exchange, probe_onedrive=self._sharepoint
        ):
            archives = await self._archives(page)
            for found, archive_found in zip(page, archives, strict=True):
                yield self._user(found, archive_found)

    async def _archives(self, page: list[enumeration.DiscoveredUser]) -> list[str | None]:
        """The in-place archive's mailbox id of each user of a page (None: none, or not found out):
        their exchange settings through beta `$batch` (one sub-request per user with a mailbox, 20
        per round trip)."""
        probed = [found for found in page if self._exchange and found.has_mailbox]
        found_archive: dict[str, str | None] = {}
        if probed and self._archive_refused is None:
            outcomes = await archive.many_exchange_mailboxes(self._client, [f.id for f in probed])
            for found, outcome in zip(probed, outcomes, strict=True):
                found_archive[found.id] = self._archive_outcome(outcome)
        return [found_archive.get(found.id) for found in page]

    def _archive_outcome(self, outcome: archive.ExchangeMailboxes | GraphError) -> str | None:
        if not isinstance(outcome, GraphError):
            return outcome.archive
        if not isinstance(outcome, GraphNotFound):
            if self._archive_refused is None:
                log.warning("archive mailboxes not discoverable (Graph beta): %s", outcome)
            self._archive_refused = self._archive_refused or outcome.reason
        return None

    async def _archive(self, found: enumeration.DiscoveredUser) -> str | None:
        """The user's in-place archive mailbox id (None when it has none or it could not be found out)."""
        if not (self._exchange and found.has_mailbox) or self._archive_refused is not None:
            return None
        try:
            return self._archive_outcome(await archive.exchange_mailboxes(self._client, found.id))
        except GraphError as exc:
            return self._archive_outcome(exc)

    def _user(self, found: enumeration.DiscoveredUser, archive_id: str | None) -> TenantUser:
        raw = found.user
        return TenantUser(
            id=found.id,
            name=str(raw.get("userPrincipalName") or raw.get("mail") or found.id),
            has_mailbox=bool(found.has_mailbox) and self._exchange,
            has_archive_mailbox=archive_id is not None,
            archive_id=archive_id,
            has_onedrive=found.onedrive is not None and self._sharepoint,
            archive_problem=None if archive_id else self._archive_refused,
            onedrive=onedrive_collection(found.onedrive) if found.onedrive and self._sharepoint else None,
        )

    async def groups(self) -> AsyncIterator[TenantGroup]:
        async for page in enumeration.list_groups(self._client):
            # The team sites of a page's Microsoft 365 groups, 20 per `$batch` round trip.
            unified = [
                str(raw["id"]) for raw in page.items if self._sharepoint and enumeration.is_unified(raw)
            ]
            sites = await enumeration.get_group_sites(self._client, unified)
            site_ids = {group: str(site["id"]) for group, site in zip(unified, sites, strict=True) if site}
            for raw in page.items:
                yield self._tenant_group(raw, site_ids.get(str(raw["id"])))

    async def _group(self, raw: dict[str, Any]) -> TenantGroup:
        site = None
        if self._sharepoint and enumeration.is_unified(raw):
            site = await enumeration.get_group_site(self._client, str(raw["id"]))
        return self._tenant_group(raw, str(site["id"]) if site else None)

    def _tenant_group(self, raw: dict[str, Any], site_id: str | None) -> TenantGroup:
        return TenantGroup(
            id=str(raw["id"]),
            name=str(raw.get("mail") or raw.get("displayName") or raw["id"]),
            has_mailbox=enumeration.is_unified(raw) and self._exchange,
            site_id=site_id,
        )

    async def sites(self) -> AsyncIterator[TenantSite]:
        if not self._sharepoint:
            return
        async for page in enumeration.list_sites(self._client):
            for raw in page.items:
                yield _site(raw)

    async def group_members(self, group_id: str) -> AsyncIterator[TenantUser]:
        path = f"/groups/{segment(group_id)}/members"
        async for raw in items(self._client, path, scope=Scope.directory()):
            if raw.get("@odata.type", "#microsoft.graph.user") == "#microsoft.graph.user":
                user = await self.user(str(raw["id"]))
                if user is not None:
                    yield user

    async def user(self, user_id: str) -> TenantUser | None:
        try:
            raw = await enumeration.get_user(self._client, user_id)
        except GraphNotFound:
            return None
        mailbox = await enumeration.get_mailbox_settings(self._client, user_id) if self._exchange else None
        drive = await enumeration.get_user_drive(self._client, user_id) if self._sharepoint else None
        found = enumeration.DiscoveredUser(
            user=raw,
            has_mailbox=mailbox is not None,
            mailbox_settings=mailbox,
            onedrive=drive,
            onedrive_probed=self._sharepoint,
        )
        return self._user(found, await self._archive(found))

    async def group(self, group_id: str) -> TenantGroup | None:
        try:
            raw = await self._client.get_json(f"/groups/{segment(group_id)}", scope=Scope.directory())
        except GraphNotFound:
            return None
        return await self._group(raw)

    async def site(self, site_id: str) -> TenantSite | None:
        try:
            return _site(await enumeration.get_site(self._client, site_id))
        except GraphNotFound:
            return None


def _site(raw: dict[str, Any]) -> TenantSite:
    return TenantSite(
        id=str(raw["id"]),
        name=str(raw.get("webUrl") or raw.get("displayName") or raw["id"]),
        is_personal=enumeration.is_personal_site(raw),
    )
