"""The catalog as the engine's `VersionRecorder`, for one run (one organization and repository).

Mapping: an engine object is a catalog object (group mailboxes are mailboxes, personal sites are
sites); a collection is a container entry (mail/contact folder or calendar: folder; drive:
library; list: list) whose external id is the collection id and whose `extras.collectionKind`
keeps the connector's kind; items are entries under their parent (drive items under their folder,
so restore sees the tree). The version key travels in `extras.versionKey`, which takes part in
the catalog's change detection. Delta tokens are saved under the collection id.

A group thread's post attachments (`metadata["attachments"]`, see group_mailbox.py) become entries
of kind `attachment` under the thread, written with it: their content refs are then what keeps
the attachment bytes from prune, and retention ages them with the thread (same modification time;
the thread's version key in their extras makes each new thread version a new attachment version,
so both keep the same intervals). A live attachment the new thread version no longer lists is
closed. Listings and the resync diff look only at a collection's direct children, so they never
see attachments; a thread marked gone closes them (its contents go with it).

Each `record_page` (and each `record_pages`, for several pages) is one database transaction:
versions, gone-marks, the container and the token (or its removal, for a retired collection)
commit together or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select

from m365vault.catalog import (
    CatalogWriter,
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ObjectRef,
    PageWrite,
    VersionWrite,
)
from m365vault.catalog import ObjectKind as CatalogKind
from m365vault.db.catalog_tables import entries_table, sync_state_table, versions_table
from m365vault.engine.adapters.group_mailbox import ATTACHMENT_KIND
from m365vault.engine.adapters.source import CALENDAR, CONTACT_FOLDER, DRIVE, LIST, MAIL_FOLDER
from m365vault.engine.ports import BackupObject, CollectionRef, ItemVersion, ObjectKind, PageRecord

CATALOG_KIND = {
    ObjectKind.MAILBOX: CatalogKind.MAILBOX,
    ObjectKind.GROUP_MAILBOX: CatalogKind.MAILBOX,
    ObjectKind.ARCHIVE_MAILBOX: CatalogKind.ARCHIVE,
    ObjectKind.ONEDRIVE: CatalogKind.ONEDRIVE,
    ObjectKind.PERSONAL_SITE: CatalogKind.SITE,
    ObjectKind.SITE: CatalogKind.SITE,
}
CONTAINER_KIND = {
    MAIL_FOLDER: EntryKind.FOLDER,
    CALENDAR: EntryKind.FOLDER,
    CONTACT_FOLDER: EntryKind.FOLDER,
    DRIVE: EntryKind.LIBRARY,
    LIST: EntryKind.LIST,
}
_IN_CHUNK = 500


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _strings(value: object) -> tuple[str, ...] | None:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else None


def _nested(collection_id: str, kind: str | None) -> bool:
    """Drives nest items in folders (ids unique per drive); other collections are flat."""
    return kind == DRIVE


def entry_metadata(meta: Mapping[str, object], version_key: str) -> EntryMetadata:
    extras: dict[str, Any] = dict(meta.get("extras") or {})  # type: ignore[call-overload]
    extras["versionKey"] = version_key
    size = meta.get("size")
    return EntryMetadata(
        name=str(meta["name"]) if meta.get("name") is not None else None,
        item_class=str(meta["item_class"]) if meta.get("item_class") else None,
        subject=str(meta["subject"]) if meta.get("subject") is not None else None,
        sender=str(meta["sender"]) if meta.get("sender") else None,
        to=_strings(meta.get("to")),
        cc=_strings(meta.get("cc")),
        sent_at=_when(meta.get("sent_at")),
        received_at=_when(meta.get("received_at")),
        modified_at=_when(meta.get("modified_at")),
        size=size if isinstance(size, int) else None,
        extras=extras,
    )


def _token_only(page: PageRecord) -> bool:
    return not page.versions and not page.gone and not page.retire


class CatalogRecorder:
    def __init__(
        self, engine: Engine, organization_id: str, repository_id: str, *, session_id: str | None = None
    ) -> None:
        self._engine = engine
        self._writer = CatalogWriter(engine)
        self.organization_id = organization_id
        self.repository_id = repository_id
        self.session_id = session_id
        self._objects: dict[tuple[str, str], ObjectRef] = {}
        self._lock = asyncio.Lock()
        self._kinds: dict[str, str] = {}  # collection id -> kind, as seen in this run
        self._ids: dict[tuple[str, str], int | None] = {}  # object key -> catalog id (None: none yet)
        # Saved tokens per object, read once per run and kept current by record_page (one task
        # backs up an object at a time, so the copy cannot go stale).
        self._tokens: dict[tuple[str, str], dict[str, str]] = {}

    async def object_ref(self, obj: BackupObject, seen_at: datetime) -> ObjectRef:
        ref = self._objects.get(obj.key)
        if ref is None:
            async with self._lock:
                ref = self._objects.get(obj.key)
                if ref is None:
                    ref = await asyncio.to_thread(
                        self._writer.ensure_object,
                        self.organization_id,
                        self.repository_id,
                        CATALOG_KIND[obj.kind],
                        obj.id,
                        seen_at=seen_at,
                        name=obj.name,
                        email=obj.name if "@" in obj.name else None,
                    )
                    self._objects[obj.key] = ref
        return ref

    async def _find(self, obj: BackupObject) -> int | None:
        """The catalog object id without creating it (reads before the first write)."""
        ref = self._objects.get(obj.key)
        if ref is not None:
            return ref.id
        if obj.key in self._ids:
            return self._ids[obj.key]
        from m365vault.db.catalog_tables import objects_table as objects

        def find() -> int | None:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(objects.c.id).where(
                        objects.c.organization_id == self.organization_id,
                        objects.c.repository_id == self.repository_id,
                        objects.c.kind == CATALOG_KIND[obj.kind].value,
                        objects.c.external_id == obj.id,
                    )
                ).scalar_one_or_none()
            return int(found) if found is not None else None

        found = await asyncio.to_thread(find)
        self._ids[obj.key] = found
        return found

    async def _saved_tokens(self, obj: BackupObject) -> dict[str, str]:
        tokens = self._tokens.get(obj.key)
        if tokens is None:
            object_id = await self._find(obj)
            tokens = {}
            if object_id is not None:
                tokens = await asyncio.to_thread(self._writer.delta_tokens, object_id)
            self._tokens[obj.key] = tokens
        return tokens

    def restore_point(self, obj: BackupObject, at: datetime) -> None:
        ref = self._objects.get(obj.key)
        if ref is not None:
            self._writer.record_restore_point(ref.id, at, self.session_id)

    # ------------------------------------------------------------ VersionRecorder

    async def load_token(self, obj: BackupObject, collection_id: str) -> str | None:
        return (await self._saved_tokens(obj)).get(collection_id)

    async def known_collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        object_id = await self._find(obj)
        if object_id is None:
            return []

        tokens = dict(await self._saved_tokens(obj))

        def read() -> list[CollectionRef]:
            if not tokens:
                return []
            kinds = self._extras(object_id, list(tokens))
            return [
                CollectionRef(cid, str((kinds.get(cid) or {}).get("collectionKind") or ""))
                for cid in sorted(tokens)
            ]

        return await asyncio.to_thread(read)

    def _extras(
        self,
        object_id: int,
        external_ids: list[str],
        parent: str | None = None,
        conn: Connection | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Live entries among `external_ids` (with their version extras); with `parent`, only
        those whose live version sits directly in that container."""
        if conn is None:
            with self._engine.connect() as own:
                return self._extras(object_id, external_ids, parent, own)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(external_ids), _IN_CHUNK):
            chunk = external_ids[start : start + _IN_CHUNK]
            query = (
                select(entries_table.c.external_id, versions_table.c.extras)
                .join(versions_table, versions_table.c.entry_id == entries_table.c.id)
                .where(
                    and_(
                        entries_table.c.object_id == object_id,
                        entries_table.c.external_id.in_(chunk),
                        versions_table.c.gone_at.is_(None),
                    )
                )
            )
            if parent is not None:
                parents = entries_table.alias("parent_entry")
                query = query.where(
                    versions_table.c.parent_id
                    == select(parents.c.id)
                    .where(parents.c.object_id == object_id, parents.c.external_id == parent)
                    .scalar_subquery()
                )
            for row in conn.execute(query):
                found[row.external_id] = row.extras or {}
        return found

    def note_collection(self, collection: CollectionRef) -> None:
        self._kinds[collection.id] = collection.kind

    async def current_versions(
        self, obj: BackupObject, collection_id: str, item_ids: Sequence[str]
    ) -> Mapping[str, str]:
        object_id = await self._find(obj)
        if object_id is None or not item_ids:
            return {}

        # Outlook items move between folders under one id: a version in another folder is not
        # this folder's (the move is read again here, and the old folder's removal is ignored).
        def read() -> dict[str, dict[str, Any]]:
            kind = self._kinds.get(collection_id)
            if kind is None:  # first page of this run: the container row says what it is
                container = self._extras(object_id, [collection_id]).get(collection_id) or {}
                kind = self._kinds[collection_id] = str(container.get("collectionKind") or "")
            parent = None if _nested(collection_id, kind) else collection_id
            return self._extras(object_id, list(item_ids), parent)

        extras = await asyncio.to_thread(read)
        return {item_id: str(extra.get("versionKey") or "") for item_id, extra in extras.items()}

    async def live_ids(self, obj: BackupObject, collection_id: str) -> set[str]:
        object_id = await self._find(obj)
        if object_id is None:
            return set()

        def walk() -> set[str]:
            live: set[str] = set()
            folders = [collection_id]
            while folders:
                parent = folders.pop()
                live.update(self._writer.known_external_ids(object_id, parent))
                folders.extend(self._writer.known_external_ids(object_id, parent, kinds=[EntryKind.FOLDER]))
            return live

        return await asyncio.to_thread(walk)

    async def record_page(self, obj: BackupObject, page: PageRecord) -> None:
        await self.record_pages(obj, [page])

    async def record_pages(self, obj: BackupObject, pages: Sequence[PageRecord]) -> None:
        if not pages:
            return
        for page in pages:
            self._kinds[page.collection.id] = page.collection.kind
        ref = await self.object_ref(obj, pages[0].at)
        writes = [(page, self._page_write(page)) for page in pages]

        def commit() -> None:
            with self._engine.begin() as conn:
                if len(pages) > 1 and all(_token_only(page) for page in pages):
                    self._apply_token_only(conn, ref.id, pages)
                    return
                for page, write in writes:
                    self._apply(conn, ref.id, page, write)

        await asyncio.to_thread(commit)
        tokens = self._tokens.get(obj.key)
        if tokens is not None:
            for page, write in writes:
                if page.retire:
                    tokens.pop(page.collection.id, None)
                elif write.delta_token is not None:
                    tokens[page.collection.id] = write.delta_token[1]

    def _apply_token_only(self, conn: Connection, object_id: int, pages: Sequence[PageRecord]) -> None:
        """Pages of unchanged collections (their container and new token only) as one catalog page
        of containers plus one batch of tokens: a few statements for the whole group, where a
        page each cost five. Containers whose name and parent did not change write nothing."""
        at = max(page.at for page in pages)
        containers = tuple(self._page_write(replace(page, token=None)).upserts[0] for page in pages)
        self._writer.apply_page_in(conn, object_id, PageWrite(run_time=at, upserts=containers))
        tokens = [(page.collection.id, page.token) for page in pages if page.token is not None]
        self._writer.save_tokens_in(conn, object_id, tokens, at)

    def _apply(self, conn: Connection, object_id: int, page: PageRecord, write: PageWrite) -> None:
        collection = page.collection
        if page.gone and not _nested(collection.id, collection.kind) and not page.retire:
            here = self._extras(object_id, list(page.gone), collection.id, conn)
            write = replace(write, gones=tuple(g for g in write.gones if g.external_id in here))
        dropped = _dropped_attachments(conn, object_id, page.versions)
        if dropped:
            write = replace(write, gones=(*write.gones, *(GoneWrite(a, EndReason.DELETED) for a in dropped)))
        self._writer.apply_page_in(conn, object_id, write)
        if page.retire:
            conn.execute(
                delete(sync_state_table).where(
                    sync_state_table.c.object_id == object_id,
                    sync_state_table.c.collection == collection.id,
                )
            )

    @staticmethod
    def _page_write(page: PageRecord) -> PageWrite:
        collection = page.collection
        upserts: list[VersionWrite] = []
        gones = [GoneWrite(item_id, EndReason.DELETED, with_contents=True) for item_id in page.gone]
        if page.retire:
            gones.append(GoneWrite(collection.id, EndReason.DELETED, with_contents=True))
        else:
            upserts.append(
                VersionWrite(
                    collection.id,
                    CONTAINER_KIND.get(collection.kind, EntryKind.FOLDER),
                    collection.parent_id,
                    EntryMetadata(name=collection.name, extras={"collectionKind": collection.kind}),
                )
            )
        for version in page.versions:
            meta = version.metadata
            parent = meta.get("parent")
            upserts.append(
                VersionWrite(
                    version.item_id,
                    EntryKind(str(meta.get("kind") or "item")),
                    str(parent) if parent else collection.id,
                    entry_metadata(meta, version.version_key),
                    version.content_ref,
                )
            )
            upserts.extend(_attachment_writes(version))
        token = (collection.id, page.token) if page.token is not None and not page.retire else None
        return PageWrite(run_time=page.at, upserts=tuple(upserts), gones=tuple(gones), delta_token=token)


