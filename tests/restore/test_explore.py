"""Explore trees at several points in time, with and without showDeleted / showAllVersions: exact
listings, paging, single elements and the 400/403/404 answers."""

from __future__ import annotations

from typing import Any

from tests.restore.conftest import T1, T2, T3, Env

R = "/v3/RestoreSessions/{sid}/Organization"


def ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["results"]]


def base_ids(page: dict[str, Any]) -> list[str]:
    return [r["id"].split("~v")[0] for r in page["results"]]


def test_mailboxes_follow_the_point_in_time(env: Env) -> None:
    at_t1 = env.explore("vex", T1)
    assert ids(env.get(R.format(sid=at_t1) + "/Mailboxes")) == ["u-alice", "u-alice:archive"]
    now = env.explore("vex")
    page = env.get(R.format(sid=now) + "/Mailboxes")
    assert ids(page) == ["u-alice", "u-alice:archive", "u-bob"]
    assert page["offset"] == 0 and page["limit"] == 30
    archive = env.get(R.format(sid=now) + "/mailboxes/u-alice:archive")
    assert archive["isArchive"] is True and archive["email"] == "alice@contoso.com"
    assert archive["_links"]["self"]["href"].startswith("https://testserver/v3/restoresessions/")


def test_folders_by_parent_and_flat(env: Env) -> None:
    sid = env.explore("vex", T2)
    base = R.format(sid=sid) + "/Mailboxes/u-alice/Folders"
    assert ids(env.get(base, parentId="null")) == ["f-inbox", "f-sent", "f-cal", "f-con"]
    assert ids(env.get(base, parentID="f-inbox")) == ["f-proj"]
    assert ids(env.get(base)) == ["f-inbox", "f-sent", "f-proj", "f-cal", "f-con"]
    one = env.get(base + "/f-proj")
    assert one["name"] == "Projects"
    assert one["_links"]["parent"]["href"].endswith("/mailboxes/u-alice/folders/f-inbox")
    # At T3 the Projects folder was deleted with its contents.
    later = env.explore("vex", T3)
    assert ids(env.get(R.format(sid=later) + "/Mailboxes/u-alice/Folders")) == [
        "f-inbox",
        "f-sent",
        "f-cal",
        "f-con",
    ]
    deleted = env.explore("vex", T3, showDeleted="true")
    flat = env.get(R.format(sid=deleted) + "/Mailboxes/u-alice/Folders")
    assert ids(flat) == ["f-inbox", "f-sent", "f-proj", "f-cal", "f-con"]
    assert [r.get("isDeleted", False) for r in flat["results"]] == [False, False, True, False, False]


def test_items_at_three_points_with_flags(env: Env) -> None:
    def inbox(sid: str) -> dict[str, Any]:
        return env.get(R.format(sid=sid) + "/Mailboxes/u-alice/Items", folderId="f-inbox")

    t1 = inbox(env.explore("vex", T1))
    assert ids(t1) == ["m1", "m2"]
    assert [r["subject"] for r in t1["results"]] == ["Hello", "Budget"]
    t2 = inbox(env.explore("vex", T2))
    assert ids(t2) == ["m2", "m4"]
    assert [r["subject"] for r in t2["results"]] == ["Budget v2", "Late"]
    deleted = inbox(env.explore("vex", T2, showDeleted=True))
    assert ids(deleted) == ["m1", "m2", "m4"]
    assert deleted["results"][0]["isDeleted"] is True
    versions = inbox(env.explore("vex", T2, showAllVersions="true"))
    assert base_ids(versions) == ["m1", "m2", "m2", "m4"]
    assert [r["subject"] for r in versions["results"]] == ["Hello", "Budget", "Budget v2", "Late"]
    old = versions["results"][1]["id"]
    assert old.startswith("m2~v") and versions["results"][2]["id"] == "m2"
    # The older version opens as its own item, only in an all-versions session.
    sid = env.explore("vex", T2, showAllVersions="true")
    assert env.get(R.format(sid=sid) + f"/Mailboxes/u-alice/Items/{old}")["subject"] == "Budget"
    plain = env.explore("vex", T2)
    r = env.client.get(R.format(sid=plain) + f"/Mailboxes/u-alice/Items/{old}")
    assert r.status_code == 404 and "message" in r.json()


