"""The small face the server uses when an organization is added or browsed.

`verify_tenant` proves the credentials work: it obtains a token and reads the tenant. The name
comes from GET /organization (the initial *.onmicrosoft.com domain) when the app may read it
(Organization.Read.All / Directory.Read.All); a backup app with only User.Read.All gets 403 there,
so the read falls back to one page of /users and the name to the configured tenant domain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from m365vault.m365 import enumeration
from m365vault.m365.client import GraphClient, RetryPolicy
from m365vault.m365.errors import GraphForbidden, GraphNotFound
from m365vault.m365.paging import Page
from m365vault.m365.settings import TenantSettings
from m365vault.m365.throttle import Scope

# Verification runs while an administrator waits for an HTTP answer: fail fast.
VERIFY_RETRY = RetryPolicy(
    max_attempts=3, max_flaky_attempts=2, backoff_base=0.5, backoff_cap=5.0, max_retry_after=15.0
)


@dataclass(frozen=True)
class TenantInfo:
    name: str  # what v3 shows as the organization name (e.g. contoso.onmicrosoft.com)
    tenant_id: str | None
    display_name: str | None
    verified_domains: list[str] = field(default_factory=list)


async def read_tenant(client: GraphClient, settings: TenantSettings) -> TenantInfo:
    """Read who the tenant is (see the module docstring for the fallback)."""
    try:
        body = await client.get_json(
            "/organization", scope=Scope.directory(), params={"$select": "id,displayName,verifiedDomains"}
        )
        orgs = body.get("value") or []
        if orgs and isinstance(orgs[0], dict):
            return _from_organization(orgs[0], settings)
    except (GraphForbidden, GraphNotFound):
        pass
    page = await client.get_json("/users", scope=Scope.directory(), params={"$select": "id", "$top": "1"})
    if not isinstance(page.get("value"), list):
        raise GraphNotFound("the tenant's user directory could not be read")
    tenant = settings.tenant.strip()
    return TenantInfo(name=tenant, tenant_id=None if "." in tenant else tenant, display_name=None)


def _from_organization(org: dict[str, Any], settings: TenantSettings) -> TenantInfo:
    domains = [d for d in org.get("verifiedDomains") or [] if isinstance(d, dict) and d.get("name")]
    initial = next((d["name"] for d in domains if d.get("isInitial")), None)
    name = (
        initial
        or (settings.tenant if "." in settings.tenant else None)
        or org.get("displayName")
        or settings.tenant
    )
    return TenantInfo(
        name=str(name),
        tenant_id=str(org["id"]) if org.get("id") else None,
        display_name=str(org["displayName"]) if org.get("displayName") else None,
        verified_domains=[str(d["name"]) for d in domains],
    )


async def verify_tenant(
    settings: TenantSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    token_transport: httpx.BaseTransport | None = None,
) -> TenantInfo:
    """Token plus a tenant read. Raises a GraphError subclass whose `reason` tells the admin why."""
    async with GraphClient.for_tenant(
        settings, transport=transport, token_transport=token_transport, retry=VERIFY_RETRY
    ) as client:
        return await read_tenant(client, settings)


# Paged listings for /v3/Organizations/{id}/Users, /Groups, /Sites, /Users/{id}/OneDrives.


def list_users(client: GraphClient) -> AsyncIterator[Page]:
    return enumeration.list_users(client)


def list_groups(client: GraphClient) -> AsyncIterator[Page]:
    return enumeration.list_groups(client)


def list_sites(client: GraphClient) -> AsyncIterator[Page]:
    return enumeration.list_sites(client)


async def list_onedrives(client: GraphClient, user_id: str) -> list[dict[str, Any]]:
    """The user's OneDrive as a list (empty when none is provisioned): v3 models it as a collection."""
    drive = await enumeration.get_user_drive(client, user_id)
    return [drive] if drive else []
