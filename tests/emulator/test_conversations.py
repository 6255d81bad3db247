"""Group mailboxes: threads, posts and conversations of Unified groups, paging, $select, writes and
the activity that adds replies and threads."""

from __future__ import annotations

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
