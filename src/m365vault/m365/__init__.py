"""The Microsoft Graph connector: token provider, throttling-aware HTTP client, enumeration,
delta readers, content download and the writers restore needs.

Written against the documented behaviour of the real Graph (shared/reference/graph-protocol.md);
nothing here may depend on emulator-only behaviour, and nothing here imports the emulator.

Modules: `settings` (regions, credentials), `auth` (MSAL tokens), `client` (GraphClient: limits,
retries, classified errors), `throttle` (lanes: per mailbox / SharePoint tenant / directory),
`errors`, `paging`, `enumeration`, `delta`, `content`, `writers`, `tenant` (server facade).
Invariants: content is streamed, never held whole; tokens and pre-authenticated URLs are never
logged; a delta token is handed out only for state the caller can resume from correctly.
"""

from m365vault.m365.client import GraphClient, RetryPolicy
from m365vault.m365.delta import DeltaChange, DeltaPage
from m365vault.m365.errors import (
    DeltaResyncRequired,
    GraphAuthError,
    GraphAuthUnavailable,
    GraphConflict,
    GraphError,
    GraphForbidden,
    GraphItemUnreadable,
    GraphMailboxUnavailable,
    GraphNotFound,
    GraphPermanent,
    GraphStreamInterrupted,
    GraphThrottled,
    GraphTransient,
)
from m365vault.m365.paging import Page
from m365vault.m365.settings import ClientCertificate, ClientSecret, Region, TenantSettings
from m365vault.m365.tenant import TenantInfo, verify_tenant
from m365vault.m365.throttle import LimitPolicy, Scope

__all__ = [
    "ClientCertificate",
    "ClientSecret",
    "DeltaChange",
    "DeltaPage",
    "DeltaResyncRequired",
    "GraphAuthError",
    "GraphAuthUnavailable",
    "GraphClient",
    "GraphConflict",
    "GraphError",
    "GraphForbidden",
    "GraphItemUnreadable",
    "GraphMailboxUnavailable",
    "GraphNotFound",
    "GraphPermanent",
    "GraphStreamInterrupted",
    "GraphThrottled",
    "GraphTransient",
    "LimitPolicy",
    "Page",
    "Region",
    "RetryPolicy",
    "Scope",
    "TenantInfo",
    "TenantSettings",
    "verify_tenant",
]
