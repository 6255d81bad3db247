"""Archive mailbox items back into Exchange through Graph beta's import sessions (m365/archive.py).

An archive item's content is its exported full-fidelity stream, opaque to m365vault: the only way
back is an import, and no readable output (.eml, .msg, mbox, PST, mail) can be made of it.

In place (restoretoOriginallocation) each item goes back to its own folder of the user's archive
(archive folder ids are stable). The folder's current items are read once (one item delta round):
an item still there with the backed-up changeKey is skipped; one there with another changeKey is
"changed" and, with changedItems, replaced (import mode `update` with its current ChangeKey:
merged); a missing one is "deleted" and, with deletedItems, created again. restoreTo another
mailbox creates every item in that user's primary mailbox, in the folder whose display name is
`folder` (Inbox when none is given); its id is looked up through the same beta API's folder
listing, never taken from the v1.0 mail API (Microsoft says the ids differ). No folder is created.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from m365vault.catalog import VersionInfo
from m365vault.m365 import GraphClient, GraphNotFound, Scope
from m365vault.m365.archive import ItemImporter, exchange_mailboxes, folders_query, items_query
from m365vault.m365.delta import read_delta
from m365vault.restore.content import ContentReader
from m365vault.restore.writeback import MailOptions, RestoreStats, bounded


@dataclass(frozen=True)
class ArchiveTarget:
    user: str  # the user whose mailbox receives the items (id or address)
    in_place: bool  # True: the user's archive, each item in its own folder; False: primary mailbox
    folder: str | None = None  # restoreTo: the primary mailbox folder's display name


def _no_known_ids() -> tuple[str, ...]:
    return ()


class ArchiveRestorer:
    def __init__(
        self, client: GraphClient, reader: ContentReader, target: ArchiveTarget, options: MailOptions
    ) -> None:
        self._client = client
        self._reader = reader
        self._target = target
        self._options = options
        self._scope = Scope.mailbox(target.user)
        self._current: dict[str, dict[str, str] | None] = {}  # folder -> item id -> changeKey
        self._lock = asyncio.Lock()
        self.stats = RestoreStats()

    async def restore(self, versions: list[VersionInfo]) -> RestoreStats:
        mailboxes = await exchange_mailboxes(self._client, self._target.user)
        mailbox = mailboxes.archive if self._target.in_place else mailboxes.primary
        if mailbox is None:
            kind = "an archive" if self._target.in_place else "a mailbox"
            for version in versions:
                self.stats.fail(_name(version), f"{self._target.user} has no {kind}")
            return self.stats
        importer = ItemImporter(self._client, mailbox, self._scope)
        destination = None if self._target.in_place else await self._primary_folder(mailbox)
        if not self._target.in_place and destination is None:
            for version in versions:
                self.stats.fail(
                    _name(version), f"no folder {self._target.folder or 'Inbox'!r} in the mailbox"
                )
            return self.stats

        async def one(version: VersionInfo) -> None:
            if version.content_ref is None:
                self.stats.skipped += 1
                return
            if destination is not None:
                await importer.create(destination, await self._reader.read(version))
                self.stats.created += 1
                return
            await self._in_place(importer, mailbox, version)

        await bounded(versions, one, _name, self.stats)
        return self.stats

    async def _in_place(self, importer: ItemImporter, mailbox: str, version: VersionInfo) -> None:
        folder = version.parent_external_id
        if folder is None:
            raise ValueError("the item has no folder in the backup")
        async with self._lock:
            current = await self._folder_items(mailbox, folder)
        if current is None:
            raise ValueError("its folder no longer exists in the archive")
        backed_up = str((version.metadata.extras or {}).get("versionKey") or "")
        now = current.get(version.external_id)
        if now is not None and now == backed_up:
            self.stats.skipped += 1
        elif now is not None:
            if not self._options.changed_items:
                self.stats.skipped += 1
                return
            await importer.update(folder, version.external_id, now, await self._reader.read(version))
            self.stats.merged += 1
        elif not self._options.deleted_items:
            self.stats.skipped += 1
        else:
            await importer.create(folder, await self._reader.read(version))
            self.stats.created += 1

    async def _folder_items(self, mailbox: str, folder: str) -> dict[str, str] | None:
        """The folder's live items and their changeKeys (None: the folder is gone)."""
        if folder not in self._current:
            query = items_query(self._client, mailbox, folder, self._scope, page_size=200, properties=False)
            items: dict[str, str] = {}
            try:
                async for page in read_delta(self._client, query, token=None, known_ids=_no_known_ids):
                    for change in page.changes:
                        if change.removed:
                            items.pop(change.id, None)
                        else:
                            items[change.id] = str(change.item.get("changeKey") or "")
            except GraphNotFound:
                self._current[folder] = None
            else:
                self._current[folder] = items
        return self._current[folder]

    async def _primary_folder(self, mailbox: str) -> str | None:
        wanted = (self._target.folder or "").strip().lower()
        query = folders_query(self._client, mailbox, self._scope)
        async for page in read_delta(self._client, query, token=None, known_ids=_no_known_ids):
            for change in page.changes:
                item = change.item
                if change.removed:
                    continue
                if wanted and str(item.get("displayName") or "").lower() == wanted:
                    return change.id
                if not wanted and str(item.get("wellKnownName") or "").lower() == "inbox":
                    return change.id
        return None


def _name(version: VersionInfo) -> str:
    return version.metadata.subject or version.external_id
