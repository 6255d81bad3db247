"""JSON batching (graph-protocol.md §6.5)."""

from __future__ import annotations

import base64

import httpx

from tests.emulator.conftest import Emu


def test_batch_runs_each_request_with_its_own_status(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{uid}/mailFolders/inbox"},
            {"id": "2", "method": "GET", "url": f"/users/{uid}/messages/AAMkmissing", "dependsOn": ["1"]},
            {"id": "3", "method": "GET", "url": "/users?$select=id&$top=2", "dependsOn": ["2"]},
            {
                "id": "4",
                "method": "POST",
                "url": f"/users/{uid}/mailFolders/drafts/messages",
                "headers": {"Content-Type": "application/json"},
                "body": {"subject": "from batch"},
            },
            {"id": "5", "method": "GET", "url": "/v1.0/users?$top=1"},
        ]
    }
    r = graph.post("/$batch", json=body)
    assert r.status_code == 200
    out = {x["id"]: x for x in r.json()["responses"]}
    assert out["1"]["status"] == 200 and out["1"]["body"]["displayName"] == "Inbox"
    assert out["2"]["status"] == 404 and out["2"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert out["3"]["status"] == 424
    assert out["4"]["status"] == 201 and out["4"]["body"]["subject"] == "from batch"
    assert out["5"]["status"] == 200 and len(out["5"]["body"]["value"]) == 1


def test_batch_binary_bodies_are_base64(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    mid = graph.get(f"/users/{uid}/mailFolders/inbox/messages", params={"$top": "1"}).json()["value"][0]["id"]
    r = graph.post(
        "/$batch",
        json={"requests": [{"id": "a", "method": "GET", "url": f"/users/{uid}/messages/{mid}/$value"}]},
    )
    item = r.json()["responses"][0]
    assert item["status"] == 200
    assert base64.b64decode(item["body"]) == graph.get(f"/users/{uid}/messages/{mid}/$value").content


def test_batch_validation(graph: httpx.Client) -> None:
    many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert graph.post("/$batch", json=many).status_code == 400
    dup = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/users"},
            {"id": "A", "method": "GET", "url": "/users"},
        ]
    }
    assert graph.post("/$batch", json=dup).status_code == 400
    no_type = {
        "requests": [{"id": "a", "method": "POST", "url": "/users/x/messages", "body": {"subject": "x"}}]
    }
    assert graph.post("/$batch", json=no_type).status_code == 400
    forward = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/users", "dependsOn": ["b"]},
            {"id": "b", "method": "GET", "url": "/users"},
        ]
    }
    assert graph.post("/$batch", json=forward).status_code == 400
    assert httpx.post(str(graph.base_url) + "/$batch", json={"requests": []}).status_code == 401


def test_throttled_sub_request_carries_its_own_retry_after(
    graph: httpx.Client, emu: Emu, mailbox_user: dict
) -> None:
    uid = mailbox_user["id"]
    emu.admin("POST", "config", {"throttle": {"enabled": True, "mailboxRequestsPer10Min": 3}})
    try:
        reqs = [{"id": str(i), "method": "GET", "url": f"/users/{uid}/mailFolders/inbox"} for i in range(5)]
        out = graph.post("/$batch", json={"requests": reqs}).json()["responses"]
        codes = [r["status"] for r in out]
        assert codes.count(200) == 3 and codes.count(429) == 2
        throttled = next(r for r in out if r["status"] == 429)
        assert int(throttled["headers"]["Retry-After"]) >= 1
    finally:
        emu.admin("POST", "config", {"throttle": {"enabled": False, "mailboxRequestsPer10Min": 10_000}})


def test_sub_requests_fail_on_their_own_and_answers_are_not_in_request_order(
    graph: httpx.Client, emu: Emu
) -> None:
    reqs = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(20)]
    out = graph.post("/$batch", json={"requests": reqs}).json()["responses"]
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in reqs)
    assert [r["id"] for r in out] != [r["id"] for r in reqs]
    emu.admin("POST", "config", {"faultRate": 0.6})
    try:
        statuses: list[int] = []
        for _ in range(20):
            try:
                r = graph.post("/$batch", json={"requests": reqs})
            except httpx.TransportError:
                continue  # the batch request itself may draw a fault too
            if r.status_code == 200:
                statuses += [x["status"] for x in r.json()["responses"]]
            if len(statuses) >= 40:
                break
    finally:
        emu.admin("POST", "config", {"faultRate": 0})
    assert {200, 500, 503} <= set(statuses), statuses


def test_stats_count_requests_by_route_and_round_trips(
    emu: Emu, graph: httpx.Client, mailbox_user: dict
) -> None:
    uid = mailbox_user["id"]
    stats = emu.admin("GET", "stats").json()
    before, trips = stats["routes"], stats["roundTrips"]
    assert graph.get(f"/users/{uid}/mailboxSettings").status_code == 200
    probes = [{"id": str(n), "method": "GET", "url": f"/users/{uid}/mailboxSettings"} for n in range(3)]
    probes.append({"id": "d", "method": "GET", "url": f"/users/{uid}/drive"})
    assert graph.post("/$batch", json={"requests": probes}).status_code == 200
    stats = emu.admin("GET", "stats").json()
    after = stats["routes"]
    assert stats["roundTrips"] - trips == 2  # the GET and the POST

    def spent(route: str) -> int:
        return int(after.get(route, 0)) - int(before.get(route, 0))

    assert spent("GET users/{user}/mailboxSettings") == 4
    assert spent("POST $batch") == 1
    assert spent("GET drives/{drive}") == 1  # a drive alias counts as the drive it names
