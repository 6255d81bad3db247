"""`$batch` reads of first delta pages against the emulator over real HTTPS: the answers match
plain requests, a throttled sub-request is retried on its own after the lane's pause, and a
failing sub-request fails only its own read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from m365vault.m365 import DeltaResyncRequired, GraphClient, GraphNotFound, Scope
from m365vault.m365.batch import MAX_REQUESTS, BatchGet, get_many, relative_url
from m365vault.m365.delta import DeltaQuery, mail_folders_delta, messages_query, read_delta
from m365vault.m365.settings import tls_verification
from tests.m365.conftest import Emulator
from tests.m365.fakes import GRAPH, Router, collection, make_client
from tests.m365.test_emulator import Collection, mailbox_users

pytestmark = pytest.mark.slow


class BatchTap(httpx.AsyncHTTPTransport):
    """Real HTTP, recording what each `$batch` carried: (sub-request ids, their statuses)."""

    def __init__(self, verify: Any) -> None:
        super().__init__(verify=verify)
        self.batches: list[dict[str, int]] = []
        self.single_gets = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not request.url.path.endswith("/$batch"):
            self.single_gets += request.method == "GET"
            return response
        content = await response.aread()
        answers = {r["id"]: r["status"] for r in json.loads(content)["responses"]}
        sent = [r["id"] for r in json.loads(request.content)["requests"]]
        assert sorted(answers) == sorted(sent)
        self.batches.append(answers)
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def connect(emu: Emulator, tap: BatchTap | None = None) -> GraphClient:
    return GraphClient.for_tenant(emu.settings(), transport=tap)


def tap_for(emu: Emulator) -> BatchTap:
    return BatchTap(verify=tls_verification(str(emu.cert)))


async def folders_of(client: GraphClient, user: str) -> list[str]:
    folders = Collection()
    await folders.sync(lambda **kw: mail_folders_delta(client, user, **kw))
    return sorted(folders.items)


async def first_rounds(client: GraphClient, user: str) -> dict[str, tuple[DeltaQuery, str]]:
    """folder id -> (its message delta query, the delta link after a full first round)."""
    out: dict[str, tuple[DeltaQuery, str]] = {}
    for folder in await folders_of(client, user):
        query = messages_query(client, user, folder)
        token = None
        async for page in read_delta(client, query, token=None, known_ids=list):
            token = page.token or token
        assert token is not None
        out[folder] = (query, token)
    return out


async def changed_ids(
    client: GraphClient, query: DeltaQuery, token: str, first: Any = None
) -> list[tuple[str, bool]]:
    return [
        (change.id, change.removed)
        async for page in read_delta(client, query, token=token, known_ids=list, first=first)
        for change in page.changes
    ]


async def test_batched_first_pages_match_plain_reads(emu: Emulator) -> None:
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        rounds = await first_rounds(client, user)
    emu.admin("POST", "activity", {"seed": 7, "newMessages": 8, "updatedMessages": 4, "deletedMessages": 3})
    # More requests than one batch holds: every folder three times (a token may be read again).
    wanted = [(query, token) for query, token in rounds.values()] * 3
    assert len(wanted) > MAX_REQUESTS
    tap = tap_for(emu)
    async with connect(emu, tap) as client:
        outcomes = await get_many(client, [q.first_request(t) for q, t in wanted], scope=Scope.mailbox(user))
        assert tap.single_gets == 0
        assert [len(b) for b in tap.batches] == [
            min(MAX_REQUESTS, len(wanted) - n) for n in range(0, len(wanted), MAX_REQUESTS)
        ]
        assert all(isinstance(o, dict) for o in outcomes)
        batched = [
            await changed_ids(client, q, t, first=o) for (q, t), o in zip(wanted, outcomes, strict=True)
        ]
        plain = [await changed_ids(client, q, t) for q, t in wanted]
    assert batched == plain
    assert sum(len(ids) for ids in plain) > 0  # the activity did reach some folders


async def test_throttled_sub_requests_are_retried_alone_after_the_lane_pause(emu: Emulator) -> None:
    async with connect(emu) as client:
        busy, calm = (await mailbox_users(client))[:2]
        busy_rounds, calm_rounds = await first_rounds(client, busy), await first_rounds(client, calm)
    requests = [q.first_request(t) for q, t in [*busy_rounds.values(), *calm_rounds.values()]]
    # One request at a time per mailbox, each held for 1.5 s: while a plain GET holds the busy
    # mailbox, its sub-requests are refused with 429 + Retry-After and the calm mailbox's pass.
    emu.admin("POST", "config", {"latencyMs": 1500, "throttle": {"enabled": True, "mailboxConcurrency": 1}})
    tap = tap_for(emu)
    async with connect(emu, tap) as client:
        holder = asyncio.create_task(client.get_json(f"/users/{busy}/mailFolders", scope=Scope.mailbox(busy)))
        await asyncio.sleep(0.5)
        outcomes = await get_many(client, requests, scope=Scope.mailbox(busy))
        await holder
        lane = client.lane(Scope.mailbox(busy))
    assert all(isinstance(o, dict) and "@odata.deltaLink" in o for o in outcomes)
    first, *rest = tap.batches
    refused = {key for key, status in first.items() if status == 429}
    assert len(refused) == len(busy_rounds)  # exactly the busy mailbox's sub-requests
    assert all(status == 200 for key, status in first.items() if key not in refused)
    assert rest and set(rest[0]) == refused  # the retry carried only those
    assert lane.pauses >= 1


async def test_a_failing_sub_request_fails_only_its_own_read(emu: Emulator) -> None:
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        rounds = await first_rounds(client, user)
        emu.admin("POST", "expire", {"scope": "mail"})  # every saved mail token is now stale
        (query, stale), *_ = rounds.values()
        missing = messages_query(client, user, "AAMkAGNvbnRvc28tbm8tc3VjaC1mb2xkZXI=")
        alive = [q.first_request(None) for q, _ in rounds.values()]
        requests = [query.first_request(stale), missing.first_request(None), *alive]
        outcomes = await get_many(client, requests, scope=Scope.mailbox(user))
        assert isinstance(outcomes[0], DeltaResyncRequired)
        assert isinstance(outcomes[1], GraphNotFound)
        assert all(isinstance(o, dict) for o in outcomes[2:])
        # A stale token's error starts a resync round, exactly as if the GET had been sent alone.
        pages = [p async for p in read_delta(client, query, token=stale, known_ids=list, first=outcomes[0])]
        assert pages[-1].resync and pages[-1].complete and pages[-1].token


def test_sub_request_urls_are_relative_to_the_versioned_endpoint() -> None:
    client = GraphClient("https://graph.microsoft.com/v1.0", tokens=None)  # type: ignore[arg-type]
    link = "https://graph.microsoft.com/v1.0/users/u/mailFolders('f')/messages/delta?$deltatoken=a%2Bb"
    assert relative_url(client, BatchGet(link)) == (
        link,
        "/users/u/mailFolders('f')/messages/delta?$deltatoken=a%2Bb",
    )
    first = relative_url(client, BatchGet("/drives/d/root/delta", params={"$top": "5"}))
    assert first is not None and first[1] == "/drives/d/root/delta?%24top=5"
    # A link to another host (or another API version) cannot ride in this endpoint's batch.
    assert relative_url(client, BatchGet("https://contoso.sharepoint.com/_api/x")) is None
    assert relative_url(client, BatchGet("https://graph.microsoft.com/beta/users")) is None


async def test_a_lone_request_is_sent_as_a_plain_get() -> None:
    router = Router()
    router.on("GET", r"/users/u/mailFolders/delta$", collection([{"id": "f"}], delta_link=f"{GRAPH}/d?t=1"))
    client, _, _ = make_client(router)
    async with client:
        (alone,) = await get_many(client, [BatchGet("/users/u/mailFolders/delta")], scope=Scope.mailbox("u"))
        pair = await get_many(client, [BatchGet("/users/u/mailFolders/delta")] * 2, scope=Scope.mailbox("u"))
    assert isinstance(alone, dict) and alone["value"] == [{"id": "f"}]
    assert len(pair) == 2 and len(router.sent("POST", r"/\$batch$")) == 1
    assert len(router.sent("GET", r"/mailFolders/delta$")) == 1  # the lone one; the pair rode the batch
