"""Group mailboxes through the connector, against the emulator over real HTTPS: threads paged by
next links, posts of a thread, classified errors, and listings that survive injected faults."""

from __future__ import annotations

import pytest

from m365vault.m365 import GraphClient, GraphNotFound
from m365vault.m365.content import post_attachment_content, post_attachments, thread_posts
from m365vault.m365.enumeration import is_unified, list_group_threads, list_groups
from m365vault.m365.errors import GraphStreamInterrupted
from tests.m365.conftest import Emulator


def connect(emu: Emulator) -> GraphClient:
    return GraphClient.for_tenant(emu.settings())


async def first_group(client: GraphClient) -> dict:
    async for page in list_groups(client):
        return page.items[0]
    raise AssertionError("the tenant has no group")


async def threads_of(client: GraphClient, group_id: str, page_size: int = 50) -> tuple[list[dict], int]:
    found: list[dict] = []
    pages = 0
    async for page in list_group_threads(client, group_id, page_size=page_size):
        pages += 1
        found.extend(page.items)
    return found, pages


async def test_threads_and_posts_of_every_unified_group(emu: Emulator) -> None:
    async with connect(emu) as client:
        groups = [g async for page in list_groups(client) for g in page.items]
        assert groups and all(is_unified(g) for g in groups)
        for group in groups:
            whole, pages = await threads_of(client, group["id"])
            assert whole and pages == 1
            paged, pages = await threads_of(client, group["id"], page_size=1)
            assert pages == len(whole) and paged == whole
            for thread in whole:
                assert thread["topic"] and thread["lastDeliveredDateTime"]
                posts = [p async for p in thread_posts(client, group["id"], thread["id"])]
                assert posts and posts[-1]["receivedDateTime"] == thread["lastDeliveredDateTime"]


def test_is_unified_needs_the_unified_type_and_mail() -> None:
    assert is_unified({"groupTypes": ["Unified"], "mailEnabled": True})
    assert is_unified({"groupTypes": ["Unified", "DynamicMembership"]})
    assert not is_unified({"groupTypes": [], "mailEnabled": True, "securityEnabled": True})
    assert not is_unified({"groupTypes": ["Unified"], "mailEnabled": False})


async def test_unknown_group_or_thread_is_not_found(emu: Emulator) -> None:
    async with connect(emu) as client:
        with pytest.raises(GraphNotFound):
            await threads_of(client, "00000000-0000-4000-8000-000000000000")
        group = await first_group(client)
        with pytest.raises(GraphNotFound):
            [p async for p in thread_posts(client, group["id"], "AAQkAAAA")]


async def test_a_new_post_moves_the_thread_and_faults_lose_nothing(emu: Emulator) -> None:
    async with connect(emu) as client:
        group = await first_group(client)
        before = {t["id"]: t for t in (await threads_of(client, group["id"]))[0]}
        done = emu.admin("POST", "activity", {"seed": 5, "newGroupPosts": 3, "newGroupThreads": 2})
        emu.admin("POST", "config", {"faultRate": 0.3})
        after = {}
        for g in {r["group"] for r in done["newGroupPosts"] + done["newGroupThreads"]} | {group["id"]}:
            after.update({t["id"]: t for t in (await threads_of(client, g, page_size=1))[0]})
        for reply in done["newGroupPosts"]:
            assert after[reply["thread"]]["lastDeliveredDateTime"] > before.get(reply["thread"], {}).get(
                "lastDeliveredDateTime", ""
            )
            posts = [p async for p in thread_posts(client, reply["group"], reply["thread"])]
            assert posts[-1]["receivedDateTime"] == after[reply["thread"]]["lastDeliveredDateTime"]
        assert all(created["thread"] in after for created in done["newGroupThreads"])


async def whole(client: GraphClient, post: tuple[str, str, str], attachment_id: str) -> bytes:
    """An attachment's bytes; a connection dropped mid-file (not resumable) means reading it again."""
    for _ in range(20):
        try:
            return b"".join([p async for p in post_attachment_content(client, *post, attachment_id)])
        except GraphStreamInterrupted:
            continue
    raise AssertionError("every read was interrupted")


async def test_post_attachments_listed_without_bytes_and_streamed_through_faults(emu: Emulator) -> None:
    async with connect(emu) as client:
        found = None
        async for page in list_groups(client):
            for group in page.items:
                for thread in (await threads_of(client, group["id"]))[0]:
                    async for post in thread_posts(client, group["id"], thread["id"]):
                        if post["hasAttachments"] and found is None:
                            found = (group["id"], thread["id"], post["id"])
        assert found is not None, "the tenant has posts with attachments"
        listed = [a async for a in post_attachments(client, *found)]
        assert listed and all("contentBytes" not in a and a["name"] and a["size"] > 0 for a in listed)
        clean = [
            b"".join([p async for p in post_attachment_content(client, *found, a["id"])]) for a in listed
        ]
        assert [len(data) for data in clean] == [a["size"] for a in listed]
        emu.admin("POST", "config", {"faultRate": 0.3})  # 5xx and 429 answers: the client retries
        try:
            again = [await whole(client, found, a["id"]) for a in listed]
            assert again == clean and [a async for a in post_attachments(client, *found)] == listed
        finally:
            emu.admin("POST", "config", {"faultRate": 0.0})
        with pytest.raises(GraphNotFound):
            [p async for p in post_attachment_content(client, *found, "AAMkAAAA")]