def test_item_fields_per_class(env: Env) -> None:
    sid = env.explore("vex")
    base = R.format(sid=sid) + "/Mailboxes/u-alice/Items"
    mail = env.get(base + "/m5")
    assert mail["itemClass"] == "IPM.Note"
    assert mail["from"] == "alice@contoso.com" and mail["to"] == "bob@contoso.com"
    assert mail["received"] == "2026-03-02T10:00:00.0000000Z"
    appointment = env.get(base + "/e1")
    assert appointment["itemClass"] == "IPM.Appointment"
    assert appointment["location"] == "Room 1" and appointment["organizer"] == "alice@contoso.com"
    assert appointment["startTime"] == "2026-03-10T09:00:00Z" and appointment["recurring"] is False
    assert "from" not in appointment
    contact = env.get(base + "/c1")
    assert contact["itemClass"] == "IPM.Contact"
    assert (contact["fullName"], contact["email"], contact["company"]) == (
        "Dan Smith",
        "dan@example.com",
        "ACME",
    )
    everything = env.get(base)
    assert ids(everything) == ["m2", "m5", "e1", "c1", "m4"]


def test_paging_walks_every_item_once(env: Env) -> None:
    sid = env.explore("vex", T2, showAllVersions=True)
    base = R.format(sid=sid) + "/Mailboxes/u-alice/Items"
    whole = ids(env.get(base, limit=100))
    assert whole == ["m1", whole[1], "m2", "m3", "m5", "e1", "c1", "m4"]
    walked: list[str] = []
    page = env.get(base, limit=2)
    while True:
        walked += ids(page)
        assert page["limit"] == 2
        nxt = page["_links"].get("next")
        if nxt is None:
            break
        page = env.client.get(nxt["href"]).json()
    assert walked == whole
    last = env.get(base, offset=7, limit=2)
    assert len(last["results"]) == 1 and "next" not in last["_links"] and "prev" in last["_links"]
    assert env.get(base, offset=50)["results"] == []
    assert env.client.get(base, params={"limit": 0}).status_code == 400
    assert env.client.get(base, params={"offset": -1}).status_code == 400


def test_onedrive_tree_with_versions(env: Env) -> None:
    sid = env.explore("veod", T2)
    root = R.format(sid=sid) + "/OneDrives"
    assert ids(env.get(root)) == ["u-alice"]
    assert ids(env.get(root + "/u-alice/Folders", parentId="null")) == ["d-docs"]
    assert ids(env.get(root + "/u-alice/Documents", parentId="null")) == ["b-bin"]
    docs = env.get(root + "/u-alice/Documents", parentId="d-docs")
    assert ids(docs) == ["a-txt"]
    assert (
        docs["results"][0]["sizeBytes"] == len(b"version two, longer")
        and docs["results"][0]["version"] == "2.0"
    )
    versions = env.explore("veod", T2, showAllVersions=True)
    listed = env.get(R.format(sid=versions) + "/OneDrives/u-alice/Documents", parentId="d-docs")
    assert [(r["id"].split("~v")[0], r["version"]) for r in listed["results"]] == [
        ("a-txt", "1.0"),
        ("a-txt", "2.0"),
    ]
    gone = env.explore("veod", T3)
    assert ids(env.get(R.format(sid=gone) + "/OneDrives/u-alice/Documents")) == ["a-txt"]
    shown = env.explore("veod", T3, showDeleted=True)
    assert ids(env.get(R.format(sid=shown) + "/OneDrives/u-alice/Documents")) == ["a-txt", "b-bin"]
    folder = env.get(root + "/u-alice/Folders/d-docs")
    assert folder["name"] == "Docs" and "sizeBytes" not in folder


