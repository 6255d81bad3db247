"""Test tools for the connector: a fake timer, a fake token provider and a Graph router for
httpx.MockTransport that answers with the response bodies documented in graph-protocol.md."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from m365vault.m365.client import GraphClient, RetryPolicy
from m365vault.m365.throttle import LimitPolicy

GRAPH = "https://graph.microsoft.com/v1.0"
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class FakeTimer:
    """Monotonic time that only moves when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeTokens:
    """Hands out token-1, token-2, ...; a rejected token is replaced by the next one."""

    def __init__(self) -> None:
        self.serial = 1
        self.invalidated: list[str] = []

    @property
    def current(self) -> str:
        return f"token-{self.serial}"

    async def token(self) -> str:
        return self.current

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == self.current:
            self.serial += 1

    async def aclose(self) -> None:
        return None


def graph_error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    """A Graph error in the documented OData shape (§7.1) with a request-id header."""
    body = {
        "error": {
            "code": code,
            "message": message or code,
            "innerError": {
                "date": "2024-05-01T12:00:00",
                "request-id": f"req-{code}",
                "client-request-id": "c",
            },
        }
    }
    return httpx.Response(status, json=body, headers={"request-id": f"req-{code}", **(headers or {})})


def collection(
    value: list[dict[str, Any]], next_link: str | None = None, delta_link: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"@odata.context": f"{GRAPH}/$metadata#Collection", "value": value}
    if next_link:
        body["@odata.nextLink"] = next_link
    if delta_link:
        body["@odata.deltaLink"] = delta_link
    return httpx.Response(200, json=body)


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handlers: list[Handler]
    repeat_last: bool = True
    hits: int = 0


@dataclass
class Router:
    """Routes by method and a regex on the full URL; a route replays its handlers in order.

    A `POST .../$batch` no route takes is answered like Graph: each sub-request through the routes
    as a request of its own (kept in `batched`; `requests` holds what came over the wire)."""

    routes: list[Route] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    batched: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, pattern: str, *handlers: Handler | httpx.Response) -> Route:
        wrapped = [h if callable(h) else _const(h) for h in handlers]
        route = Route(method.upper(), re.compile(pattern), wrapped)
        self.routes.insert(0, route)  # later registrations win, so tests can override
        return route

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self._route(request)

    async def _route(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        for route in self.routes:
            if route.method == request.method and route.pattern.search(url):
                handler = route.handlers[min(route.hits, len(route.handlers) - 1)]
                route.hits += 1
                result = handler(request)
                if not isinstance(result, httpx.Response):
                    result = await result
                return result
        if request.method == "POST" and request.url.path.endswith("/$batch"):
            return await self._batch(request)
        return graph_error(404, "itemNotFound", f"no route for {request.method} {url}")

    async def _batch(self, request: httpx.Request) -> httpx.Response:
        root = str(request.url).removesuffix("/$batch")
        answers = []
        for sub in json_of(request)["requests"]:
            headers = {**(sub.get("headers") or {}), "Authorization": request.headers["Authorization"]}
            one = httpx.Request(sub["method"], root + sub["url"], headers=headers)
            self.batched.append(one)
            response = await self._route(one)
            await response.aread()
            body = json.loads(response.content) if response.content else None
            answers.append(
                {
                    "id": sub["id"],
                    "status": response.status_code,
                    "headers": dict(response.headers),
                    "body": body,
                }
            )
        return httpx.Response(200, json={"responses": answers[::-1]})  # Graph answers in any order

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def sent(self, method: str, pattern: str) -> list[httpx.Request]:
        rx = re.compile(pattern)
        return [r for r in self.requests if r.method == method and rx.search(str(r.url))]

    def sent_in_batches(self, method: str, pattern: str) -> list[httpx.Request]:
        rx = re.compile(pattern)
        return [r for r in self.batched if r.method == method and rx.search(str(r.url))]


def _const(response: httpx.Response) -> Handler:
    # Responses are single-use objects; rebuild one per call so a route can repeat.
    status, headers, content = response.status_code, dict(response.headers), response.content

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=content)

    return handler


def json_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def make_client(
    router: Router, timer: FakeTimer | None = None, **kwargs: Any
) -> tuple[GraphClient, FakeTokens, FakeTimer]:
    timer = timer or FakeTimer()
    tokens = FakeTokens()
    client = GraphClient(
        GRAPH,
        tokens,
        transport=router.transport,
        timer=timer,
        retry=kwargs.pop("retry", RetryPolicy()),
        limits=kwargs.pop("limits", LimitPolicy()),
        **kwargs,
    )
    return client, tokens, timer


async def byte_stream(total: int, chunk: int = 65536, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """Deterministic bytes (i % 251), optionally dropping the connection after `fail_after` bytes."""
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        if fail_after is not None and sent + n > fail_after:
            n = fail_after - sent
            if n > 0:
                yield pattern_bytes(sent, n)
            raise httpx.ReadError("connection dropped by the fake server")
        yield pattern_bytes(sent, n)
        sent += n


_CYCLE = bytes(range(251))


def pattern_bytes(offset: int, length: int) -> bytes:
    start = offset % 251
    return (_CYCLE * (length // 251 + 2))[start : start + length]
