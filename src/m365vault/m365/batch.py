"""Many GETs in few round trips through JSON batching (`POST /$batch`, graph-protocol.md §6.5).

Graph runs up to 20 sub-requests per batch and answers each with its own status, in any order,
matched here by id. A sub-request is retried on its own, with the same policy as a single request
(`GraphClient.status_retry`): a throttled one (429 / 503 with Retry-After in its headers) pauses
the whole lane, like a throttled single request, and goes into the next batch; any other error
becomes that request's classified `GraphError`, leaving the others alone. Batching saves round
trips, not quota: each sub-request is charged its cost in its own lane (the batch's, unless it
names another: one batch may probe many mailboxes and the SharePoint tenant at once).

Sub-request URLs are relative to the versioned endpoint; a URL outside it (a link to another host)
and any request the batch itself could not carry (the POST failed, an id is missing from the
answer, the sub-request was redirected with 307/308) is sent as a plain GET, so batching never
loses a request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from m365vault.m365.client import REDIRECT_STATUSES, Failures, GraphClient
from m365vault.m365.errors import GraphError, safe_url
from m365vault.m365.throttle import Lane, Scope

MAX_REQUESTS = 20

Outcome = dict[str, Any] | GraphError


@dataclass(frozen=True)
class BatchGet:
    """One GET: a Graph path or absolute URL (a next or delta link, sent verbatim). `scope`: the
    limit it counts against when not the batch's (a mailbox's, SharePoint's)."""

    url: str
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    cost: float = 1.0
    scope: Scope | None = None


@dataclass
class _Pending:
    index: int
    request: BatchGet
    absolute: str
    relative: str
    failures: Failures = field(default_factory=Failures)


def relative_url(
    client: GraphClient, request: BatchGet, endpoint: str | None = None
) -> tuple[str, str] | None:
    """(absolute, relative-to-the-endpoint) URL of `request`, or None when it is outside it."""
    absolute = client.url(request.url)
    if request.params:
        absolute = str(httpx.URL(absolute).copy_merge_params(dict(request.params)))
    base = (endpoint or client.base_url) + "/"
    if not absolute.startswith(base):
        return None
    return absolute, absolute[len(base) - 1 :]


async def get_many(
    client: GraphClient, requests: Sequence[BatchGet], *, scope: Scope, endpoint: str | None = None
) -> list[Outcome]:
    """GET every request, `MAX_REQUESTS` per batch; per request its JSON body or its error.

    `scope` is the lane of the round trip and of every request that names none. `endpoint` is the
    versioned root the batch goes to (default the client's, v1.0; e.g. the beta root for beta
    requests): requests outside it, and a request that comes alone, are sent on their own."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    batchable: list[_Pending] = []
    endpoint = endpoint or client.base_url
    for index, request in enumerate(requests):
        urls = relative_url(client, request, endpoint)
        if urls is None or len(requests) == 1:  # a batch of one saves no round trip
            outcomes[index] = await _single(client, request, scope)
        else:
            batchable.append(_Pending(index, request, *urls))
    for start in range(0, len(batchable), MAX_REQUESTS):
        await _run(client, batchable[start : start + MAX_REQUESTS], outcomes, scope, endpoint)
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(requests)  # every path above settles its request
    return done


async def _single(client: GraphClient, request: BatchGet, scope: Scope) -> Outcome:
    try:
        return await client.get_json(
            request.url,
            scope=request.scope or scope,
            cost=request.cost,
            params=request.params,
            headers=request.headers,
        )
    except GraphError as exc:
        return exc


async def _run(
    client: GraphClient, chunk: list[_Pending], outcomes: list[Outcome | None], scope: Scope, endpoint: str
) -> None:
    pending = {str(number): item for number, item in enumerate(chunk)}
    attempt = 0
    while pending:
        attempt += 1
        try:
            answer = await _post(client, pending, scope, endpoint)
        except GraphError:
            answer = {}  # the batch as a whole failed: each request goes on its own below
        answers = {
            str(sub.get("id")): sub for sub in answer.get("responses") or [] if isinstance(sub, Mapping)
        }
        wait = 0.0
        for key, item in list(pending.items()):
            sub = answers.get(key)
            if sub is None or int(sub.get("status") or 0) in REDIRECT_STATUSES:
                # Not carried, or redirected (an auxiliary archive's 308): a plain GET follows it.
                outcomes[item.index] = await _single(client, item.request, scope)
                del pending[key]
                continue
            outcome: Outcome | None
            try:
                outcome = _accept(sub, item)
                if outcome is None:  # retryable: the lane is paused or a back-off is due
                    lane = client.lane(item.request.scope or scope)
                    wait = max(wait, _retry_wait(client, lane, sub, item, attempt))
                    continue
            except GraphError as exc:
                outcome = exc
            outcomes[item.index] = outcome
            del pending[key]
        if pending and wait > 0:
            await client.timer.sleep(wait)


async def _post(client: GraphClient, pending: dict[str, _Pending], scope: Scope, endpoint: str) -> Any:
    """Send the batch, each sub-request charged in its own lane; the round trip runs in `scope`'s."""
    charges = _charges(pending.values(), scope)
    async with AsyncExitStack() as stack:
        # Other lanes first, in one fixed order, and the round trip's lane last: a batch never
        # holds a slot another batch waits for while it waits itself.
        for other in sorted(charges.keys() - {scope}, key=lambda s: (s.kind.value, s.key)):
            await stack.enter_async_context(client.lane(other).slot(charges[other]))
        return await client.send_json(
            "POST",
            f"{endpoint}/$batch",
            {"requests": [_sub_request(key, item) for key, item in pending.items()]},
            scope=scope,
            cost=charges.get(scope, 0.0),  # the round trip itself is free; its sub-requests are not
            idempotent=True,  # every sub-request is a GET
        )


def _charges(items: Iterable[_Pending], scope: Scope) -> dict[Scope, float]:
    charges: dict[Scope, float] = {}
    for item in items:
        own = item.request.scope or scope
        charges[own] = charges.get(own, 0.0) + item.request.cost
    return charges


def _sub_request(key: str, item: _Pending) -> dict[str, Any]:
    sub: dict[str, Any] = {"id": key, "method": "GET", "url": item.relative}
    if item.request.headers:
        sub["headers"] = dict(item.request.headers)
    return sub


def _response(sub: Mapping[str, Any], item: _Pending) -> httpx.Response:
    """The sub-response as an httpx response, so the single-request classification applies."""
    headers = sub.get("headers")
    body = sub.get("body")
    return httpx.Response(
        int(sub.get("status") or 0),
        headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {},
        content=json.dumps(body).encode() if isinstance(body, dict) else b"",
        request=httpx.Request("GET", item.absolute),
    )


def _accept(sub: Mapping[str, Any], item: _Pending) -> dict[str, Any] | None:
    """The body of a successful sub-response; None for a failed one (see `_retry_wait`)."""
    status = int(sub.get("status") or 0)
    if not 200 <= status < 300:
        return None
    body = sub.get("body")
    if not isinstance(body, dict):
        raise GraphError(
            "a batch sub-response is not a JSON object", status=status, url=safe_url(item.absolute)
        )
    return body


def _retry_wait(
    client: GraphClient, lane: Lane, sub: Mapping[str, Any], item: _Pending, attempt: int
) -> float:
    """Seconds to wait before resending a failed sub-request, or raise its classified error."""
    response = _response(sub, item)
    return client.status_retry(response, sub.get("body"), lane, attempt, item.failures, idempotent=True)
