"""Archive mailboxes through the beta mailbox import/export routes, over real HTTP."""

from __future__ import annotations

import base64

import httpx
import pytest

from m365vault.emulator.archive import MAGIC
from tests.emulator.conftest import Emu, drain

PROPS = "singleValueExtendedProperties($filter=id eq 'String 0x0037' or id eq 'String 0x5D01')"


def _beta(emu: Emu, path: str) -> str:
    return emu.graph.replace("/v1.0", "/beta") + path


def _settings(graph: httpx.Client, emu: Emu) -> list[tuple[dict, dict]]:
    users = graph.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
    out = []
    for user in users:
        r = graph.get(_beta(emu, f"/users/{user['id']}/settings/exchange"))
        if r.status_code == 200:
            out.append((user, r.json()))
    return out


@pytest.fixture
def archive_box(graph: httpx.Client, emu: Emu) -> str:
    with_archive = [s for _, s in _settings(graph, emu) if s.get("inPlaceArchiveMailboxId")]
    assert with_archive
    return str(with_archive[0]["inPlaceArchiveMailboxId"])


def test_some_users_have_an_archive_and_v1_does_not_answer(graph: httpx.Client, emu: Emu) -> None:
    found = _settings(graph, emu)
    archives = [s for _, s in found if s.get("inPlaceArchiveMailboxId")]
    assert archives and len(archives) < len(found)
    for _, settings in found:
        assert settings["primaryMailboxId"].startswith("MBX:")
        assert settings.get("inPlaceArchiveMailboxId") != settings["primaryMailboxId"]
    user = found[0][0]
    assert graph.get(f"/users/{user['id']}/settings/exchange").status_code == 400


def test_folder_and_item_delta_with_redirect_and_properties(
    graph: httpx.Client, emu: Emu, archive_box: str
) -> None:
    base = _beta(emu, f"/admin/exchange/mailboxes/{archive_box}")
    folders, folder_link, _ = drain(graph, f"{base}/folders/delta")
    assert {f["displayName"] for f in folders} >= {"Inbox", "2024"}
    expanded = next(f for f in folders if f["displayName"] == "2024")
    assert archive_box not in expanded["parentMailboxUrl"]
    url = f"{base}/folders/{expanded['id']}/items/delta"
    redirect = graph.get(
        url,
        params={"$expand": PROPS, "$select": "id,type,size,changeKey"},
        headers={"Prefer": "odata.maxpagesize=2"},
    )
    assert redirect.status_code == 308
    location = redirect.headers["location"]
    assert archive_box not in location and "expand" in location
    items, link, pages = drain(graph, location, headers={"Prefer": "odata.maxpagesize=2"})
    assert items and pages > 1
    first = items[0]
    assert first["type"] == "IPM.Note" and first["size"] > 0 and first["changeKey"]
    props = {p["id"]: p["value"] for p in first["singleValueExtendedProperties"]}
    assert props["String 0x0037"]
    # Nothing changed: the next round is empty; the folder round too.
    again, _, _ = drain(graph, link)
    assert again == []
    assert drain(graph, folder_link)[0] == []


