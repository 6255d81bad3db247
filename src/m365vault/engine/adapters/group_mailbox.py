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

Attachments: for each post whose `hasAttachments` is true, the attachment list is read (metadata
only) and each file or item attachment's raw bytes (`/$value`) are saved as an item of their own
through the run's `ContentSaver`, so the repository stores a file posted to many groups (or mailed
around) once. Each post in the JSON gets `attachments`: Graph's metadata plus `contentRef` (the
repository ref, None for a reference attachment, which is a link without content) and
`contentSize` (bytes stored). The change's metadata gets `attachments` (one catalog entry each,
kind `attachment`, child of the thread; see recorder.py) and `extras.attachments` (name and size,
for explore). Attachments are saved before the thread's first byte is yielded, so the thread's own
save holds no repository stream slot meanwhile; the engine's flush before the page is recorded
covers them as it covers the thread (same saver, refs handed out earlier). Only new or changed
threads are read, so an unchanged thread's attachments are never downloaded again; a changed
thread's are (the repository deduplicates the bytes).

Hazard: Graph pages threads newest first, so a thread that receives a post while the listing is
being paged can move to an earlier page and be missed by this round; the engine then marks it gone
and the next run brings it back (a gap, not a loss of backed-up data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    CollectionRef,
    ContentGone,
    ContentSaver,
    ItemChange,
    ItemUnreadable,
)
from m365vault.m365 import content, enumeration
from m365vault.m365.client import GraphClient
from m365vault.m365.errors import GraphForbidden, GraphItemUnreadable, GraphNotFound, GraphStreamInterrupted

CONVERSATIONS = "conversations"  # the collection kind
CONVERSATIONS_ID = "conversations"  # one per group mailbox, so a fixed id is stable
CONVERSATIONS_NAME = "Conversations"
THREAD_CLASS = "IPM.Post"
ATTACHMENT_KIND = "attachment"  # the catalog entry kind of a post's attachment
REFERENCE_ATTACHMENT = "#microsoft.graph.referenceAttachment"  # a link: no bytes to save
STREAM_ATTEMPTS = 3  # $value is not resumable: a connection dropped mid-file re-reads the file


def attachment_entry_id(thread_id: str, post_id: str, attachment_id: str) -> str:
    """The catalog id of a post's attachment: stable, and short whatever Graph's ids are."""
    digest = hashlib.sha256(f"{post_id}/{attachment_id}".encode()).hexdigest()[:32]
    return f"{thread_id}/{digest}"


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

    def __init__(self, client: GraphClient, saver: ContentSaver) -> None:
        self._client = client
        self._saver = saver
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
            entries = [
                entry for post in posts for entry in await self._attachments(obj.id, change.item_id, post)
            ]
        except GraphNotFound as exc:  # deleted since it was listed
            raise ContentGone(change.item_id) from exc
        except (GraphItemUnreadable, GraphForbidden) as exc:  # an attachment Exchange cannot open
            raise ItemUnreadable(exc.reason) from exc
        if isinstance(change.metadata, dict):
            if posts:
                change.metadata["sender"] = _sender(posts[0])
            change.metadata["attachments"] = entries
            extras = dict(change.metadata.get("extras") or {})
            extras["attachments"] = [{"name": e["name"], "sizeBytes": e["size"]} for e in entries]
            change.metadata["extras"] = extras
        yield json.dumps({"thread": thread, "posts": posts}, sort_keys=True).encode()

    async def _attachments(self, group_id: str, thread_id: str, post: dict[str, Any]) -> list[dict[str, Any]]:
        """Save the post's attachments; note them in the post; return their catalog entries."""
        if not post.get("hasAttachments") or not post.get("id"):
            return []
        post_id = str(post["id"])
        listed = [a async for a in content.post_attachments(self._client, group_id, thread_id, post_id)]
        entries = []
        for attachment in listed:
            ref, size = None, 0
            if attachment.get("@odata.type") != REFERENCE_ATTACHMENT:
                ref, size = await self._save(group_id, thread_id, post_id, str(attachment["id"]))
            attachment["contentRef"], attachment["contentSize"] = ref, size
            entries.append(
                {
                    "id": attachment_entry_id(thread_id, post_id, str(attachment["id"])),
                    "name": str(attachment.get("name") or ""),
                    "size": size,
                    "contentType": attachment.get("contentType"),
                    "ref": ref,
                    "postId": post_id,
                }
            )
        post["attachments"] = listed
        return entries

    async def _save(self, group_id: str, thread_id: str, post_id: str, attachment_id: str) -> tuple[str, int]:
        for attempt in range(STREAM_ATTEMPTS):
            stream = _Counted(
                content.post_attachment_content(self._client, group_id, thread_id, post_id, attachment_id)
            )
            try:
                return await self._saver.save(stream), stream.bytes
            except GraphStreamInterrupted:
                if attempt == STREAM_ATTEMPTS - 1:
                    raise
            finally:
                await stream.aclose()
        raise AssertionError("unreachable")


class _Counted:
    """A byte stream that counts what went through it."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self.bytes = 0

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        piece = await anext(self._stream)
        self.bytes += len(piece)
        return piece

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()
