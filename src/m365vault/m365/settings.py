"""Where a tenant lives and how the app proves who it is.

Region defaults are Microsoft's published national-cloud roots (learn.microsoft.com/graph/deployments).
An organization may override both roots (`graphEndpoint`, `authorityEndpoint`), which is also how the
connector is pointed at a test tenant. TLS verification is configurable because a test tenant may
use a self-signed certificate; production keeps the default (verify against the system CAs).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ssl
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12


class Region(enum.Enum):
    """Microsoft 365 clouds. Values are the v3 API spellings."""

    WORLDWIDE = "Worldwide"
    US_GOVERNMENT = "USgovCommunity"  # GCC High (L4)
    US_DEFENCE = "USgovDefence"  # DoD (L5)
    CHINA = "China"  # operated by 21Vianet
    GERMANY = "Germany"  # Microsoft Cloud Deutschland (closed to new tenants; kept for old configs)

    @classmethod
    def parse(cls, value: str | Region) -> Region:
        """Accept every spelling v3 and later servers use, case-insensitively."""
        if isinstance(value, Region):
            return value
        key = value.strip().lower()
        aliases = {
            "worldwide": cls.WORLDWIDE,
            "usgovcommunity": cls.US_GOVERNMENT,
            "usgovernment": cls.US_GOVERNMENT,
            "usgovdefence": cls.US_DEFENCE,
            "usdefence": cls.US_DEFENCE,
            "usdefense": cls.US_DEFENCE,
            "china": cls.CHINA,
            "germany": cls.GERMANY,
        }
        if key not in aliases:
            raise ValueError(f"unknown region {value!r}; expected one of {', '.join(r.value for r in cls)}")
        return aliases[key]


@dataclass(frozen=True)
class CloudEndpoints:
    authority_root: str  # Entra ID token service, e.g. https://login.microsoftonline.com
    graph_root: str  # Graph service root without version, e.g. https://graph.microsoft.com


REGION_ENDPOINTS: dict[Region, CloudEndpoints] = {
    Region.WORLDWIDE: CloudEndpoints("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Region.US_GOVERNMENT: CloudEndpoints("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    Region.US_DEFENCE: CloudEndpoints("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Region.CHINA: CloudEndpoints("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    Region.GERMANY: CloudEndpoints("https://login.microsoftonline.de", "https://graph.microsoft.de"),
}


@dataclass(frozen=True)
class ClientSecret:
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate credential: PEM private key and certificate, SHA-1 thumbprint (hex)."""

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    thumbprint: str

    @classmethod
    def from_pfx(cls, pfx: bytes, password: str | None = None) -> ClientCertificate:
        """Load the base64-decoded PFX the v3 API receives (`ApplicationCertificate`)."""
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(pfx, password.encode() if password else None)
        except ValueError as exc:
            raise ValueError(f"cannot read the certificate (wrong password or not a PFX): {exc}") from exc
        if key is None or cert is None:
            raise ValueError("the PFX must hold both a private key and its certificate")
        return cls._build(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            cert,
        )

    @classmethod
    def from_pem(cls, private_key_pem: str, certificate_pem: str) -> ClientCertificate:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        return cls._build(private_key_pem, cert)

    @classmethod
    def from_base64_pfx(cls, pfx_base64: str, password: str | None = None) -> ClientCertificate:
        try:
            raw = base64.b64decode(pfx_base64, validate=True)
        except ValueError as exc:
            raise ValueError("the certificate is not valid base64") from exc
        return cls.from_pfx(raw, password)

    @classmethod
    def _build(cls, private_key_pem: str, cert: x509.Certificate) -> ClientCertificate:
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            private_key_pem=private_key_pem,
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            thumbprint=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        )


Credential = ClientSecret | ClientCertificate


@dataclass(frozen=True)
class TenantSettings:
    """Everything needed to talk to one tenant as one app registration.

    `tenant`: tenant GUID or verified domain (never `common`/`organizations` for app-only).
    `verify`: True (system CAs), a CA bundle path, or False (tests only: no verification).
    """

    tenant: str
    client_id: str
    credential: Credential
    region: Region = Region.WORLDWIDE
    graph_endpoint: str | None = None  # overrides the region's Graph root (organization `graphEndpoint`)
    authority_endpoint: str | None = None  # overrides the region's login root (`authorityEndpoint`)
    scope: str | None = None  # defaults to "{region graph root}/.default"
    verify: bool | str = True
    user_agent: str = "NONISV|m365vault|m365vault/0.1"  # decorated traffic is throttled last (§6.3)

    def __post_init__(self) -> None:
        if not self.tenant.strip():
            raise ValueError("tenant is required")
        if self.tenant.strip().lower() in {"common", "organizations", "consumers"}:
            raise ValueError("app-only access needs a tenant id or domain, not a multi-tenant alias")
        if not self.client_id.strip():
            raise ValueError("client id is required")
        for name in ("graph_endpoint", "authority_endpoint"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL, got {value!r}")

    @property
    def endpoints(self) -> CloudEndpoints:
        return REGION_ENDPOINTS[self.region]

    @property
    def graph_base_url(self) -> str:
        """Versioned Graph base, e.g. https://graph.microsoft.com/v1.0."""
        root = (self.graph_endpoint or self.endpoints.graph_root).rstrip("/")
        return root if root.endswith("/v1.0") else f"{root}/v1.0"

    @property
    def authority(self) -> str:
        root = (self.authority_endpoint or self.endpoints.authority_root).rstrip("/")
        return f"{root}/{self.tenant.strip()}"

    @property
    def token_scope(self) -> str:
        # A national cloud's .default scope must use that cloud's Graph domain.
        return self.scope or f"{self.endpoints.graph_root}/.default"


def tls_verification(verify: bool | str) -> bool | ssl.SSLContext:
    """What httpx takes for `verify`: True/False, or a context trusting the CA bundle at a path."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


class AppCredentials(Protocol):
    """An organization's application credentials as the server keeps them, read by attribute
    (`control.ports.TenantCredentials` fits; the layers above may not hand the connector their own
    types). Exactly one of `application_secret` and `certificate_pfx` is set."""

    @property
    def organization_name(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def application_id(self) -> object: ...
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


def settings_for(credentials: AppCredentials, verify: bool | str = True) -> TenantSettings:
    """TenantSettings for an organization's stored credentials; ValueError if it has neither a
    secret nor a certificate. `verify` is the TLS check towards Graph and the authority."""
    if credentials.application_secret:
        credential: ClientSecret | ClientCertificate = ClientSecret(credentials.application_secret)
    elif credentials.certificate_pfx:
        credential = ClientCertificate.from_pfx(credentials.certificate_pfx, credentials.certificate_password)
    else:
        raise ValueError("the organization has no application secret or certificate")
    return TenantSettings(
        tenant=credentials.organization_name,
        client_id=str(credentials.application_id),
        credential=credential,
        region=Region.parse(credentials.region),
        graph_endpoint=credentials.graph_endpoint,
        authority_endpoint=credentials.authority_endpoint,
        verify=verify,
    )
