"""Tokens through MSAL (secret and certificate), refresh before expiry and after a 401, settings."""

from __future__ import annotations

import base64
import datetime as dt
import json
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from m365vault.m365.auth import CachedTokenProvider, MsalTokenSource, msal_token_provider
from m365vault.m365.client import GraphClient
from m365vault.m365.errors import GraphAuthError
from m365vault.m365.settings import ClientCertificate, ClientSecret, Region, TenantSettings
from m365vault.m365.throttle import Scope
from tests.m365.fakes import FakeTimer, Router

TENANT = "contoso.onmicrosoft.com"
LOGIN = "https://login.microsoftonline.com"


class TokenService:
    """The two routes MSAL needs (§1.4): OpenID discovery and the token endpoint."""

    def __init__(self, lifetime: int = 3599, error: dict[str, object] | None = None) -> None:
        self.lifetime = lifetime
        self.error = error
        self.token_requests: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            base = f"{request.url.scheme}://{request.url.host}/{TENANT}"
            return httpx.Response(
                200,
                json={
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "issuer": f"{base}/v2.0",
                },
            )
        if path == f"/{TENANT}/oauth2/v2.0/token" and request.method == "POST":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            if self.error:
                return httpx.Response(400, json=self.error)
            n = len(self.token_requests)
            return httpx.Response(
                200,
                json={
                    "token_type": "Bearer",
                    "expires_in": self.lifetime,
                    "ext_expires_in": self.lifetime,
                    "access_token": f"at-{n}",
                },
            )
        return httpx.Response(404, json={"error": "not_found"})


def secret_settings(**kwargs: object) -> TenantSettings:
    return TenantSettings(tenant=TENANT, client_id="app-1", credential=ClientSecret("s3cret"), **kwargs)  # type: ignore[arg-type]


async def test_client_secret_token_request_matches_the_documented_form() -> None:
    service = TokenService()
    provider = msal_token_provider(secret_settings(), transport=httpx.MockTransport(service))
    try:
        assert await provider.token() == "at-1"
        assert await provider.token() == "at-1"  # cached
    finally:
        await provider.aclose()
    form = service.token_requests[0]
    assert len(service.token_requests) == 1
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["https://graph.microsoft.com/.default"]
    assert form["client_id"] == ["app-1"] and form["client_secret"] == ["s3cret"]


def make_certificate(password: bytes | None = b"pw") -> tuple[bytes, rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365vault-test")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pfx = pkcs12.serialize_key_and_certificates(b"t", key, cert, None, encryption)
    return pfx, key, cert


async def test_certificate_credential_sends_a_signed_assertion() -> None:
    pfx, key, cert = make_certificate()
    credential = ClientCertificate.from_base64_pfx(base64.b64encode(pfx).decode(), "pw")
    assert credential.thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()
    service = TokenService()
    settings = TenantSettings(tenant=TENANT, client_id="app-1", credential=credential)
    provider = msal_token_provider(settings, transport=httpx.MockTransport(service))
    try:
        assert await provider.token() == "at-1"
    finally:
        await provider.aclose()
    form = service.token_requests[0]
    assert "client_secret" not in form
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assertion = form["client_assertion"][0]
    claims = jwt.decode(
        assertion,
        key.public_key(),
        algorithms=["RS256", "PS256"],
        audience=f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
    )
    assert claims["iss"] == claims["sub"] == "app-1"
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "PS256"  # SHA-256 thumbprint, not the legacy SHA-1 x5t
    digest = base64.urlsafe_b64decode(header["x5t#S256"] + "=" * (-len(header["x5t#S256"]) % 4))
    assert digest == cert.fingerprint(hashes.SHA256())


def test_bad_pfx_password_is_a_clear_error() -> None:
    pfx, _, _ = make_certificate()
    with pytest.raises(ValueError, match="wrong password"):
        ClientCertificate.from_pfx(pfx, "nope")
    with pytest.raises(ValueError, match="base64"):
        ClientCertificate.from_base64_pfx("%%%not base64")


async def test_rejected_credentials_raise_auth_error_with_the_reason() -> None:
    service = TokenService(
        error={
            "error": "invalid_client",
            "error_description": (
                "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2"
            ),
            "error_codes": [7000215],
        }
    )
    provider = msal_token_provider(secret_settings(), transport=httpx.MockTransport(service))
    try:
        with pytest.raises(GraphAuthError) as info:
            await provider.token()
    finally:
        await provider.aclose()
    assert info.value.code == "invalid_client"
    assert "AADSTS7000215" in info.value.reason and "s3cret" not in str(info.value)


async def test_unknown_tenant_fails_discovery_with_auth_error() -> None:
    def nothing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."}
        )

    provider = msal_token_provider(secret_settings(), transport=httpx.MockTransport(nothing))
    try:
        with pytest.raises(GraphAuthError):
            await provider.token()
    finally:
        await provider.aclose()