def _attachments(version: ItemVersion) -> list[Mapping[str, Any]]:
    value = version.metadata.get("attachments")
    return [a for a in value if isinstance(a, Mapping)] if isinstance(value, list) else []


def _attachment_writes(version: ItemVersion) -> list[VersionWrite]:
    """A thread's post attachments as entries under it, aged and versioned with it."""
    meta = version.metadata
    when = meta.get("modified_at")
    out = []
    for attachment in _attachments(version):
        size = attachment.get("size")
        extras = {
            "versionKey": version.version_key,
            "contentType": attachment.get("contentType"),
            "postId": attachment.get("postId"),
        }
        metadata = EntryMetadata(
            name=str(attachment.get("name") or ""),
            received_at=_when(meta.get("received_at")),
            modified_at=_when(when),
            size=size if isinstance(size, int) else None,
            extras=extras,
        )
        ref = attachment.get("ref")
        out.append(
            VersionWrite(
                str(attachment["id"]),
                EntryKind(ATTACHMENT_KIND),
                version.item_id,
                metadata,
                str(ref) if ref else None,
            )
        )
    return out


def _dropped_attachments(conn: Connection, object_id: int, versions: Sequence[ItemVersion]) -> list[str]:
    """Live attachment entries of the page's threads that their new version no longer lists."""
    listed = {
        v.item_id: {str(a["id"]) for a in _attachments(v)} for v in versions if "attachments" in v.metadata
    }
    if not listed:
        return []
    threads = entries_table.alias("thread_entry")
    dropped: list[str] = []
    ids = sorted(listed)
    for start in range(0, len(ids), _IN_CHUNK):
        rows = conn.execute(
            select(threads.c.external_id.label("thread"), entries_table.c.external_id)
            .join(versions_table, versions_table.c.entry_id == entries_table.c.id)
            .join(threads, threads.c.id == versions_table.c.parent_id)
            .where(
                threads.c.object_id == object_id,
                threads.c.external_id.in_(ids[start : start + _IN_CHUNK]),
                versions_table.c.object_id == object_id,
                versions_table.c.kind == ATTACHMENT_KIND,
                versions_table.c.gone_at.is_(None),
            )
        )
        dropped += [row.external_id for row in rows if row.external_id not in listed[row.thread]]
    return dropped
