"""App-only access tokens (OAuth 2.0 client credentials) for Microsoft Graph.

`MsalTokenProvider` uses MSAL's ConfidentialClientApplication (secret or certificate assertion),
one app object per provider for the process lifetime, as MSAL recommends. MSAL is synchronous, so
every call runs in a worker thread. Its HTTP goes through an httpx client we configure (TLS
verification, `trust_env=False` so REQUESTS_CA_BUNDLE cannot silently override the CA setting, and
an injectable transport for tests).

`CachedTokenProvider` sits in front of it: the token is refreshed ahead of expiry (a fifth of its
lifetime, at most five minutes early), fetched by one caller at a time, and dropped on `invalidate`
after a 401 so the next request re-authenticates exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import msal
from msal.exceptions import MsalServiceError

from m365vault.m365.errors import GraphAuthError, GraphAuthUnavailable
from m365vault.m365.settings import ClientCertificate, ClientSecret, TenantSettings, tls_verification
from m365vault.m365.timing import RealTimer, Timer

log = logging.getLogger(__name__)

MAX_EARLY_REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # on the provider's monotonic clock


class TokenSource(Protocol):
    """Fetches a fresh token from the identity provider (no caching expected)."""

    async def fetch(self) -> tuple[str, float]:
        """Return (access token, lifetime in seconds)."""
        ...

    async def aclose(self) -> None: ...


class TokenProvider(Protocol):
    """What the Graph client needs: a current token, and a way to say it was rejected."""

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...

    async def aclose(self) -> None: ...


class CachedTokenProvider:
    """Caches one token and refreshes it before it expires or after the service rejects it."""

    def __init__(self, source: TokenSource, timer: Timer | None = None) -> None:
        self._source = source
        self._timer = timer or RealTimer()
        self._current: AccessToken | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetch_count = 0  # how often the identity provider was asked (diagnostics, tests)

    async def token(self) -> str:
        current = self._current
        if current is not None and self._timer.monotonic() < self._refresh_at:
            return current.value
        async with self._lock:
            current = self._current
            now = self._timer.monotonic()
            if current is not None and now < self._refresh_at:
                return current.value
            value, lifetime = await self._source.fetch()
            self.fetch_count += 1
            now = self._timer.monotonic()
            early = min(MAX_EARLY_REFRESH_SECONDS, max(0.0, lifetime) / 5)
            self._current = AccessToken(value, now + lifetime)
            self._refresh_at = now + max(0.0, lifetime - early)
            return value

    def invalidate(self, token: str) -> None:
        # Only drop the token that was rejected: a concurrent request may already hold a newer one.
        if self._current is not None and self._current.value == token:
            self._current = None

    async def aclose(self) -> None:
        await self._source.aclose()


class _MsalHttpClient:
    """The small `requests`-like surface MSAL calls (`get`, `post`, `close`), backed by httpx."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers, timeout=kwargs.get("timeout", 30.0))

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if isinstance(data, Mapping):
            # requests decodes bytes form values (MSAL's client assertion is bytes); httpx would
            # send their repr, so decode them here.
            form = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
            return self._client.post(
                url, params=params, data=form, headers=headers, timeout=kwargs.get("timeout", 30.0)
            )
        return self._client.post(
            url, params=params, content=data, headers=headers, timeout=kwargs.get("timeout", 30.0)
        )

    def close(self) -> None:
        self._client.close()


class MsalTokenSource:
    """Client-credentials tokens from MSAL for one (tenant, app) pair."""

    def __init__(self, settings: TenantSettings, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.authority.startswith("https://"):
            # MSAL refuses non-TLS authorities; say so up front instead of failing on first use.
            raise ValueError(f"the authority must be an https URL (MSAL requirement): {settings.authority}")
        self._settings = settings
        self._http = _MsalHttpClient(
            httpx.Client(
                transport=transport, verify=tls_verification(settings.verify), trust_env=False, timeout=30.0
            )
        )
        self._app: msal.ConfidentialClientApplication | None = None

    def _credential(self) -> Any:
        credential = self._settings.credential
        if isinstance(credential, ClientSecret):
            return credential.secret
        assert isinstance(credential, ClientCertificate)
        # Without "thumbprint", MSAL (>= 1.35) derives the SHA-256 thumbprint from the certificate
        # and signs with PS256 / x5t#S256, Entra's current recommendation (SHA-1 x5t is legacy).
        return {"private_key": credential.private_key_pem, "public_certificate": credential.certificate_pem}

    def _acquire(self) -> dict[str, Any]:
        # Runs in a worker thread: building the app performs OpenID discovery over the network.
        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self._settings.client_id,
                client_credential=self._credential(),
                authority=self._settings.authority,
                instance_discovery=False,
                http_client=self._http,
                token_cache=msal.TokenCache(),
            )
        result = self._app.acquire_token_for_client(scopes=[self._settings.token_scope])
        return dict(result or {})

    def _forget_cached(self) -> None:
        # MSAL would hand back a cached token that the service just rejected; remove it.
        if self._app is None:
            return
        cache = self._app.token_cache
        for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(entry)

    async def fetch(self) -> tuple[str, float]:
        try:
            await asyncio.to_thread(self._forget_cached)
            result = await asyncio.to_thread(self._acquire)
        except (httpx.HTTPError, OSError) as exc:
            raise GraphAuthUnavailable(
                f"cannot reach the token service at {self._settings.authority}: {exc.__class__.__name__}"
            ) from exc
        except (ValueError, KeyError) as exc:
            # Raised by MSAL's discovery for unknown tenants or malformed authority documents.
            raise GraphAuthError(
                f"token service discovery failed for {self._settings.authority}: {exc}"
            ) from exc
        except MsalServiceError as exc:  # MSAL raises it for 5xx answers of the token endpoint
            raise GraphAuthUnavailable(f"token service error: {exc}") from exc
        if "access_token" not in result:
            error = str(result.get("error") or "unknown_error")
            description = str(result.get("error_description") or "").splitlines()
            reason = f"{error}: {description[0]}" if description else error
            raise GraphAuthError(f"token request rejected ({reason})", code=error)
        lifetime = float(result.get("expires_in") or 3599)
        return str(result["access_token"]), lifetime

    async def aclose(self) -> None:
        await asyncio.to_thread(self._http.close)


def msal_token_provider(
    settings: TenantSettings, *, transport: httpx.BaseTransport | None = None, timer: Timer | None = None
) -> CachedTokenProvider:
    """The production token provider for `settings` (client secret or certificate)."""
    return CachedTokenProvider(MsalTokenSource(settings, transport=transport), timer=timer)
