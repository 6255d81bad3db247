"""The async Graph HTTP client: auth, limits, retries and classified errors in one place.

Every call names the limit `Scope` it counts against and its cost (SharePoint resource units; 1 for
everything else). A call holds a lane slot from send until its body is consumed, so a streamed
`$value` counts as an in-flight request for the mailbox, as Exchange counts it.

Retry policy (graph-protocol.md §6.6): 429 / 503 / 504 / 509 honour Retry-After (seconds or an
HTTP date measured against the response's own Date header) and pause the whole lane; without it,
exponential back-off with full jitter. 500 / 502 and dropped connections are retried a few times.
A 401 drops the token and re-authenticates once. `get_json` / `send_json` follow 307/308 (Graph
beta's archive mailboxes answer them for auxiliary archives) only to Graph's own origin: the bearer
token never goes to another host. Requests that are not idempotent are only retried
when the service certainly did not act on them (throttling answers, connection never made).
Every failed attempt is logged with Graph's request-id and client-request-id; never the token, and
never the query string of a pre-authenticated URL.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import random
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from m365vault.m365.auth import TokenProvider, msal_token_provider
from m365vault.m365.errors import (
    GraphAuthUnavailable,
    GraphError,
    GraphPermanent,
    GraphThrottled,
    GraphTransient,
    classify_response,
    error_code_chain,
    safe_url,
)
from m365vault.m365.pools import Pools
from m365vault.m365.settings import TenantSettings, tls_verification
from m365vault.m365.throttle import Lane, LimitPolicy, Scope, Throttle
from m365vault.m365.timing import RealTimer, Timer

log = logging.getLogger(__name__)

THROTTLE_STATUSES = frozenset({429, 503, 504, 509})
FLAKY_STATUSES = frozenset({500, 502})
# Connection failures where the request certainly never reached the service.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REDIRECT_STATUSES = frozenset({307, 308})  # method and body kept; 302s (downloads) are the callers'
MAX_REDIRECTS = 5
# Connections to Graph per client (one client per organization): enough for 16 mailboxes at their
# 4-request limit; more only adds TLS sessions (see pools.py for the pool bookkeeping).
MAX_CONNECTIONS = 64
# Kernel receive buffer per connection. Left to autotuning it grows to megabytes on a fast link,
# and the event loop (libuv reads until the socket is drained) then moves all of it into memory
# at once for every busy download, ahead of the reader: memory that followed the number of busy
# downloads (bench_backup (c)). 256 KiB (the kernel doubles it) still covers ~10 MB/s per
# connection at 50 ms round trip.
RECEIVE_BUFFER = 256 * 1024


@dataclass
class Failures:
    """Failures of one call so far, counted per kind: each kind has its own budget."""

    throttled: int = 0
    flaky: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10  # for throttling answers
    max_flaky_attempts: int = 5  # for 500/502 and dropped connections
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_retry_after: float = 600.0  # a longer demand ends the call with GraphThrottled


def segment(value: str) -> str:
    """Quote one path segment (ids are opaque; some contain characters that are unsafe in paths)."""
    return quote(value, safe="!$&'()*+,;=:@")


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from Retry-After: a number, or an HTTP date relative to the Date header."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return None  # no Date header to measure against: fall back to back-off
    return max(0.0, (when - sent).total_seconds())


def _json_body(content: bytes) -> Any:
    try:
        return jsonlib.loads(content) if content else None
    except ValueError:
        return None


class GraphClient:
    """Talks to one tenant's Graph endpoint as one app. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
        timer: Timer | None = None,
        limits: LimitPolicy | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        user_agent: str = "NONISV|m365vault|m365vault/0.1",
        timeout: float = 60.0,
        owns_tokens: bool = False,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self._owns_tokens = owns_tokens  # close the provider with the client (only if we made it)
        self.timer = timer or RealTimer()
        self.throttle = Throttle(limits or LimitPolicy(), self.timer)
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        # Requests beyond the budget wait in Pools, not in httpcore's queue (rescanned against every
        # connection at each request start and end); every connection is kept alive so a busy run
        # does not pay a TLS handshake per request. A given transport (tests) is one pool.
        tls = tls_verification(verify)  # one SSL context shared by the pools
        self._pools = Pools(
            max_connections,
            lambda size: httpx.AsyncClient(
                transport=transport or _graph_transport(size, tls),
                trust_env=False,
                follow_redirects=False,  # 302s to download hosts are followed by hand, without the token
                timeout=httpx.Timeout(timeout, connect=15.0),
                headers={"User-Agent": user_agent},
            ),
            pools=1 if transport is not None else None,
        )

    @classmethod
    def for_tenant(
        cls,
        settings: TenantSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        token_transport: httpx.BaseTransport | None = None,
        tokens: TokenProvider | None = None,
        timer: Timer | None = None,
        limits: LimitPolicy | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> GraphClient:
        """A client for `settings`, with MSAL tokens unless a provider is given."""
        timer = timer or RealTimer()
        provider = tokens or msal_token_provider(settings, transport=token_transport, timer=timer)
        return cls(
            settings.graph_base_url,
            provider,
            owns_tokens=tokens is None,
            transport=transport,
            verify=settings.verify,
            timer=timer,
            limits=limits,
            retry=retry,
            rng=rng,
            user_agent=settings.user_agent,
        )

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pools.aclose()
        if self._owns_tokens:
            await self.tokens.aclose()

    def url(self, path: str) -> str:
        """Absolute URL for a Graph path ("/users/..."); absolute URLs (next links) pass through."""
        if path.startswith(("https://", "http://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def lane(self, scope: Scope) -> Lane:
        return self.throttle.lane(scope)

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        scope: Scope,
        cost: float = 1.0,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        authenticated: bool = True,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with retries and return the response with its body read (2xx or 3xx)."""
        async with self.stream(
            method,
            path,
            scope=scope,
            cost=cost,
            params=params,
            headers=headers,
            json=json,
            content=content,
            authenticated=authenticated,
            idempotent=idempotent,
            read=True,
        ) as response:
            return response

    async def get_json(
        self,
        path: str,
        *,
        scope: Scope,
        cost: float = 1.0,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self._following("GET", path, scope=scope, cost=cost, params=params, headers=headers)
        return _as_object(response)

    async def send_json(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        scope: Scope,
        cost: float = 1.0,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """POST/PATCH a JSON body; returns the JSON answer ({} for 204)."""
        response = await self._following(
            method, path, scope=scope, cost=cost, json=body, headers=headers, idempotent=idempotent
        )
        return _as_object(response) if response.content else {}

    async def _following(
        self,
        method: str,
        path: str,
        *,
        scope: Scope,
        cost: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """`request`, following 307/308 redirects that stay on Graph's origin."""
        url = path
        for _ in range(MAX_REDIRECTS + 1):
            response = await self.request(
                method,
                url,
                scope=scope,
                cost=cost,
                params=params,
                headers=headers,
                json=json,
                idempotent=idempotent,
            )
            if response.status_code not in REDIRECT_STATUSES:
                return response
            url = self._trusted_location(response)
            params = None  # the Location carries the query
        raise GraphPermanent(f"more than {MAX_REDIRECTS} redirects", method=method, url=safe_url(url))

    def _trusted_location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise GraphPermanent(
                f"HTTP {response.status_code} without a Location", url=safe_url(response.request.url)
            )
        target = response.request.url.join(location)
        home = httpx.URL(self.base_url)
        if (target.scheme, target.host, target.port) != (home.scheme, home.host, home.port):
            # Following would hand the bearer token to a host that is not Graph.
            raise GraphPermanent(
                f"Graph redirected to another host ({target.host}); not followed",
                url=safe_url(response.request.url),
            )
        return str(target)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        scope: Scope,
        cost: float = 1.0,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        authenticated: bool = True,
        idempotent: bool | None = None,
        read: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """Send with retries; yield the response (2xx/3xx) while holding the lane slot.

        With `read`, the body is read before yielding (and a cut mid-body is retried); otherwise
        the caller streams it and owns what happens when the connection drops.
        """
        if json is not None:
            content = jsonlib.dumps(json).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        lane = self.lane(scope)
        url = self.url(path)
        attempt = 0
        failures = Failures()
        reauthenticated = False
        while True:
            attempt += 1
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(lane.slot(cost))
                http = await stack.enter_async_context(self._pools.lease())
                request = None
                try:
                    token = await self.tokens.token() if authenticated else None
                    request = self._build(http, method, url, params, headers, content, token, attempt)
                    response = await http.send(request, stream=True)
                    stack.push_async_callback(response.aclose)
                    if response.status_code >= 400 or read:
                        # Reading inside the loop: a connection cut mid-body is retried like a failed send.
                        await response.aread()
                except GraphAuthUnavailable:
                    # The token service is down for a moment: back off like any flaky failure.
                    failures.flaky += 1
                    if failures.flaky >= self.retry.max_flaky_attempts:
                        raise
                    wait = self._backoff(failures.flaky)
                except httpx.TransportError as exc:
                    assert request is not None
                    failures.flaky += 1
                    wait = self._transport_retry(exc, request, failures.flaky, idempotent)
                else:
                    if response.status_code < 400:
                        lane.succeeded()
                        self._heed_rate_limit(response, lane)
                        yield response
                        return
                    body = _json_body(response.content)
                    if response.status_code == 401 and token is not None and not reauthenticated:
                        # An expired or revoked token: fetch a new one once, then treat 401 as final.
                        self._log_failure(response, body, attempt, "re-authenticating")
                        self.tokens.invalidate(token)
                        reauthenticated = True
                        continue
                    wait = self.status_retry(response, body, lane, attempt, failures, idempotent)
            # The lane slot is released before waiting, so a back-off never blocks other workers.
            await self.timer.sleep(wait)

    # ------------------------------------------------------------------ internals

    def _build(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        token: str | None,
        attempt: int,
    ) -> httpx.Request:
        merged: dict[str, str] = {"client-request-id": str(uuid.uuid4())}
        if attempt > 1:
            merged["Retry-Attempt"] = str(attempt - 1)
        merged.update(headers or {})
        if token is not None:
            merged["Authorization"] = f"Bearer {token}"
        return http.build_request(method, url, params=params, headers=merged, content=content)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry.backoff_cap, self.retry.backoff_base * (2 ** (attempt - 1)))
        return self._rng.uniform(0.0, ceiling)

    def _transport_retry(
        self, exc: httpx.TransportError, request: httpx.Request, attempt: int, idempotent: bool
    ) -> float:
        """Seconds to wait before retrying after a dropped connection, or raise GraphTransient."""
        where = f"{request.method} {safe_url(request.url)}"
        retryable = idempotent or isinstance(exc, NOT_SENT_ERRORS)
        if not retryable or attempt >= self.retry.max_flaky_attempts:
            log.warning("Graph %s failed after %d attempt(s): %s", where, attempt, exc.__class__.__name__)
            raise GraphTransient(
                f"connection failed: {exc.__class__.__name__}"
                + ("" if retryable else " (not retried: not idempotent)"),
                method=request.method,
                url=safe_url(request.url),
            ) from exc
        log.info("Graph %s attempt %d: %s; retrying", where, attempt, exc.__class__.__name__)
        return self._backoff(attempt)

    def status_retry(
        self,
        response: httpx.Response,
        body: Any,
        lane: Lane,
        attempt: int,
        failures: Failures,
        idempotent: bool,
    ) -> float:
        """Seconds to wait before retrying this error answer, or raise its classified error.

        Also used for `$batch` sub-responses (m365/batch.py), so both follow one policy."""
        status = response.status_code
        # A 504 may come after the service acted: replaying a non-idempotent write could duplicate it.
        throttled = status in THROTTLE_STATUSES and (idempotent or status != 504)
        flaky = status in FLAKY_STATUSES and idempotent
        if throttled:
            failures.throttled += 1
        elif flaky:
            failures.flaky += 1
        exhausted = (
            failures.throttled >= self.retry.max_attempts
            if throttled
            else failures.flaky >= self.retry.max_flaky_attempts
        )
        if not (throttled or flaky) or exhausted:
            self._log_failure(response, body, attempt, "giving up")
            raise classify_response(response, body)
        retry_after = parse_retry_after(response)
        if retry_after is not None and retry_after > self.retry.max_retry_after:
            self._log_failure(response, body, attempt, f"Retry-After {retry_after:.0f}s too long")
            raise GraphThrottled(
                f"service asked to wait {retry_after:.0f}s",
                status=status,
                request_id=response.headers.get("request-id"),
            )
        wait = (
            retry_after
            if retry_after is not None
            else self._backoff(failures.throttled if throttled else failures.flaky)
        )
        if status == 429 and "applicationthrottled" in (c.lower() for c in error_code_chain(body)):
            lane.concurrency_exceeded()  # over the mailbox's concurrency: fewer at a time, not just later
        if status in (429, 509) or (status == 503 and retry_after is not None):
            # Throttling is per mailbox / tenant: stop every worker of the lane, not just this one.
            lane.pause(wait)
            self._log_failure(response, body, attempt, f"lane {lane.name} paused {wait:.1f}s")
            return 0.0
        self._log_failure(response, body, attempt, f"retrying in {wait:.1f}s")
        return wait

    def _heed_rate_limit(self, response: httpx.Response, lane: Lane) -> None:
        """SharePoint announces an exhausted budget (RateLimit-Remaining: 0) before it throttles:
        wait for RateLimit-Reset instead of spending requests on 429s that count against us."""
        remaining, reset = (
            response.headers.get("ratelimit-remaining"),
            response.headers.get("ratelimit-reset"),
        )
        if remaining is None or reset is None:
            return
        try:
            if float(remaining) <= 0:
                lane.pause(min(float(reset), self.retry.max_retry_after))
        except ValueError:
            return

    def _log_failure(self, response: httpx.Response, body: Any, attempt: int, action: str) -> None:
        request = response.request
        codes = classify_response(response, body).code
        # A 404 is often an answer, not a failure (probing for a mailbox or a OneDrive).
        level = logging.INFO if response.status_code == 404 else logging.WARNING
        log.log(
            level,
            "Graph %s %s -> %d %s (attempt %d; request-id %s; client-request-id %s): %s",
            request.method,
            safe_url(request.url),
            response.status_code,
            codes or "-",
            attempt,
            response.headers.get("request-id", "-"),
            request.headers.get("client-request-id", "-"),
            action,
        )


def _as_object(response: httpx.Response) -> dict[str, Any]:
    body = _json_body(response.content)
    if not isinstance(body, dict):
        raise GraphError(
            "Graph answered with something that is not a JSON object",
            status=response.status_code,
            request_id=response.headers.get("request-id"),
        )
    return body


def _graph_transport(connections: int, tls: bool | ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """One pool's transport: every connection kept alive, a fixed receive buffer."""
    return httpx.AsyncHTTPTransport(
        verify=tls,
        trust_env=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)],
    )