async def test_token_is_refreshed_before_it_expires() -> None:
    timer = FakeTimer()
    service = TokenService(lifetime=100)
    provider = msal_token_provider(secret_settings(), transport=httpx.MockTransport(service), timer=timer)
    try:
        assert await provider.token() == "at-1"
        timer.advance(79)
        assert await provider.token() == "at-1"
        timer.advance(2)  # within the last fifth of its life: refresh early
        assert await provider.token() == "at-2"
    finally:
        await provider.aclose()


async def test_graph_401_makes_msal_fetch_a_new_token_once() -> None:
    service = TokenService(lifetime=3599)
    router = Router()
    router.on(
        "GET",
        r"/users/u1$",
        httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}}),
        httpx.Response(200, json={"id": "u1"}),
    )
    client = GraphClient.for_tenant(
        secret_settings(), transport=router.transport, token_transport=httpx.MockTransport(service)
    )
    async with client:
        await client.get_json("/users/u1", scope=Scope.directory())
    assert [r.headers["Authorization"] for r in router.requests] == ["Bearer at-1", "Bearer at-2"]


async def test_concurrent_callers_share_one_fetch() -> None:
    import asyncio

    calls = {"n": 0}

    class Slow:
        async def fetch(self) -> tuple[str, float]:
            calls["n"] += 1
            await asyncio.sleep(0.01)
            return f"t{calls['n']}", 3600.0

        async def aclose(self) -> None:
            return None

    provider = CachedTokenProvider(Slow())
    assert set(await asyncio.gather(*(provider.token() for _ in range(10)))) == {"t1"}
    provider.invalidate("stale-token")  # not the current one: ignored
    assert await provider.token() == "t1"
    provider.invalidate("t1")
    assert await provider.token() == "t2"


def test_region_defaults_and_overrides() -> None:
    assert secret_settings().graph_base_url == "https://graph.microsoft.com/v1.0"
    gov = secret_settings(region=Region.parse("USgovCommunity"))
    assert gov.authority == f"https://login.microsoftonline.us/{TENANT}"
    assert gov.token_scope == "https://graph.microsoft.us/.default"
    dod = secret_settings(region=Region.parse("usdefence"))
    assert dod.graph_base_url == "https://dod-graph.microsoft.us/v1.0"
    china = secret_settings(region=Region.parse("China"))
    assert china.graph_base_url == "https://microsoftgraph.chinacloudapi.cn/v1.0"
    assert china.authority.startswith("https://login.chinacloudapi.cn/")
    assert secret_settings(region=Region.parse("germany")).authority.startswith(
        "https://login.microsoftonline.de/"
    )
    custom = secret_settings(
        graph_endpoint="https://127.0.0.1:9443", authority_endpoint="https://127.0.0.1:9443/"
    )
    assert custom.graph_base_url == "https://127.0.0.1:9443/v1.0"
    assert custom.authority == f"https://127.0.0.1:9443/{TENANT}"
    assert custom.token_scope == "https://graph.microsoft.com/.default"
    with pytest.raises(ValueError, match="unknown region"):
        Region.parse("Mars")
    with pytest.raises(ValueError):
        TenantSettings(tenant="common", client_id="app-1", credential=ClientSecret("x"))


def test_msal_refuses_plain_http_authorities_up_front() -> None:
    with pytest.raises(ValueError, match="https"):
        MsalTokenSource(secret_settings(authority_endpoint="http://127.0.0.1:9443"))


def test_secrets_are_not_in_reprs() -> None:
    settings = secret_settings()
    assert "s3cret" not in repr(settings)
    pfx, _, _ = make_certificate(None)
    assert "PRIVATE KEY" not in repr(ClientCertificate.from_pfx(pfx))
    assert json.dumps({"ok": True})  # keep json imported for the token service above
