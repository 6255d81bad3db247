"""The connector's delta readers and content downloads as the engine's `ChangeSource`.

Collections per object:
- mailbox: every mail folder (messages as MIME), the primary calendar and every contact folder
  (events and contacts as their Graph JSON, which is what restore writes back);
- group mailbox: one "Conversations" collection, listed whole every run (see group_mailbox.py);
- archive mailbox: every archive folder through Graph beta, items as opaque export streams (see
  archive_mailbox.py);
- OneDrive: the user's drive (as planning found it, when it did); site: every document library
  (drives) and every non-library list (list items with their fields, as JSON).

Item metadata handed to the recorder uses the catalog's `EntryMetadata` field names plus `kind`
(the catalog entry kind) and `parent` (the parent's external id; a drive's root folder is the
library itself). Version keys: `changeKey` for Outlook items, `eTag` for drive and list items (it
changes with content, name and location).

A new `GraphChangeSource` is made per task: it caches the raw JSON of the page being processed
(for the JSON-content kinds) and its files' download URLs (a file is then read in one request,
not a /content redirect and the download), each drive's root id (from the drive's first page with
changes, or read when that page lacks it), and the first delta pages `prefetch` read through
`$batch` until `changes` consumes them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from m365vault.clock import Clock
from m365vault.engine.adapters.archive_mailbox import ArchiveMailbox
from m365vault.engine.adapters.group_mailbox import CONVERSATIONS, GroupConversations
from m365vault.engine.budget import ContentBudget
from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    CollectionRef,
    ContentGone,
    ContentSaver,
    ItemChange,
    ItemUnreadable,
    ObjectKind,
)
from m365vault.m365 import batch, content, delta, enumeration
from m365vault.m365.client import GraphClient, segment
from m365vault.m365.delta import DeltaChange, DeltaQuery
from m365vault.m365.errors import GraphForbidden, GraphItemUnreadable, GraphNotFound
from m365vault.m365.throttle import Scope

MAIL_FOLDER = "mailFolder"
CALENDAR = "calendar"
CONTACT_FOLDER = "contactFolder"
DRIVE = "drive"
LIST = "list"
# What `_convert` reads of a driveItem, and the download URL that saves a /content request per file.
DRIVE_ITEM_FIELDS = (
    "id,name,size,eTag,cTag,webUrl,lastModifiedDateTime,parentReference,file,folder,root,deleted,"
    "@microsoft.graph.downloadUrl"
)
CALENDAR_ID = "calendar"  # the primary calendar: one per mailbox, so a fixed id is stable
# calendarView delta needs a window; Graph keeps it in the token, so it is chosen on the first run.
CALENDAR_PAST = timedelta(days=10 * 365)
CALENDAR_FUTURE = timedelta(days=5 * 365)


def _no_known_ids() -> tuple[str, ...]:
    return ()  # the engine diffs a resync against the catalog itself


def _addresses(value: Any) -> list[str]:
    out: list[str] = []
    for entry in value or []:
        address = (entry or {}).get("emailAddress") or {}
        if address.get("address"):
            out.append(str(address["address"]))
    return out


def _sender(item: dict[str, Any]) -> str | None:
    found = _addresses([item.get("from") or item.get("sender")])
    return found[0] if found else None


def onedrive_collection(drive: dict[str, Any]) -> CollectionRef:
    """A user's OneDrive (`GET /users/{id}/drive`) as the object's one collection."""
    return CollectionRef(str(drive["id"]), DRIVE, str(drive.get("name") or "OneDrive"))


def _no_onedrive(obj: BackupObject) -> GraphNotFound:
    return GraphNotFound(f"the user {obj.name or obj.id} has no OneDrive")


class GraphChangeSource:
    def __init__(
        self, client: GraphClient, clock: Clock, saver: ContentSaver, budget: ContentBudget | None = None
    ) -> None:
        self._client = client
        self._clock = clock
        self._raw: dict[str, bytes] = {}  # item id -> JSON of the page in progress
        self._download_urls: dict[str, str] = {}  # file id -> its download URL, of the page in progress
        self._drive_roots: dict[str, str] = {}
        self._groups = GroupConversations(client, saver)  # saves post attachments as their own items
        self._archive = ArchiveMailbox(client, budget)  # its exports are held under the budget
        # collection id -> (the token it was read from, its first delta page or that read's error)
        self._primed: dict[str, tuple[str, batch.Outcome]] = {}

    # ------------------------------------------------------------ collections

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        if obj.kind is ObjectKind.GROUP_MAILBOX:
            return self._groups.collections()
        if obj.kind is ObjectKind.ARCHIVE_MAILBOX:
            return await self._archive.collections(obj)
        if obj.kind is ObjectKind.MAILBOX:
            return await self._mailbox(obj.id)
        if obj.kind is ObjectKind.ONEDRIVE:
            if obj.collections is not None:  # the drive planning read: not asked for again
                return obj.collections
            drive = await enumeration.get_user_drive(self._client, obj.id)
            if drive is None:
                raise _no_onedrive(obj)
            return [onedrive_collection(drive)]
        return await self._site(obj.id)

    async def _mailbox(self, user_id: str) -> list[CollectionRef]:
        # Both folder trees are listed in full each run; their first pages share one $batch.
        folders = delta.mail_folders_query(self._client, user_id)
        contact_folders = delta.contact_folders_query(self._client, user_id)
        firsts = await batch.get_many(
            self._client,
            [folders.first_request(None), contact_folders.first_request(None)],
            scope=folders.scope,
        )
        found: list[CollectionRef] = []
        async for page in delta.read_delta(
            self._client, folders, token=None, known_ids=_no_known_ids, first=firsts[0]
        ):
            for change in page.changes:
                if not change.removed:
                    item = change.item
                    found.append(
                        CollectionRef(
                            change.id,
                            MAIL_FOLDER,
                            str(item.get("displayName") or ""),
                            item.get("parentFolderId"),
                        )
                    )
        ids = {ref.id for ref in found}
        # A top-level folder's parent is the hidden root: keep parents only inside the tree.
        found = [
            ref if ref.parent_id in ids else CollectionRef(ref.id, ref.kind, ref.name, None) for ref in found
        ]
        found.append(CollectionRef(CALENDAR_ID, CALENDAR, "Calendar"))
        async for page in delta.read_delta(
            self._client, contact_folders, token=None, known_ids=_no_known_ids, first=firsts[1]
        ):
            for change in page.changes:
                if not change.removed:
                    found.append(
                        CollectionRef(change.id, CONTACT_FOLDER, str(change.item.get("displayName") or ""))
                    )
        return found

    async def _site(self, site_id: str) -> list[CollectionRef]:
        found: list[CollectionRef] = []
        async for drive in enumeration.list_site_drives(self._client, site_id):
            found.append(CollectionRef(str(drive["id"]), DRIVE, str(drive.get("name") or "")))
        async for item in enumeration.list_lists(self._client, site_id):
            template = (item.get("list") or {}).get("template")
            if template == "documentLibrary":
                continue  # its content is read through its drive
            found.append(
                CollectionRef(str(item["id"]), LIST, str(item.get("displayName") or item.get("name") or ""))
            )
        return found

    def _page_root(self, drive_id: str, changes: Sequence[DeltaChange]) -> None:
        for change in changes:
            if not change.removed and "root" in change.item:
                self._drive_roots.setdefault(drive_id, change.id)
                return

    async def _root(self, drive_id: str) -> str:
        root = self._drive_roots.get(drive_id)
        if root is None:
            body = await self._client.get_json(f"/drives/{segment(drive_id)}/root", scope=Scope.sharepoint())
            root = self._drive_roots[drive_id] = str(body["id"])
        return root

    # ------------------------------------------------------------ changes

    async def prefetch(self, obj: BackupObject, starts: Sequence[tuple[CollectionRef, str | None]]) -> None:
        """Read the first delta page of every collection that has a token through `$batch` (one
        sub-request each instead of one round trip each); `changes` then starts from that page.
        First rounds are long anyway and are read as before."""
        if obj.kind is ObjectKind.ARCHIVE_MAILBOX:
            await self._archive.prefetch(obj, starts)
            return
        wanted: dict[Scope, list[tuple[CollectionRef, str, DeltaQuery]]] = {}
        for collection, token in starts:
            if token and collection.kind != CONVERSATIONS:  # conversations have no delta
                query = self._query(obj, collection)
                wanted.setdefault(query.scope, []).append((collection, token, query))
        for scope, group in wanted.items():
            requests = [query.first_request(token) for _, token, query in group]
            outcomes = await batch.get_many(self._client, requests, scope=scope)
            for (collection, token, _), outcome in zip(group, outcomes, strict=True):
                self._primed[collection.id] = (token, outcome)

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        if collection.kind == CONVERSATIONS:
            async for listed in self._groups.changes(obj):
                yield listed
            return
        if obj.kind is ObjectKind.ARCHIVE_MAILBOX:
            async for archived in self._archive.changes(obj, collection, token):
                yield archived
            return
        primed = self._primed.pop(collection.id, None)
        pages = delta.read_delta(
            self._client,
            self._query(obj, collection),
            token=token,
            known_ids=_no_known_ids,
            first=primed[1] if primed is not None and primed[0] == token else None,
        )
        del primed  # the first page is the round's now: dropped once read, not held for the round
        try:
            async for page in pages:
                self._raw.clear()
                self._download_urls.clear()  # never kept: they expire (§4.3)
                if collection.kind == DRIVE and any(not change.removed for change in page.changes):
                    # Items at the top of the library name the root as parent: learn its id only for
                    # drives that changed (a request per drive per run otherwise, mostly unused),
                    # from the page itself when the root came along as an ancestor of a change.
                    self._page_root(collection.id, page.changes)
                    await self._root(collection.id)
                converted = [self._convert(obj, collection, change) for change in page.changes]
                # The raw Graph items are not needed past conversion: let them go while the
                # engine saves the page (64 busy tasks held ~15 MB of them in a medium full run).
                page.changes.clear()
                yield ChangePage(
                    [c for c in converted if c is not None],
                    page.token,
                    final=page.complete,
                    resync=page.resync,
                )
        except GraphNotFound as exc:
            if obj.kind is ObjectKind.ONEDRIVE:  # its drive went away after planning read it
                raise _no_onedrive(obj) from exc
            raise

    def _query(self, obj: BackupObject, collection: CollectionRef) -> DeltaQuery:
        client, kind = self._client, collection.kind
        if kind == MAIL_FOLDER:
            return delta.messages_query(client, obj.id, collection.id)
        if kind == CALENDAR:
            now = self._clock()
            return delta.calendar_query(client, obj.id, start=now - CALENDAR_PAST, end=now + CALENDAR_FUTURE)
        if kind == CONTACT_FOLDER:
            return delta.contacts_query(client, obj.id, collection.id)
        if kind == DRIVE:
            return delta.drive_query(client, collection.id, select=DRIVE_ITEM_FIELDS)
        if kind == LIST:
            return delta.list_items_query(client, obj.id, collection.id)
        raise ValueError(f"unknown collection kind {kind!r}")

    def _convert(
        self, obj: BackupObject, collection: CollectionRef, change: DeltaChange
    ) -> ItemChange | None:
        item = change.item
        if change.removed:
            return ItemChange(change.id, removed=True)
        kind = collection.kind
        if kind == MAIL_FOLDER:
            meta: dict[str, object] = {
                "kind": "item",
                "parent": collection.id,
                "name": item.get("subject") or "",
                "subject": item.get("subject"),
                "item_class": "IPM.Note",
                "sender": _sender(item),
                "to": _addresses(item.get("toRecipients")),
                "cc": _addresses(item.get("ccRecipients")),
                "sent_at": item.get("sentDateTime"),
                "received_at": item.get("receivedDateTime"),
                "modified_at": item.get("lastModifiedDateTime"),
                "extras": {"isRead": item.get("isRead"), "hasAttachments": item.get("hasAttachments")},
            }
            return ItemChange(change.id, str(item.get("changeKey") or ""), metadata=meta)
        if kind in (CALENDAR, CONTACT_FOLDER):
            self._raw[change.id] = json.dumps(item, sort_keys=True).encode()
            is_event = kind == CALENDAR
            name = item.get("subject") if is_event else item.get("displayName")
            meta = {
                "kind": "item",
                "parent": collection.id,
                "name": name or "",
                "subject": name,
                "item_class": "IPM.Appointment" if is_event else "IPM.Contact",
                "modified_at": item.get("lastModifiedDateTime"),
            }
            return ItemChange(change.id, str(item.get("changeKey") or ""), metadata=meta)
        if kind == DRIVE:
            if "root" in item:
                return None  # the library itself
            parent = str((item.get("parentReference") or {}).get("id") or "")
            root = self._drive_roots.get(collection.id)
            is_folder = "folder" in item
            meta = {
                "kind": "folder" if is_folder else "document",
                "parent": collection.id if not parent or parent == root else parent,
                "name": item.get("name") or "",
                "modified_at": item.get("lastModifiedDateTime"),
                "size": item.get("size"),
                "extras": {"cTag": item.get("cTag"), "webUrl": item.get("webUrl")},
            }
            has_content = "file" in item
            url = item.get("@microsoft.graph.downloadUrl")
            if has_content and isinstance(url, str) and url:
                self._download_urls[change.id] = url
            return ItemChange(change.id, str(item.get("eTag") or ""), has_content=has_content, metadata=meta)
        # a list item: its fields are its content
        self._raw[change.id] = json.dumps(item, sort_keys=True).encode()
        fields = item.get("fields") or {}
        meta = {
            "kind": "item",
            "parent": collection.id,
            "name": str(fields.get("Title") or item.get("name") or change.id),
            "modified_at": item.get("lastModifiedDateTime"),
        }
        return ItemChange(change.id, str(item.get("eTag") or ""), metadata=meta)

    # ------------------------------------------------------------ content

    async def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        if collection.kind == CONVERSATIONS:
            async for piece in self._groups.content(obj, change):
                yield piece
            return
        if obj.kind is ObjectKind.ARCHIVE_MAILBOX:
            async for piece in self._archive.content(collection, change):
                yield piece
            return
        if collection.kind in (CALENDAR, CONTACT_FOLDER, LIST):
            raw = self._raw.get(change.item_id)
            if raw is None:
                raise ContentGone(change.item_id)
            yield raw
            return
        if collection.kind == MAIL_FOLDER:
            stream = content.message_mime(self._client, obj.id, change.item_id)
        else:
            url = self._download_urls.get(change.item_id)
            stream = content.download_file(self._client, collection.id, change.item_id, download_url=url)
        try:
            async for piece in stream:
                yield piece
        except GraphNotFound as exc:
            raise ContentGone(change.item_id) from exc
        except (GraphItemUnreadable, GraphForbidden) as exc:
            raise ItemUnreadable(exc.reason) from exc
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
