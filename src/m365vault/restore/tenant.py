"""A Graph client for an organization's application credentials (the writing side of restore)."""

from __future__ import annotations

import uuid
from typing import Protocol

from m365vault.m365 import ClientCertificate, ClientSecret, GraphClient, Region, TenantSettings


class AppCredentials(Protocol):
    """Read by attribute: `control.ports.TenantCredentials` fits (restore may not import control)."""

    @property
    def organization_name(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def application_id(self) -> uuid.UUID: ...
    @property
    def application_secret(self) -> str | None: ...
    @property
    def certificate_pfx(self) -> bytes | None: ...
    @property
    def certificate_password(self) -> str | None: ...
    @property
    def graph_endpoint(self) -> str | None: ...
    @property
    def authority_endpoint(self) -> str | None: ...


def tenant_settings(credentials: AppCredentials, verify: bool | str = True) -> TenantSettings:
    if credentials.application_secret:
        credential: ClientSecret | ClientCertificate = ClientSecret(credentials.application_secret)
    elif credentials.certificate_pfx:
        credential = ClientCertificate.from_pfx(credentials.certificate_pfx, credentials.certificate_password)
    else:
        raise ValueError("the organization has no application secret or certificate to restore with")
    return TenantSettings(
        tenant=credentials.organization_name,
        client_id=str(credentials.application_id),
        credential=credential,
        region=Region.parse(credentials.region),
        graph_endpoint=credentials.graph_endpoint,
        authority_endpoint=credentials.authority_endpoint,
        verify=verify,
    )


def graph_client(credentials: AppCredentials, verify: bool | str = True) -> GraphClient:
    """A client the caller closes (`async with`)."""
    return GraphClient.for_tenant(tenant_settings(credentials, verify))
