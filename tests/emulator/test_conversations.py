"""Group mailboxes: threads, posts and conversations of Unified groups, paging, $select, writes and
the activity that adds replies and threads."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.emulator.conftest import Emu, start_emulator


def _all(client: httpx.Client, url: str, params: dict | None = None) -> tuple[list[dict], int]:
    items: list[dict] = []
    pages = 0
    r = client.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items.extend(body["value"])
        if "@odata.nextLink" not in body:
            return items, pages
        r = client.get(body["@odata.nextLink"])


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    """A private emulator: these tests write to group mailboxes."""
    e = start_emulator(Path(tmp_path_factory.mktemp("conv")) / "state", seed=11)
    try:
        yield e
    finally:
        e.process.terminate()


@pytest.fixture
def client(own: Emu) -> Iterator[httpx.Client]:
    with own.client() as c:
        yield c


@pytest.fixture
def group(client: httpx.Client) -> dict:
    return client.get("/groups").json()["value"][0]


def test_threads_page_with_top_and_follow_next_links(client: httpx.Client, group: dict) -> None:
    whole, pages = _all(client, f"/groups/{group['id']}/threads")
    assert whole and pages == 1
    one_by_one, pages = _all(client, f"/groups/{group['id']}/threads", {"$top": "1"})
    assert pages == len(whole)
    assert [t["id"] for t in one_by_one] == [t["id"] for t in whole]
    delivered = [t["lastDeliveredDateTime"] for t in whole]
    assert delivered == sorted(delivered, reverse=True)  # newest first
    thread = whole[0]
    assert (
        thread["topic"] and thread["uniqueSenders"] and thread["toRecipients"][0]["emailAddress"]["address"]
    )


def test_select_keeps_id_and_the_chosen_properties(client: httpx.Client, group: dict) -> None:
    body = client.get(
        f"/groups/{group['id']}/threads", params={"$select": "topic,lastDeliveredDateTime"}
    ).json()
    assert body["value"]
    assert all(set(t) == {"id", "topic", "lastDeliveredDateTime"} for t in body["value"])


def test_posts_of_a_thread_and_conversations(client: httpx.Client, group: dict) -> None:
    gid = group["id"]
    thread = client.get(f"/groups/{gid}/threads").json()["value"][0]
    posts, _ = _all(client, f"/groups/{gid}/threads/{thread['id']}/posts", {"$top": "1"})
    assert posts
    assert all(p["conversationThreadId"] == thread["id"] for p in posts)
    assert posts[-1]["receivedDateTime"] == thread["lastDeliveredDateTime"]
    assert posts[0]["body"]["contentType"] == "html" and posts[0]["from"]["emailAddress"]["address"]
    conversations = client.get(f"/groups/{gid}/conversations").json()["value"]
    conv = next(c for c in conversations if c["topic"] == thread["topic"])
    inner = client.get(f"/groups/{gid}/conversations/{conv['id']}/threads").json()["value"]
    assert [t["id"] for t in inner] == [thread["id"]]
    single = client.get(f"/groups/{gid}/threads/{thread['id']}").json()
    assert single == thread


def test_unknown_group_thread_or_token_is_an_error(client: httpx.Client, group: dict) -> None:
    gid = group["id"]
    missing = client.get("/groups/00000000-0000-4000-8000-000000000000/threads")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
    assert client.get(f"/groups/{gid}/threads/AAQkAAAA/posts").status_code == 404
    other = client.get("/groups").json()["value"][1]
    foreign = client.get(f"/groups/{other['id']}/threads").json()["value"][0]["id"]
    assert client.get(f"/groups/{gid}/threads/{foreign}/posts").status_code == 404
    bad = client.get(f"/groups/{gid}/threads", params={"$skiptoken": "forged"})
    assert bad.status_code == 400


def test_reply_new_thread_and_delete(client: httpx.Client, group: dict) -> None:
    gid = group["id"]
    before = {t["id"]: t for t in client.get(f"/groups/{gid}/threads").json()["value"]}
    target = next(iter(before.values()))
    post = {"body": {"contentType": "html", "content": "<p>Agreed.</p>"}}
    assert client.post(f"/groups/{gid}/threads/{target['id']}/reply", json={"post": post}).status_code == 202
    assert client.post(f"/groups/{gid}/threads/{target['id']}/reply", json={}).status_code == 400
    after = {t["id"]: t for t in client.get(f"/groups/{gid}/threads").json()["value"]}
    assert after[target["id"]]["lastDeliveredDateTime"] > target["lastDeliveredDateTime"]
    assert after[target["id"]]["preview"] == "Agreed."
    posts = client.get(f"/groups/{gid}/threads/{target['id']}/posts").json()["value"]
    assert posts[-1]["body"]["content"] == "<p>Agreed.</p>"
    created = client.post(f"/groups/{gid}/threads", json={"topic": "Launch", "posts": [post]})
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert client.get(f"/groups/{gid}/threads/{new_id}/posts").json()["value"][0]["body"]["content"]
    assert client.post(f"/groups/{gid}/threads", json={"topic": "", "posts": []}).status_code == 400
    assert client.delete(f"/groups/{gid}/threads/{new_id}").status_code == 204
    assert client.get(f"/groups/{gid}/threads/{new_id}").status_code == 404
    ids = {t["id"] for t in client.get(f"/groups/{gid}/threads").json()["value"]}
    assert new_id not in ids and target["id"] in ids


def test_activity_adds_group_posts_and_threads(own: Emu, client: httpx.Client) -> None:
    groups = client.get("/groups").json()["value"]

    def snapshot() -> dict[str, str]:
        out: dict[str, str] = {}
        for g in groups:
            for t in client.get(f"/groups/{g['id']}/threads", params={"$top": "100"}).json()["value"]:
                out[t["id"]] = t["lastDeliveredDateTime"]
        return out

    before = snapshot()
    assert own.admin("POST", "activity", {"newGroupPosts": -1}).status_code == 400
    done = own.admin("POST", "activity", {"seed": 3, "newGroupPosts": 2, "newGroupThreads": 1}).json()
    assert len(done["newGroupPosts"]) == 2 and len(done["newGroupThreads"]) == 1
    after = snapshot()
    assert done["newGroupThreads"][0]["thread"] in after
    assert done["newGroupThreads"][0]["thread"] not in before
    for reply in done["newGroupPosts"]:
        assert after[reply["thread"]] > before[reply["thread"]]


def _posts_with_attachments(client: httpx.Client) -> list[tuple[str, str, dict]]:
    """(group id, thread id, post) of every generated post that has attachments."""
    found = []
    for g in client.get("/groups").json()["value"]:
        for t in client.get(f"/groups/{g['id']}/threads", params={"$top": "100"}).json()["value"]:
            posts, _ = _all(client, f"/groups/{g['id']}/threads/{t['id']}/posts")
            found += [(g["id"], t["id"], p) for p in posts if p["hasAttachments"]]
            assert t["hasAttachments"] == any(p["hasAttachments"] for p in posts)
    return found


def test_posts_carry_attachments_as_graph_serves_them(client: httpx.Client) -> None:
    found = _posts_with_attachments(client)
    assert found, "a share of generated posts has attachments"
    gid, tid, post = found[0]
    base = f"/groups/{gid}/threads/{tid}/posts/{post['id']}"
    assert "attachments" not in post and "_attachments" not in post  # only when expanded
    listed = client.get(f"{base}/attachments").json()["value"]
    assert listed and all(a["@odata.type"] == "#microsoft.graph.fileAttachment" for a in listed)
    expanded, _ = _all(client, f"/groups/{gid}/threads/{tid}/posts", {"$expand": "attachments"})
    assert next(p for p in expanded if p["id"] == post["id"])["attachments"] == listed
    one = client.get(base, params={"$expand": "attachments"}).json()
    assert one["attachments"] == listed and one["hasAttachments"] is True
    slim = client.get(f"{base}/attachments", params={"$select": "name,size,contentType"}).json()["value"]
    assert [set(a) - {"@odata.type"} for a in slim] == [{"id", "name", "size", "contentType"}] * len(listed)
    for att in listed:
        raw = client.get(f"{base}/attachments/{att['id']}/$value")
        assert raw.status_code == 200 and raw.headers["content-type"].startswith(att["contentType"])
        assert raw.content == base64.b64decode(att["contentBytes"]) and len(raw.content) == att["size"]
        assert client.get(f"{base}/attachments/{att['id']}").json() == att
    assert client.get(f"{base}/attachments/AAMkAAAA/$value").status_code == 404
    assert client.get(f"{base}", params={"$expand": "mentions"}).status_code == 400
    # Deterministic per seed: the same request gives the same bytes again.
    again = client.get(f"{base}/attachments/{listed[0]['id']}/$value").content
    assert again == base64.b64decode(listed[0]["contentBytes"])


def test_a_reply_with_a_file_attachment_and_the_read_counter(
    own: Emu, client: httpx.Client, group: dict
) -> None:
    gid = group["id"]
    data = bytes(range(256)) * 40
    att = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": "minutes.bin",
        "contentType": "application/octet-stream",
        "contentBytes": base64.b64encode(data).decode(),
    }
    post = {"body": {"contentType": "html", "content": "<p>Minutes attached.</p>"}, "attachments": [att]}
    created = client.post(f"/groups/{gid}/threads", json={"topic": "Minutes", "posts": [post]})
    assert created.status_code == 201 and created.json()["hasAttachments"] is True
    tid = created.json()["id"]
    plain = {"body": {"contentType": "html", "content": "<p>Thanks.</p>"}}
    assert client.post(f"/groups/{gid}/threads/{tid}/reply", json={"post": plain}).status_code == 202
    bad = {**att, "@odata.type": "#microsoft.graph.referenceAttachment"}
    rejected = client.post(
        f"/groups/{gid}/threads/{tid}/reply", json={"post": {**plain, "attachments": [bad]}}
    )
    assert rejected.status_code == 400
    posts = client.get(f"/groups/{gid}/threads/{tid}/posts").json()["value"]
    assert [p["hasAttachments"] for p in posts] == [True, False]
    before = own.admin("GET", "stats").json()["groupAttachmentReads"]
    base = f"/groups/{gid}/threads/{tid}/posts/{posts[0]['id']}/attachments"
    listed = client.get(base, params={"$select": "id,name,size"}).json()["value"]
    assert listed[0]["name"] == "minutes.bin" and listed[0]["size"] == len(data)
    assert client.get(f"{base}/{listed[0]['id']}/$value").content == data
    assert client.get(f"/groups/{gid}/threads/{tid}/posts/{posts[1]['id']}/attachments").json()["value"] == []
    assert own.admin("GET", "stats").json()["groupAttachmentReads"] == before + 3
    client.get(f"/groups/{gid}/threads/{tid}/posts")  # posts without $expand read no attachment
    assert own.admin("GET", "stats").json()["groupAttachmentReads"] == before + 3
