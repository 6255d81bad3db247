"""A group mailbox (Microsoft 365 group conversations) as the engine's change source.

Graph has no delta for conversations, so the one collection, "Conversations", is read as a full
listing of the group's threads on every run: a resync round (`resync=True` on every page) that the
engine diffs against the catalog, so threads that disappeared are marked gone. Each thread is an
item whose version key is its `lastDeliveredDateTime` (it moves with every new post) plus a digest
of its preview, so two posts delivered within the same second still make a new version. The
engine reads content only for new or changed versions, so posts are fetched only for those threads.

Content: the thread as Graph listed it with its posts, as JSON
(`{"thread": {...}, "posts": [...]}`, UTF-8, sorted keys). Item class `IPM.Post` marks it as not
MIME. The sender comes from the first post, so it is filled in while the content is read (the
engine builds the version from the change's metadata once the content stream has ended).

Hazard: Graph pages threads newest first, so a thread that receives a post while the listing is
being paged can move to an earlier page and be missed by this round; the engine then marks it gone
and the next run brings it back (a gap, not a loss of backed-up data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from m365vault.engine.ports import BackupObject, ChangePage, CollectionRef, ContentGone, ItemChange
from m365vault.m365 import content, enumeration
from m365vault.m365.client import GraphClient
from m365vault.m365.errors import GraphNotFound

CONVERSATIONS = "conversations"  # the collection kind
CONVERSATIONS_ID = "conversations"  # one per group mailbox, so a fixed id is stable
CONVERSATIONS_NAME = "Conversations"
THREAD_CLASS = "IPM.Post"


def version_key(thread: dict[str, Any]) -> str:
    preview = str(thread.get("preview") or "").encode()
    return f"{thread.get('lastDeliveredDateTime') or ''}|{hashlib.sha256(preview).hexdigest()[:12]}"


def _addresses(value: Any) -> list[str]:
    return [
        str(entry["emailAddress"]["address"])
        for entry in value or []
        if isinstance(entry, dict) and (entry.get("emailAddress") or {}).get("address")
    ]


def _sender(post: dict[str, Any]) -> str | None:
    found = _addresses([post.get("from") or post.get("sender")])
    return found[0] if found else None


class GroupConversations:
    """Collections, changes and content of GROUP_MAILBOX objects (one per task, like the source)."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client
        self._threads: dict[str, dict[str, Any]] = {}  # thread id -> JSON, for the page in progress

    def collections(self) -> list[CollectionRef]:
        return [CollectionRef(CONVERSATIONS_ID, CONVERSATIONS, CONVERSATIONS_NAME)]

    async def changes(self, obj: BackupObject) -> AsyncIterator[ChangePage]:
        async for page in enumeration.list_group_threads(self._client, obj.id):
            self._threads = {str(t["id"]): t for t in page.items if t.get("id")}
            changes = [self._change(thread) for thread in self._threads.values()]
            yield ChangePage(changes, None, final=page.next_link is None, resync=True)

    def _change(self, thread: dict[str, Any]) -> ItemChange:
        topic = thread.get("topic")
        meta: dict[str, object] = {
            "kind": "item",
            "parent": CONVERSATIONS_ID,
            "name": topic or "",
            "subject": topic,
            "item_class": THREAD_CLASS,
            "to": _addresses(thread.get("toRecipients")),
            "cc": _addresses(thread.get("ccRecipients")),
            "received_at": thread.get("lastDeliveredDateTime"),
            "modified_at": thread.get("lastDeliveredDateTime"),
            "extras": {
                "hasAttachments": thread.get("hasAttachments"),
                "uniqueSenders": thread.get("uniqueSenders"),
            },
        }
        return ItemChange(str(thread["id"]), version_key(thread), metadata=meta)

    async def content(self, obj: BackupObject, change: ItemChange) -> AsyncIterator[bytes]:
        thread = self._threads.get(change.item_id)
        if thread is None:
            raise ContentGone(change.item_id)
        try:
            posts = [post async for post in content.thread_posts(self._client, obj.id, change.item_id)]
        except GraphNotFound as exc:  # deleted since it was listed
            raise ContentGone(change.item_id) from exc
        if posts and isinstance(change.metadata, dict):
            change.metadata["sender"] = _sender(posts[0])
        yield json.dumps({"thread": thread, "posts": posts}, sort_keys=True).encode()
