"""Admin API: simulated activity, config knobs, throttling, faults, persistence across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.conftest import Emu, drain, start_emulator


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    """A private emulator: these tests change knobs and restart it."""
    e = start_emulator(tmp_path_factory.mktemp("admin") / "state", seed=11)
    try:
        yield e
    finally:
        e.process.terminate()


def test_config_defaults_validation_and_round_trip(own: Emu) -> None:
    cfg = own.admin("GET", "config").json()
    assert cfg["latencyMs"] == 0 and cfg["faultRate"] == 0 and cfg["throttle"]["enabled"] is False
    assert cfg["throttle"]["mailboxConcurrency"] == 4 and cfg["throttle"]["mailboxRequestsPer10Min"] == 10_000
    assert cfg["tokenLifetimeSeconds"] == 3599
    bad = own.admin("POST", "config", {"faultRate": 2, "latencyMs": 5})
    assert bad.status_code == 400
    assert own.admin("GET", "config").json()["latencyMs"] == 0  # bad input changes nothing
    assert own.admin("POST", "config", {"bogus": 1}).status_code == 400
    r = own.admin("POST", "config", {"latencyMs": 1, "throttle": {"mailboxRequestsPer10Min": 9000}})
    assert r.json()["latencyMs"] == 1 and r.json()["throttle"]["mailboxRequestsPer10Min"] == 9000
    own.admin("POST", "config", {"latencyMs": 0, "throttle": {"mailboxRequestsPer10Min": 10_000}})


def test_activity_is_deterministic_and_shows_in_delta(
    own: Emu, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with own.client() as g:
        users = g.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
        boxes = [u["id"] for u in users if u["mail"] and u["userType"] == "Member"]
        links = {
            u: drain(g, f"/users/{u}/mailFolders/inbox/messages/delta", {"Prefer": 'IdType="ImmutableId"'})[1]
            for u in boxes
        }
        drives = [
            d["id"]
            for s in g.get("/sites/getAllSites").json()["value"]
            for d in g.get(f"/sites/{s['id']}/drives").json()["value"]
        ]
        drive_links = {d: drain(g, f"/drives/{d}/root/delta")[1] for d in drives}
        spec = {
            "seed": 5,
            "newMessages": 4,
            "deletedMessages": 2,
            "movedMessages": 2,
            "updatedMessages": 2,
            "newFiles": 3,
            "editedFiles": 2,
            "deletedFiles": 1,
            "newGroupPosts": 1,
            "newGroupThreads": 1,
            "newArchiveItems": 2,
            "deletedArchiveItems": 1,
        }
        bad = own.admin("POST", "activity", {**spec, "newMessages": -1})
        assert bad.status_code == 400
        done = own.admin("POST", "activity", spec).json()
        assert {k: len(v) for k, v in done.items()} == {k: v for k, v in spec.items() if k != "seed"}
        seen_mail = {}
        for _u, link in links.items():
            for c in drain(g, link, {"Prefer": 'IdType="ImmutableId"'})[0]:
                seen_mail[c["id"]] = c
        for m in done["newMessages"]:
            if m["id"] in seen_mail:
                assert seen_mail[m["id"]]["isRead"] is False
        assert all(m["id"] in seen_mail for m in done["newMessages"])
        for m in done["deletedMessages"]:
            assert g.get(f"/users/{m['user']}/messages/{m['id']}").status_code == 404
        seen_files = {}
        for _d, link in drive_links.items():
            for c in drain(g, link)[0]:
                seen_files[c["id"]] = c
        assert all(f["id"] in seen_files for f in done["newFiles"] + done["editedFiles"])
        assert all(seen_files[f["id"]].get("deleted") for f in done["deletedFiles"])
    # The same seed on a fresh tenant does the same things.
    twin = start_emulator(tmp_path_factory.mktemp("twin") / "state", seed=11)
    try:
        again = twin.admin("POST", "activity", spec).json()
    finally:
        twin.process.terminate()
    assert [m["user"] for m in again["newMessages"]] == [m["user"] for m in done["newMessages"]]
    assert (
        again["deletedMessages"] == done["deletedMessages"]
        and again["movedMessages"] == done["movedMessages"]
    )
    assert [f["name"] for f in again["newFiles"]] == [f["name"] for f in done["newFiles"]]


def test_mailbox_concurrency_and_window_limits(own: Emu) -> None:
    with own.client() as g:
        uid = next(u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"])[
            "id"
        ]
    token = own.token()
    own.admin("POST", "config", {"latencyMs": 300, "throttle": {"enabled": True, "mailboxConcurrency": 2}})
    try:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as c:
                return await asyncio.gather(
                    *[c.get(f"{own.graph}/users/{uid}/mailFolders/inbox") for _ in range(5)]
                )

        codes = sorted(r.status_code for r in asyncio.run(burst()))
        assert codes.count(200) == 2 and codes.count(429) == 3
        throttled = next(r for r in asyncio.run(burst()) if r.status_code == 429)
        assert throttled.json() == {
            "error": {
                "code": "ApplicationThrottled",
                "message": "Application is over its MailboxConcurrency limit.",
            }
        }
        assert int(throttled.headers["Retry-After"]) >= 1
        own.admin(
            "POST",
            "config",
            {"latencyMs": 0, "throttle": {"mailboxConcurrency": 4, "mailboxRequestsPer10Min": 15}},
        )
        with own.client() as g:
            codes2 = [g.get(f"/users/{uid}/mailFolders/inbox").status_code for _ in range(6)]
            assert 429 in codes2
            r = g.get(f"/users/{uid}/mailFolders/inbox")
            assert r.status_code == 429 and r.json()["error"]["code"] == "TooManyRequests"
            assert int(r.headers["Retry-After"]) > 1
            assert g.get("/users").status_code == 200  # other workloads are not affected
    finally:
        own.admin(
            "POST",
            "config",
            {
                "latencyMs": 0,
                "throttle": {"enabled": False, "mailboxConcurrency": 4, "mailboxRequestsPer10Min": 10_000},
            },
        )


def test_sharepoint_resource_units(own: Emu) -> None:
    own.admin("POST", "config", {"throttle": {"enabled": True, "sharePointResourceUnitsPerMinute": 10}})
    try:
        with own.client() as g:
            d = g.get("/sites/root/drive").json()["id"]  # 1 RU
            statuses, headers = [], []
            for _ in range(6):
                r = g.get(f"/drives/{d}/root/children")  # 2 RU each
                statuses.append(r.status_code)
                headers.append(r.headers)
            assert statuses[:4] == [200] * 4 and 503 in statuses
            throttled = headers[statuses.index(503)]
            assert int(throttled["Retry-After"]) >= 1
            assert any("RateLimit-Remaining" in h for h in headers[:4])
    finally:
        own.admin(
            "POST", "config", {"throttle": {"enabled": False, "sharePointResourceUnitsPerMinute": 1200}}
        )


def test_fault_injection(own: Emu) -> None:
    own.admin("POST", "config", {"faultRate": 0.6})
    try:
        with own.client() as g:
            outcomes: list[int | str] = []
            for _ in range(40):
                try:
                    outcomes.append(g.get("/users").status_code)
                except httpx.TransportError:
                    outcomes.append("dropped")
    finally:
        own.admin("POST", "config", {"faultRate": 0})
    assert {200, 500, 503, "dropped"} <= set(outcomes), outcomes
    stats = own.admin("GET", "stats").json()["statuses"]
    served = [o for o in outcomes if isinstance(o, int)]
    assert stats.get("500", 0) >= served.count(500) > 0 and stats.get("503", 0) >= served.count(503) > 0
    with own.client() as g:
        assert g.get("/users").status_code == 200


def test_restart_keeps_tenant_changes_and_tokens(own: Emu) -> None:
    with own.client() as g:
        uid = [u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"]][1][
            "id"
        ]
        _, link, _ = drain(g, f"/users/{uid}/mailFolders/drafts/messages/delta")
        created = g.post(
            f"/users/{uid}/mailFolders/drafts/messages", json={"subject": "survives restart"}
        ).json()
    own.process.terminate()
    again = start_emulator(own.state_dir, seed=99)  # the stored seed wins over the flag
    own.process, own.base = again.process, again.base
    with own.client() as g:
        assert g.get(f"/users/{uid}/messages/{created['id']}").json()["subject"] == "survives restart"
        old_link = link.split("/v1.0", 1)[1]
        changes, _, _ = drain(g, old_link)
        assert [c["id"] for c in changes] == [created["id"]]
    assert own.admin("GET", "health").json()["seed"] == 11


def test_duplicates_knob_and_fragment_rule(own: Emu) -> None:
    own.admin("POST", "config", {"deltaDuplicates": True, "enforceUploadFragmentMultiple": True})
    try:
        with own.client() as g:
            uid = next(
                u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"]
            )["id"]
            page = g.get(f"/users/{uid}/mailFolders/inbox/messages/delta").json()["value"]
            ids = [m["id"] for m in page]
            assert len(ids) == len(set(ids)) + 1  # one item repeated, as Graph may do
            d = g.get(f"/users/{uid}/drive").json()["id"]
            s = g.post(f"/drives/{d}/root:/f.bin:/createUploadSession", json={}).json()
            r = httpx.put(s["uploadUrl"], content=b"x" * 1000, headers={"Content-Range": "bytes 0-999/5000"})
            assert r.status_code == 400
            r = httpx.put(s["uploadUrl"], content=b"x" * 5000, headers={"Content-Range": "bytes 0-4999/5000"})
            assert r.status_code == 201  # the last fragment may be any size
    finally:
        own.admin("POST", "config", {"deltaDuplicates": False, "enforceUploadFragmentMultiple": False})


def test_mailbox_upload_budget(own: Emu) -> None:
    own.admin("POST", "config", {"throttle": {"enabled": True, "mailboxUploadBytesPer5Min": 200_000}})
    try:
        with own.client() as g:
            uid = next(
                u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"]
            )["id"]
            body = {"subject": "s", "body": {"contentType": "text", "content": "x" * 90_000}}
            codes = [
                g.post(f"/users/{uid}/mailFolders/drafts/messages", json=body).status_code for _ in range(3)
            ]
            assert codes == [201, 201, 429]
    finally:
        own.admin("POST", "config", {"throttle": {"enabled": False, "mailboxUploadBytesPer5Min": 157286400}})


def test_replication_lag_delays_changes_by_a_round(own: Emu) -> None:
    with own.client() as g:
        uid = next(u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"])[
            "id"
        ]
        url = f"/users/{uid}/mailFolders/junkemail/messages/delta"
        _, link, _ = drain(g, url)
        own.admin("POST", "config", {"deltaReplicationLagSeconds": 60})
        try:
            new = g.post(f"/users/{uid}/mailFolders/junkemail/messages", json={"subject": "lagging"}).json()[
                "id"
            ]
            early, link2, _ = drain(g, link)
            assert early == []  # not replicated yet
            own.admin("POST", "config", {"clockOffsetSeconds": 120})
            late, _, _ = drain(g, link2)
            assert [m["id"] for m in late] == [new]
        finally:
            own.admin("POST", "config", {"deltaReplicationLagSeconds": 0, "clockOffsetSeconds": 0})
