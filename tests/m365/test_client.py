"""GraphClient: retries, Retry-After, lane pauses, concurrency caps, re-auth and failure logging."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from m365vault.m365.client import GraphClient, RetryPolicy, parse_retry_after
from m365vault.m365.errors import (
    GraphAuthError,
    GraphForbidden,
    GraphThrottled,
    GraphTransient,
)
from m365vault.m365.throttle import LimitPolicy, Scope, SlidingWindow
from tests.m365.fakes import GRAPH, FakeTimer, FakeTokens, Router, graph_error, make_client

THROTTLED_429 = httpx.Response(
    429,
    headers={"Retry-After": "10", "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2"},
    json={
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": "2020-08-18T12:51:51",
                "message": "Please retry after",
                "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2",
                "status": "429",
            },
        }
    },
)
OK = httpx.Response(200, json={"id": "u1"})


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    router = Router()
    router.on("GET", r"/users/u1/mailboxSettings", THROTTLED_429, OK)
    client, _, timer = make_client(router)
    async with client:
        body = await client.get_json("/users/u1/mailboxSettings", scope=Scope.mailbox("u1"))
    assert body == {"id": "u1"}
    assert sum(timer.sleeps) == pytest.approx(10.0)
    retry = router.requests[1]
    assert retry.headers["Retry-Attempt"] == "1"
    assert retry.headers["client-request-id"] != router.requests[0].headers["client-request-id"]


async def test_throttle_pauses_every_worker_of_the_mailbox_but_not_others() -> None:
    # Real (short) time here: the point is what other workers do while one lane is paused.
    router = Router()
    seen: list[tuple[str, float]] = []
    throttled = asyncio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        user = request.url.path.split("/")[3]
        seen.append((f"{user}:{request.url.path.rsplit('/', 1)[-1]}", time.monotonic()))
        if request.url.path.endswith("/a") and len([s for s in seen if s[0] == "u1:a"]) == 1:
            throttled.set()
            return httpx.Response(
                429, headers={"Retry-After": "0.3"}, json={"error": {"code": "ApplicationThrottled"}}
            )
        return httpx.Response(200, json={})

    router.on("GET", r"/users/", answer)
    client = GraphClient(GRAPH, FakeTokens(), transport=router.transport)
    async with client:
        first = asyncio.create_task(client.get_json("/users/u1/messages/a", scope=Scope.mailbox("u1")))
        await asyncio.wait_for(throttled.wait(), 5)
        await asyncio.sleep(0.05)  # u1 is now paused
        started = time.monotonic()
        await asyncio.gather(
            client.get_json("/users/u1/messages/b", scope=Scope.mailbox("u1")),
            client.get_json("/users/u2/messages/c", scope=Scope.mailbox("u2")),
        )
        await first
    at = dict(seen[1:])
    assert at["u2:c"] - started < 0.1  # another mailbox is not held back
    assert at["u1:b"] - seen[0][1] >= 0.29  # a sibling worker of the throttled mailbox waited
    assert at["u1:a"] - seen[0][1] >= 0.29  # and so did the retry


def _slow_counting(in_flight: dict[str, int]) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """A 10 ms handler that records how many requests it holds at once (echoing the path)."""

    async def slow(request: httpx.Request) -> httpx.Response:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.01)
        in_flight["now"] -= 1
        return httpx.Response(200, json={"id": request.url.path})

    return slow


async def test_at_most_four_concurrent_requests_per_mailbox() -> None:
    router = Router()
    in_flight = {"now": 0, "max": 0}
    router.on("GET", r"/users/", _slow_counting(in_flight))
    client, _, _ = make_client(router)
    async with client:
        await asyncio.gather(
            *(client.get_json(f"/users/u1/messages/{i}", scope=Scope.mailbox("u1")) for i in range(12))
        )
        assert in_flight["max"] == 4
        in_flight["max"] = 0
        await asyncio.gather(
            *(
                client.get_json(f"/users/u{i % 3}/messages/{i}", scope=Scope.mailbox(f"u{i % 3}"))
                for i in range(12)
            )
        )
        assert in_flight["max"] > 4  # three mailboxes, each with its own cap


async def test_requests_beyond_the_connection_budget_wait_their_turn() -> None:
    router = Router()
    in_flight = {"now": 0, "max": 0}
    router.on("GET", r"/users/", _slow_counting(in_flight))
    client = GraphClient(GRAPH, FakeTokens(), transport=router.transport, max_connections=5)
    async with client:
        answers = await asyncio.gather(
            *(client.get_json(f"/users/u{i}/messages/m", scope=Scope.mailbox(f"u{i}")) for i in range(30))
        )
    assert in_flight["max"] == 5  # 30 mailboxes could go 4-wide each; the pool allows 5 in all
    assert sorted(a["id"] for a in answers) == sorted(f"/v1.0/users/u{i}/messages/m" for i in range(30))


async def test_sharepoint_window_admits_a_minutes_budget_at_once_then_waits_for_it_to_slide() -> None:
    router = Router()
    router.on("GET", r"/drives/", httpx.Response(200, json={}))
    limits = LimitPolicy(sharepoint_resource_units_per_minute=60)
    client, _, timer = make_client(router, limits=limits)
    async with client:
        start = timer.now
        for i in range(30):  # 60 RU: the whole minute's budget, no wait
            await client.get_json(f"/drives/d/items/{i}", scope=Scope.sharepoint(), cost=2)
        assert timer.now == start
        await client.get_json("/drives/d/items/x", scope=Scope.sharepoint(), cost=1)
    # The 61st unit waits until the first spending leaves the window, a minute later.
    assert timer.now - start == pytest.approx(60.0, abs=1.01)
    assert len(router.requests) == 31


async def test_sliding_window_never_spends_more_than_its_limit_in_any_period() -> None:
    timer = FakeTimer()
    window = SlidingWindow(limit=100, period=10.0, timer=timer)
    start = timer.now
    spent: list[tuple[float, float]] = []
    for n in range(400):
        cost = 1 + n % 3
        await window.take(cost)
        spent.append((timer.now, cost))
        await timer.sleep(0.013 * (n % 7))  # uneven arrivals
    for at, _ in spent:
        in_period = sum(cost for when, cost in spent if at - 10.0 < when <= at)
        assert in_period <= 100
    # 800 units at 100 per 10 s take at least 70 s, and the window does not hold back much more.
    assert 70.0 <= timer.now - start <= 90.0


@pytest.mark.parametrize("status", [503, 504])
async def test_5xx_back_off_with_jitter_then_succeed(status: int) -> None:
    router = Router()
    router.on("GET", r"/users/u1$", graph_error(status, "serviceNotAvailable"), graph_error(status, "x"), OK)
    client, _, timer = make_client(router, retry=RetryPolicy(backoff_base=2.0))
    async with client:
        assert (await client.get_json("/users/u1", scope=Scope.directory()))["id"] == "u1"
    assert len(router.requests) == 3
    waits = [s for s in timer.sleeps if s > 0]
    assert len(waits) == 2 and waits[0] <= 2.0 and waits[1] <= 4.0


async def test_throttling_that_never_ends_becomes_graph_throttled(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()
    router.on("GET", r"/users/u1/messages", THROTTLED_429)
    client, tokens, _ = make_client(router, retry=RetryPolicy(max_attempts=5))
    caplog.set_level(logging.INFO, logger="m365vault.m365")
    async with client:
        with pytest.raises(GraphThrottled) as info:
            await client.get_json("/users/u1/messages", scope=Scope.mailbox("u1"))
    assert len(router.requests) == 5
    assert info.value.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"
    assert info.value.status == 429
    logged = caplog.text
    assert "request-id 94fb3b52-452a-4535-a601-69e0a90e3aa2" in logged
    assert tokens.current not in logged and "Bearer" not in logged


async def test_retry_after_longer_than_allowed_fails_fast() -> None:
    router = Router()
    router.on("GET", r"/users/u1$", httpx.Response(429, headers={"Retry-After": "3600"}, json={}))
    client, _, timer = make_client(router)
    async with client:
        with pytest.raises(GraphThrottled):
            await client.get_json("/users/u1", scope=Scope.directory())
    assert len(router.requests) == 1 and sum(timer.sleeps) == 0


def test_retry_after_http_date_is_measured_against_the_date_header() -> None:
    response = httpx.Response(
        503,
        headers={"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT", "Date": "Wed, 21 Oct 2026 07:28:00 GMT"},
    )
    assert parse_retry_after(response) == 30.0
    assert parse_retry_after(httpx.Response(503, headers={"Retry-After": "1.5"})) == 1.5
    assert (
        parse_retry_after(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}))
        is None
    )


async def test_401_reauthenticates_once_with_a_new_token() -> None:
    router = Router()
    expired = graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
    router.on("GET", r"/users/u1$", expired, OK)
    client, tokens, _ = make_client(router)
    async with client:
        await client.get_json("/users/u1", scope=Scope.directory())
    assert [r.headers["Authorization"] for r in router.requests] == ["Bearer token-1", "Bearer token-2"]
    assert tokens.invalidated == ["token-1"]


async def test_401_twice_is_an_auth_error() -> None:
    router = Router()
    router.on("GET", r"/users/u1$", graph_error(401, "InvalidAuthenticationToken"))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphAuthError):
            await client.get_json("/users/u1", scope=Scope.directory())
    assert len(router.requests) == 2


async def test_403_is_not_retried() -> None:
    router = Router()
    router.on("GET", r"/users$", graph_error(403, "Authorization_RequestDenied", "Insufficient privileges"))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphForbidden) as info:
            await client.get_json("/users", scope=Scope.directory())
    assert len(router.requests) == 1
    assert "Insufficient privileges" in info.value.reason


async def test_dropped_connections_are_retried_for_reads() -> None:
    router = Router()
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"ok": True})

    router.on("GET", r"/users/u1$", flaky)
    client, _, _ = make_client(router)
    async with client:
        assert await client.get_json("/users/u1", scope=Scope.directory()) == {"ok": True}
    assert calls["n"] == 3


async def test_a_post_whose_connection_dropped_is_not_replayed() -> None:
    router = Router()

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    router.on("POST", r"/messages$", drop)
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphTransient, match="not idempotent"):
            await client.send_json(
                "POST", "/users/u1/mailFolders/f/messages", {"subject": "x"}, scope=Scope.mailbox("u1")
            )
    assert len(router.requests) == 1


async def test_a_post_that_never_connected_is_retried() -> None:
    router = Router()
    calls = {"n": 0}

    def refuse_once(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(201, json={"id": "m1"})

    router.on("POST", r"/messages$", refuse_once)
    client, _, _ = make_client(router)
    async with client:
        body = await client.send_json(
            "POST", "/users/u1/mailFolders/f/messages", {}, scope=Scope.mailbox("u1")
        )
    assert body == {"id": "m1"}


async def test_failure_log_omits_query_of_preauthenticated_urls(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()
    router.on("GET", r"download\.aspx", graph_error(404, "itemNotFound"))
    client, _, _ = make_client(router)
    caplog.set_level(logging.INFO, logger="m365vault.m365")
    async with client:
        with pytest.raises(Exception):  # noqa: B017 (the class is tested elsewhere)
            await client.request(
                "GET",
                "https://contoso.sharepoint.com/_layouts/15/download.aspx?tempauth=SECRET",
                scope=Scope.sharepoint(),
                authenticated=False,
            )
    assert "SECRET" not in caplog.text and "download.aspx" in caplog.text
    assert "Authorization" not in router.requests[0].headers


async def test_next_links_and_relative_paths_resolve_against_the_base() -> None:
    router = Router()
    router.on("GET", r".*", OK)
    client, _, _ = make_client(router)
    async with client:
        await client.get_json("/users/u1", scope=Scope.directory())
        await client.get_json(
            "https://graph.microsoft.com/v1.0/users?$skiptoken=X%274453%27", scope=Scope.directory()
        )
    assert str(router.requests[0].url) == f"{GRAPH}/users/u1"
    assert "$skiptoken=X%274453%27" in str(router.requests[1].url)


async def test_a_json_body_cut_mid_way_is_fetched_again() -> None:
    router = Router()
    calls = {"n": 0}

    async def cut() -> AsyncIterator[bytes]:
        yield b'{"value": [{"id"'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(200, headers={"Content-Length": "1024"}, content=cut())
        return httpx.Response(200, json={"value": [{"id": "u1"}]})

    router.on("GET", r"/users$", answer)
    client, _, _ = make_client(router)
    async with client:
        assert await client.get_json("/users", scope=Scope.directory()) == {"value": [{"id": "u1"}]}
    assert calls["n"] == 2


async def test_throttle_and_flaky_failures_have_separate_budgets() -> None:
    router = Router()
    busy = httpx.Response(503, headers={"Retry-After": "1"}, json={"error": {"code": "serviceNotAvailable"}})
    flaky = graph_error(500, "generalException")
    router.on("GET", r"/users/u1$", busy, busy, busy, flaky, busy, flaky, busy, OK)
    client, _, _ = make_client(router, retry=RetryPolicy(max_attempts=6, max_flaky_attempts=3))
    async with client:
        assert (await client.get_json("/users/u1", scope=Scope.directory()))["id"] == "u1"
    assert len(router.requests) == 8


async def test_exhausted_ratelimit_headers_pause_the_sharepoint_lane() -> None:
    router = Router()
    spent = httpx.Response(
        200, headers={"RateLimit-Limit": "1200", "RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, json={}
    )
    router.on("GET", r"/drives/d/items/", spent, httpx.Response(200, json={}))
    client, _, timer = make_client(router)
    async with client:
        await client.get_json("/drives/d/items/1", scope=Scope.sharepoint())
        start = timer.now
        await client.get_json("/drives/d/items/2", scope=Scope.sharepoint())
    assert timer.now - start == pytest.approx(7.0)


async def test_a_write_answered_504_is_not_replayed() -> None:
    router = Router()
    router.on(
        "POST", r"/messages$", graph_error(504, "GatewayTimeout"), httpx.Response(201, json={"id": "dup"})
    )
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphTransient):
            await client.send_json("POST", "/users/u1/mailFolders/f/messages", {}, scope=Scope.mailbox("u1"))
        # A GET answered 504 is simply retried.
        router.on("GET", r"/users/u1$", graph_error(504, "GatewayTimeout"), OK)
        assert (await client.get_json("/users/u1", scope=Scope.directory()))["id"] == "u1"
    assert len(router.sent("POST", r"/messages$")) == 1


async def test_a_token_service_outage_is_retried_then_reported_as_transient() -> None:
    from m365vault.m365.errors import GraphAuthUnavailable

    class Flaky(FakeTokens):
        def __init__(self, failures: int) -> None:
            super().__init__()
            self.failures = failures

        async def token(self) -> str:
            if self.failures:
                self.failures -= 1
                raise GraphAuthUnavailable("cannot reach the token service")
            return await super().token()

    router = Router()
    router.on("GET", r"/users/u1$", OK)
    for outage, ok in ((2, True), (10, False)):
        client = GraphClient(GRAPH, Flaky(outage), transport=router.transport, timer=FakeTimer())
        async with client:
            if ok:
                assert (await client.get_json("/users/u1", scope=Scope.directory()))["id"] == "u1"
            else:
                with pytest.raises(GraphTransient):
                    await client.get_json("/users/u1", scope=Scope.directory())


async def test_concurrency_refusals_lower_the_lane_cap_then_it_recovers() -> None:
    router = Router()
    state = {"now": 0, "refused": 0, "served": 0, "server_cap": 2}

    async def mailbox(request: httpx.Request) -> httpx.Response:
        if state["now"] >= state["server_cap"]:
            state["refused"] += 1
            return httpx.Response(
                429,
                headers={"Retry-After": "1"},
                json={
                    "error": {
                        "code": "ApplicationThrottled",
                        "message": "Application is over its MailboxConcurrency limit.",
                    }
                },
            )
        state["now"] += 1
        await asyncio.sleep(0.002)
        state["now"] -= 1
        state["served"] += 1
        return httpx.Response(200, json={})

    router.on("GET", r"/users/u1/", mailbox)
    client, _, _ = make_client(router)
    lane = client.lane(Scope.mailbox("u1"))
    async with client:
        await asyncio.gather(
            *(client.get_json(f"/users/u1/messages/{i}", scope=Scope.mailbox("u1")) for i in range(40))
        )
        assert state["served"] == 40
        assert lane.limit <= 3  # it learned the service's cap (and may be probing one above it)
        assert state["refused"] <= 6, f"{state['refused']} refusals: the lane kept exceeding the cap"
        # Once the service allows more again, the cap grows back to the ceiling.
        state["server_cap"] = 10
        for i in range(200):
            await client.get_json(f"/users/u1/messages/x{i}", scope=Scope.mailbox("u1"))
        assert lane.limit == 4