def test_export_delete_and_import_round_trip(graph: httpx.Client, emu: Emu, archive_box: str) -> None:
    base = _beta(emu, f"/admin/exchange/mailboxes/{archive_box}")
    folders, _, _ = drain(graph, f"{base}/folders/delta")
    inbox = next(f for f in folders if f["displayName"] == "Inbox")
    items, link, _ = drain(graph, f"{base}/folders/{inbox['id']}/items/delta")
    wanted = [i["id"] for i in items[:3]] + ["AAMkNotAnItem"]
    exported = graph.post(f"{base}/exportItems", json={"itemIds": wanted}).json()["value"]
    assert [e["itemId"] for e in exported] == wanted
    assert exported[-1]["error"]["code"] == "ErrorItemNotFound"
    data = base64.b64decode(exported[0]["data"])
    assert data.startswith(MAGIC)
    too_many = graph.post(f"{base}/exportItems", json={"itemIds": [items[0]["id"]] * 21})
    assert too_many.status_code == 400

    assert graph.delete(f"{base}/folders/{inbox['id']}/items/{items[0]['id']}").status_code == 204
    session = graph.post(f"{base}/createImportSession")
    assert session.status_code == 201
    import_url = session.json()["importUrl"]
    body = {"FolderId": inbox["id"], "Mode": "create", "Data": exported[0]["data"]}
    assert httpx.post(import_url.replace("authtoken=", "authtoken=x"), json=body).status_code == 401
    created = httpx.post(import_url, json=body)  # no bearer token: the URL carries its own
    assert created.status_code == 200, created.text
    new_id = created.json()["itemId"]
    changes, _, _ = drain(graph, link)
    by_id = {c["id"]: c for c in changes}
    assert "@removed" in by_id[items[0]["id"]] and by_id[new_id]["size"] == len(data)
    again = graph.post(f"{base}/exportItems", json={"itemIds": [new_id]}).json()["value"][0]
    assert base64.b64decode(again["data"]) == data  # imported as is: the stream survives unchanged
    bad = httpx.post(import_url, json={**body, "Data": base64.b64encode(b"not ours").decode()})
    assert bad.status_code == 400


def test_import_into_the_primary_mailbox_makes_a_message(graph: httpx.Client, emu: Emu) -> None:
    user, settings = next((u, s) for u, s in _settings(graph, emu) if s.get("inPlaceArchiveMailboxId"))
    base = _beta(emu, f"/admin/exchange/mailboxes/{settings['inPlaceArchiveMailboxId']}")
    folders, _, _ = drain(graph, f"{base}/folders/delta")
    items, _, _ = drain(graph, f"{base}/folders/{folders[0]['id']}/items/delta", params={"$expand": PROPS})
    exported = graph.post(f"{base}/exportItems", json={"itemIds": [items[0]["id"]]}).json()["value"][0]
    primary = settings["primaryMailboxId"]
    session = graph.post(_beta(emu, f"/admin/exchange/mailboxes/{primary}/createImportSession")).json()
    inbox = graph.get(f"/users/{user['id']}/mailFolders/inbox").json()["id"]
    made = httpx.post(
        session["importUrl"], json={"FolderId": inbox, "Mode": "create", "Data": exported["data"]}
    )
    assert made.status_code == 200, made.text
    message = graph.get(f"/users/{user['id']}/messages/{made.json()['itemId']}").json()
    subject = next(
        p["value"] for p in items[0]["singleValueExtendedProperties"] if p["id"] == "String 0x0037"
    )
    assert message["subject"] == subject


def test_activity_touches_archives(graph: httpx.Client, emu: Emu) -> None:
    before = emu.admin("GET", "stats").json()["statuses"].get("200", 0)
    done = emu.admin("POST", "activity", {"seed": 7, "newArchiveItems": 3, "deletedArchiveItems": 1}).json()
    assert len(done["newArchiveItems"]) == 3 and len(done["deletedArchiveItems"]) == 1
    assert emu.admin("GET", "stats").json()["statuses"].get("200", 0) >= before


def test_a_primary_mailbox_lists_its_folders_with_well_known_names(graph: httpx.Client, emu: Emu) -> None:
    _, settings = _settings(graph, emu)[0]
    folders, _, _ = drain(
        graph, _beta(emu, f"/admin/exchange/mailboxes/{settings['primaryMailboxId']}/folders/delta")
    )
    assert next(f for f in folders if f["wellKnownName"] == "inbox")["displayName"] == "Inbox"


def test_beta_batch_answers_exchange_settings(graph: httpx.Client, emu: Emu) -> None:
    users = graph.get("/users", params={"$select": "id"}).json()["value"][:3]
    subs = [
        {"id": str(n), "method": "GET", "url": f"/users/{u['id']}/settings/exchange"}
        for n, u in enumerate(users)
    ]
    answer = graph.post(_beta(emu, "/$batch"), json={"requests": subs}).json()["responses"]
    assert {r["status"] for r in answer} <= {200, 404} and any(r["status"] == 200 for r in answer)
    v1 = graph.post("/$batch", json={"requests": subs}).json()["responses"]
    assert {r["status"] for r in v1} == {400}  # a beta route is not there in v1.0
