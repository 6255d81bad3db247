"""Property: replaying delta rounds over the first round always reproduces the collection's listing.

Random writes (creates, updates, deletes, moves in and out, through Graph and simulated activity)
between rounds; after each round the client-side replica must equal what a full listing shows.
"""

from __future__ import annotations

import random

import httpx

from tests.emulator.conftest import Emu, drain

IMMUTABLE = {"Prefer": 'IdType="ImmutableId", odata.maxpagesize=25'}


def _apply(replica: dict[str, dict], changes: list[dict], tombstone: str) -> None:
    for c in changes:  # last write wins by id
        if tombstone in c:
            replica.pop(c["id"], None)
        else:
            replica[c["id"]] = c


def _all_messages(g: httpx.Client, uid: str, folder: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    r = g.get(
        f"/users/{uid}/mailFolders/{folder}/messages", params={"$top": "200", "$select": "isRead,subject"}
    )
    while True:
        out.update({m["id"]: m for m in r.json()["value"]})
        if "@odata.nextLink" not in r.json():
            return out
        r = g.get(r.json()["@odata.nextLink"])


def test_mail_delta_replays_to_the_listing(graph: httpx.Client, emu: Emu) -> None:
    rng = random.Random(1234)
    users = graph.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
    uid = [u for u in users if u["mail"] and u["userType"] == "Member"][-1]["id"]
    url = f"/users/{uid}/mailFolders/inbox/messages/delta"
    first, link, _ = drain(graph, url, IMMUTABLE, {"$select": "isRead,subject"})
    replica = {m["id"]: m for m in first}
    for round_no in range(6):
        live = list(_all_messages(graph, uid, "inbox"))
        for _ in range(rng.randint(1, 6)):
            op = rng.choice(["create", "patch", "delete", "move_out", "move_in"])
            if op == "create":
                graph.post(f"/users/{uid}/mailFolders/inbox/messages", json={"subject": f"r{round_no}"})
            elif op == "move_in":
                others = _all_messages(graph, uid, "archive")
                if others:
                    graph.post(f"/users/{uid}/messages/{rng.choice(list(others))}/move",
                               json={"destinationId": "inbox"}, headers=IMMUTABLE)  # fmt: skip
            elif live:
                mid = live.pop(rng.randrange(len(live)))
                if op == "patch":
                    graph.patch(f"/users/{uid}/messages/{mid}", json={"isRead": rng.random() < 0.5})
                elif op == "delete":
                    graph.delete(f"/users/{uid}/messages/{mid}")
                else:
                    graph.post(f"/users/{uid}/messages/{mid}/move", json={"destinationId": "archive"},
                               headers=IMMUTABLE)  # fmt: skip
        changes, link, _ = drain(graph, link, IMMUTABLE)
        _apply(replica, changes, "@removed")
        truth = _all_messages(graph, uid, "inbox")
        assert set(replica) == set(truth), f"round {round_no}"
        assert {k: v["isRead"] for k, v in replica.items()} == {k: v["isRead"] for k, v in truth.items()}


def _tree(g: httpx.Client, d: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    stack = ["root"]
    while stack:
        for item in g.get(f"/drives/{d}/items/{stack.pop()}/children", params={"$top": "1000"}).json()[
            "value"
        ]:
            out[item["id"]] = item
            if "folder" in item:
                stack.append(item["id"])
    return out


def test_drive_delta_replays_to_the_tree(graph: httpx.Client, emu: Emu) -> None:
    rng = random.Random(99)
    site = graph.get("/sites/getAllSites").json()["value"][2]
    d = graph.get(f"/sites/{site['id']}/drive").json()["id"]
    first, link, _ = drain(graph, f"/drives/{d}/root/delta", params={"$top": "7"})
    root_id = first[0]["id"]
    replica = {i["id"]: i for i in first if i["id"] != root_id}
    for round_no in range(5):
        tree = _tree(graph, d)
        files = [i for i in tree.values() if "file" in i]
        folders = [i for i in tree.values() if "folder" in i]
        for n in range(rng.randint(1, 5)):
            op = rng.choice(["put", "edit", "delete", "move", "mkdir", "rmdir"])
            if op == "put":
                graph.put(
                    f"/drives/{d}/root:/M{round_no}/f{n}.txt:/content", content=b"x" * rng.randint(1, 999)
                )
            elif op == "mkdir":
                spec = {
                    "name": f"D{round_no}{n}",
                    "folder": {},
                    "@microsoft.graph.conflictBehavior": "rename",
                }
                graph.post(f"/drives/{d}/root/children", json=spec)
            elif op == "rmdir" and folders:
                graph.delete(f"/drives/{d}/items/{folders.pop(rng.randrange(len(folders)))['id']}")
            elif files:
                f = files.pop(rng.randrange(len(files)))
                if op == "edit":
                    graph.put(f"/drives/{d}/items/{f['id']}/content", content=b"edited")
                elif op == "delete":
                    graph.delete(f"/drives/{d}/items/{f['id']}")
                elif folders:
                    graph.patch(
                        f"/drives/{d}/items/{f['id']}",
                        json={"parentReference": {"id": rng.choice(folders)["id"]}},
                    )
        changes, link, _ = drain(graph, link)
        _apply(replica, [c for c in changes if c["id"] != root_id], "deleted")
        truth = _tree(graph, d)
        assert set(replica) == set(truth), f"round {round_no}"
        for iid, item in truth.items():
            assert replica[iid].get("size") == item.get("size")
            assert replica[iid]["parentReference"]["id"] == item["parentReference"]["id"]
