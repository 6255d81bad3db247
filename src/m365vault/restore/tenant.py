"""A Graph client for an organization's application credentials (the writing side of restore)."""

from __future__ import annotations

from m365vault.m365 import GraphClient
from m365vault.m365.settings import AppCredentials, settings_for


def graph_client(credentials: AppCredentials, verify: bool | str = True) -> GraphClient:
    """A client the caller closes (`async with`)."""
    return GraphClient.for_tenant(settings_for(credentials, verify))