def test_sharepoint_tree(env: Env) -> None:
    sid = env.explore("vesp")
    root = R.format(sid=sid) + "/Sites"
    assert ids(env.get(root)) == ["s-1"]
    assert ids(env.get(root, parentId="s-1")) == ["s-2"]
    assert ids(env.get(root + "/s-1/Libraries")) == ["lib1"]
    assert ids(env.get(root + "/s-1/Lists")) == ["list1"]
    assert ids(env.get(root + "/s-1/Folders", parentId="lib1")) == ["fold1"]
    assert ids(env.get(root + "/s-1/Documents", parentId="lib1")) == ["doc1"]
    assert ids(env.get(root + "/s-1/Documents")) == ["doc1", "doc2"]
    assert ids(env.get(root + "/s-1/Items", parentId="list1")) == ["li1"]
    item = env.get(root + "/s-1/Items/li1")
    assert item["title"] == "Task 1" and item["version"] == "1.0"
    folder = env.get(root + "/s-1/Folders/fold1")
    assert folder["type"] == "LibraryFolder"
    assert env.get(root + "/s-1/Documents/doc2")["sizeBytes"] == len(b"q1 numbers")
    assert env.get(root + "/s-1/Libraries/lib1")["description"] == "Docs"


def test_trees_belong_to_their_session_type(env: Env) -> None:
    vex = env.explore("vex")
    r = env.client.get(R.format(sid=vex) + "/OneDrives")
    assert r.status_code == 400 and "OneDrives" in r.json()["message"]
    assert env.client.get(R.format(sid=vex) + "/Sites").status_code == 400
    veod = env.explore("veod")
    r = env.client.get(R.format(sid=veod) + "/Mailboxes")
    assert r.status_code == 400 and "mailboxes" in r.json()["message"]


def test_unknown_elements_are_404(env: Env) -> None:
    sid = env.explore("vex", T1)
    base = R.format(sid=sid)
    assert env.client.get(base + "/Mailboxes/u-bob").status_code == 404  # not backed up yet at T1
    assert env.client.get(base + "/Mailboxes/u-alice/Items/m4").status_code == 404
    assert env.client.get(base + "/Mailboxes/u-alice/Folders", params={"parentId": "nope"}).status_code == 404
    assert (
        env.client.get(f"/v3/RestoreSessions/{'0' * 8}-0000-0000-0000-{'0' * 12}/Organization").status_code
        == 404
    )


def test_a_malformed_session_id_is_named_before_bad_paging(env: Env) -> None:
    """The session id is checked first, whichever tree and route shape (page, one, action)."""
    base = R.format(sid="not-a-uuid")
    for path in ("/Mailboxes/u-alice/Items", "/OneDrives/x/Folders", "/Sites/s/Documents", "/Sites"):
        r = env.client.get(base + path, params={"offset": -1, "parentId": "null"})
        assert r.status_code == 400 and "'restoreSessionId'" in r.json()["message"], (path, r.text)
    r = env.client.post(base + "/Sites/s/Folders/f/Action", json={"save": None})
    assert r.status_code == 400 and "'restoreSessionId'" in r.json()["message"]
    sid = env.explore("veod")
    r = env.client.get(R.format(sid=sid) + "/OneDrives/x/Documents", params={"limit": 0})
    assert r.status_code == 400 and "'limit'" in r.json()["message"]


def test_sessions_are_private_to_their_owner(env: Env) -> None:
    sid = env.explore("vex")
    control = env.client.app.state.control  # type: ignore[attr-defined]
    control.accounts.add("other", "Other-Account-Pass-1")
    token = env.client.post(
        "/v3/Token", data={"grant_type": "password", "username": "other", "password": "Other-Account-Pass-1"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    r = env.client.get(R.format(sid=sid) + "/Mailboxes", headers=headers)
    assert r.status_code == 403
    listed = env.client.get("/v3/RestoreSessions", headers=headers).json()
    assert sid not in [s["id"] for s in listed["results"]]
