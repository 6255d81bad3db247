"""Restore to a tenant: backed-up versions written back through the connector's writers.

Mail goes back through Graph's MIME route, so the restored message is the backed-up MIME byte for
byte (Graph only adds its own transport headers); Exchange stores such a message as a draft.
Messages over the route's 4 MB request cap go through the JSON route (`large_mail`).
Files go back through uploads, so a restored file is byte-identical; with documentVersion "all"
every backed-up version up to the chosen one is uploaded oldest first, so the file's history in
the tenant follows the backup's.

Which items are written (v3's changedItems / deletedItems): an item whose original no longer
exists in the tenant is "deleted" and restored when deletedItems is set; an item that exists but
differs from the backed-up version is "changed" and restored when changedItems is set; an item
equal to the backed-up version is skipped. Restoring to another place writes every item.

Counts follow v3's statistics body: created (a new item in the tenant), merged (an existing file
overwritten), skipped (nothing to do or not selected by the flags), failed (the tenant refused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from m365vault.catalog import VersionInfo
from m365vault.m365 import GraphClient, GraphError, GraphNotFound, Scope, enumeration, writers
from m365vault.m365.client import segment
from m365vault.restore.content import ContentReader
from m365vault.restore.large_mail import create_from_large_mime

log = logging.getLogger("m365vault.restore")
S = TypeVar("S")
CONCURRENCY = 4


@dataclass
class RestoreStats:
    created: int = 0
    merged: int = 0
    failed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, what: str, why: str) -> None:
        self.failed += 1
        if len(self.problems) < 20:
            self.problems.append(f"{what}: {why}")

    def as_v3(self) -> dict[str, int]:
        return {
            "createdItemsCount": self.created,
            "mergedItemsCount": self.merged,
            "failedItemsCount": self.failed,
            "skippedItemsCount": self.skipped,
        }


@dataclass(frozen=True)
class MailOptions:
    changed_items: bool = True
    deleted_items: bool = True
    mark_unread: bool = False
    # restoretoOriginallocation's excludeDrafts / excludeDeletedItems: items under the mailbox's
    # Drafts / Deleted Items folders are skipped. (The hold exclusions have nothing to act on:
    # Recoverable Items, where holds keep items, is not backed up.)
    exclude_drafts: bool = False
    exclude_deleted_items: bool = False


@dataclass(frozen=True)
class MailTarget:
    """Where mail goes: the user (id or address), and a folder name to put the tree under (None:
    the items' own folders when restoring in place, their folder path otherwise)."""

    user: str
    folder: str | None = None
    in_place: bool = True


@dataclass(frozen=True)
class MailSource:
    path: list[str]  # names of the folders leading to the item (from the mailbox root)
    version: VersionInfo


EXCLUDABLE = {"drafts": "Drafts", "deleteditems": "Deleted Items"}  # well-known name -> display name


async def excluded_folders(client: GraphClient, user: str, options: MailOptions) -> dict[str, str]:
    """The well-known folders the options exclude: {tenant folder id: display name}. A folder
    the mailbox no longer has is still excluded by name (see `is_excluded`)."""
    wanted = [
        name
        for name, on in (("drafts", options.exclude_drafts), ("deleteditems", options.exclude_deleted_items))
        if on
    ]
    found: dict[str, str] = {}
    for name in wanted:
        try:
            folder = await client.get_json(
                f"/users/{segment(user)}/mailFolders/{name}",
                scope=Scope.mailbox(user),
                headers=writers.IMMUTABLE_IDS,
            )
        except GraphNotFound:
            found[f"missing:{name}"] = EXCLUDABLE[name]
            continue
        found[str(folder["id"])] = str(folder.get("displayName") or EXCLUDABLE[name])
    return found


def is_excluded(path: list[str], parent: str | None, excluded: dict[str, str]) -> bool:
    """Whether an item lies under an excluded folder: its folder is that folder, or its top-level
    folder bears that folder's name (the well-known folders are top-level)."""
    if not excluded:
        return False
    if parent is not None and parent in excluded:
        return True
    names = {n.casefold() for n in excluded.values()}
    return bool(path) and path[0].casefold() in names


def _is_message(item_class: str | None) -> bool:
    cls = (item_class or "IPM.Note").casefold()
    return not cls.startswith(
        ("ipm.appointment", "ipm.contact", "ipm.distlist", "ipm.task", "ipm.stickynote", "ipm.post")
    )


class MailRestorer:
    def __init__(
        self, client: GraphClient, reader: ContentReader, target: MailTarget, options: MailOptions
    ) -> None:
        self._client = client
        self._reader = reader
        self._target = target
        self._options = options
        self._folders: dict[tuple[str | None, str], str] = {}
        self._folder_lock = asyncio.Lock()  # items restore in parallel; each folder is made once
        self.stats = RestoreStats()

    async def restore(self, items: list[MailSource]) -> RestoreStats:
        await bounded(
            items, self._one, lambda s: s.version.metadata.subject or s.version.external_id, self.stats
        )
        return self.stats

    async def _one(self, source: MailSource) -> None:
        version = source.version
        if not _is_message(version.metadata.item_class):
            raise ValueError(f"restoring {version.metadata.item_class} items is not supported yet")
        if self._target.in_place and self._target.folder is None:
            state = await self._original_state(version)
            if (
                state == "same"
                or (state == "changed" and not self._options.changed_items)
                or (state == "deleted" and not self._options.deleted_items)
            ):
                self.stats.skipped += 1
                return
        if version.content_ref is None:
            self.stats.skipped += 1
            return
        async with self._folder_lock:
            folder_id = await self._destination(source)
        mime = await self._reader.read(version)
        if (len(mime) + 2) // 3 * 4 <= writers.MAX_REQUEST_BYTES:
            created = await writers.create_message_from_mime(self._client, self._target.user, folder_id, mime)
        else:
            created = await create_from_large_mime(
                self._client, self._target.user, folder_id, mime, received=version.metadata.received_at
            )
        if self._options.mark_unread and created.get("id"):
            await writers.set_message_read(self._client, self._target.user, str(created["id"]), False)
        self.stats.created += 1

    async def _original_state(self, version: VersionInfo) -> str:
        """ "deleted", "changed" or "same": the original item in the tenant against the backed-up one."""
        try:
            current = await self._client.get_json(
                f"/users/{segment(self._target.user)}/messages/{segment(version.external_id)}",
                scope=Scope.mailbox(self._target.user),
                params={"$select": "id,subject,lastModifiedDateTime,parentFolderId"},
                headers=writers.IMMUTABLE_IDS,
            )
        except GraphNotFound:
            return "deleted"
        meta = version.metadata
        modified = (meta.extras or {}).get("lastModifiedDateTime")
        if modified and str(current.get("lastModifiedDateTime")) != str(modified):
            return "changed"
        if current.get("subject") != meta.subject:
            return "changed"
        if version.parent_external_id and current.get("parentFolderId") != version.parent_external_id:
            return "changed"
        return "same"

    async def _destination(self, source: MailSource) -> str:
        user = self._target.user
        if self._target.in_place and self._target.folder is None and source.version.parent_external_id:
            try:
                folder = await self._client.get_json(
                    f"/users/{segment(user)}/mailFolders/{segment(source.version.parent_external_id)}",
                    scope=Scope.mailbox(user),
                    headers=writers.IMMUTABLE_IDS,
                )
                return str(folder["id"])
            except GraphNotFound:
                pass  # the folder went too: recreate its path by name
        names = ([self._target.folder] if self._target.folder else []) + source.path
        parent: str | None = None
        for name in names:
            parent = await self._folder(parent, name)
        if parent is None:
            inbox = await self._client.get_json(
                f"/users/{segment(user)}/mailFolders/inbox",
                scope=Scope.mailbox(user),
                headers=writers.IMMUTABLE_IDS,
            )
            parent = str(inbox["id"])
        return parent

    async def _folder(self, parent: str | None, name: str) -> str:
        key = (parent, name.casefold())
        if key in self._folders:
            return self._folders[key]
        found: str | None = None
        async for folder in enumeration.list_mail_folders(self._client, self._target.user, parent):
            if str(folder.get("displayName", "")).casefold() == name.casefold():
                found = str(folder["id"])
                break
        if found is None:
            created = await writers.create_mail_folder(
                self._client, self._target.user, name, parent_id=parent
            )
            found = str(created["id"])
        self._folders[key] = found
        return found


# ---------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class FileOptions:
    all_versions: bool = False  # documentVersion "all"
    overwrite: bool = True  # documentAction overwrite (else keep: the restored file gets a new name)
    changed_items: bool = True
    deleted_items: bool = True


@dataclass(frozen=True)
class FileSource:
    path: list[str]  # folder names from the drive root
    version: VersionInfo
    history: list[VersionInfo] = field(default_factory=list)  # older versions, oldest first


@dataclass(frozen=True)
class DriveTarget:
    drive_id: str
    folder: str | None = None  # a folder path to restore under (another place); None: in place
    in_place: bool = True


class FileRestorer:
    def __init__(
        self, client: GraphClient, reader: ContentReader, target: DriveTarget, options: FileOptions
    ) -> None:
        self._client = client
        self._reader = reader
        self._target = target
        self._options = options
        self._folders: dict[str, str] = {}
        self._folder_lock = asyncio.Lock()
        self.stats = RestoreStats()

    async def restore(self, items: list[FileSource]) -> RestoreStats:
        await bounded(
            items, self._one, lambda s: s.version.metadata.name or s.version.external_id, self.stats
        )
        return self.stats

    async def _one(self, source: FileSource) -> None:
        version = source.version
        name = version.metadata.name or version.external_id
        existing: dict[str, Any] | None = None
        in_place = self._target.in_place and self._target.folder is None
        if in_place:
            try:
                existing = await enumeration.get_drive_item(
                    self._client, self._target.drive_id, version.external_id
                )
            except GraphNotFound:
                existing = None
            if existing is not None and "deleted" in existing:
                existing = None
            if existing is None and not self._options.deleted_items:
                self.stats.skipped += 1
                return
            if existing is not None:
                same = (
                    existing.get("size") == version.metadata.size
                    and existing.get("name") == name
                    and ((version.metadata.extras or {}).get("quickXorHash") in (None, _xor(existing)))
                )
                if same or not self._options.changed_items:
                    self.stats.skipped += 1
                    return
        versions = [*source.history, version] if self._options.all_versions else [version]
        versions = [v for v in versions if v.content_ref is not None]
        if not versions:
            self.stats.skipped += 1
            return
        if existing is not None and self._options.overwrite:
            for v in versions:
                await self._upload(v, item_id=str(existing["id"]))
            self.stats.merged += 1
            return
        async with self._folder_lock:
            parent = await self._parent(source, in_place)
        conflict: writers.ConflictBehavior = (
            "rename" if (existing is not None or not self._options.overwrite) else "replace"
        )
        uploaded = await self._upload(versions[0], parent_id=parent, name=name, conflict=conflict)
        for v in versions[1:]:
            await self._upload(v, item_id=str(uploaded["id"]))
        self.stats.created += 1

    async def _upload(self, version: VersionInfo, **where: Any) -> dict[str, Any]:
        size = version.metadata.size
        if size is None:
            data = await self._reader.read(version)
            size = len(data)
            content: AsyncIterator[bytes] = _once(data)
        else:
            content = self._reader.stream(version)
        return await writers.upload_file(
            self._client, self._target.drive_id, size=size, content=content, **where
        )

    async def _parent(self, source: FileSource, in_place: bool) -> str:
        if in_place and source.version.parent_external_id:
            try:
                original = await enumeration.get_drive_item(
                    self._client, self._target.drive_id, source.version.parent_external_id
                )
                if "deleted" not in original:
                    return str(original["id"])
            except GraphNotFound:
                pass
        names = ([p for p in (self._target.folder or "").split("/") if p]) + source.path
        if "" not in self._folders:
            root = await enumeration.find_drive_item(self._client, self._target.drive_id, "")
            assert root is not None
            self._folders[""] = str(root["id"])
        parent = self._folders[""]
        walked = ""
        for name in names:
            walked = f"{walked}/{name}"
            if walked in self._folders:
                parent = self._folders[walked]
                continue
            found: dict[str, Any] | None = await enumeration.find_drive_item(
                self._client, self._target.drive_id, walked
            )
            if found is None:
                found = await writers.create_drive_folder(
                    self._client, self._target.drive_id, parent, name, conflict="fail"
                )
            parent = self._folders[walked] = str(found["id"])
        return parent


async def bounded(
    items: list[S], one: Callable[[S], Awaitable[None]], describe: Callable[[S], str], stats: RestoreStats
) -> None:
    """Restore items `CONCURRENCY` at a time (Graph's per-mailbox limit is 4 requests in flight);
    an item's failure is counted and reported, never stops the others."""
    pending = iter(items)

    async def worker() -> None:
        for source in pending:
            try:
                await one(source)
            except GraphError as err:
                stats.fail(describe(source), err.reason)
            except (ValueError, OSError) as err:
                stats.fail(describe(source), str(err))

    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, max(1, len(items))))))


def _xor(item: dict[str, Any]) -> str | None:
    hashes = (item.get("file") or {}).get("hashes") or {}
    value = hashes.get("quickXorHash")
    return str(value) if value else None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
