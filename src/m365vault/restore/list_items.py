"""Restore of SharePoint list items through the connector's list item writers.

The backup holds a list item as its Graph JSON with `fields` (the engine's site source stores it
so); restore writes those fields back, leaving out the ones SharePoint computes.

In place (the item's own list in its own site): the original gone -> "deleted", created again
with deletedItems; the original's eTag differs from the backed-up one -> "changed", its fields
overwritten with the backed-up ones with changedItems (counted merged, like an overwritten file);
equal -> skipped. Into another list or site, every item is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m365vault.catalog import VersionInfo
from m365vault.m365 import GraphClient, GraphNotFound, Scope, writers
from m365vault.m365.client import segment
from m365vault.restore.content import ContentReader
from m365vault.restore.outlook_items import parse_item
from m365vault.restore.writeback import RestoreStats, bounded

# Columns SharePoint maintains itself: sending them back is refused or ignored.
COMPUTED = frozenset(
    {
        "id",
        "ID",
        "ContentType",
        "ContentTypeId",
        "Modified",
        "Created",
        "Author",
        "Editor",
        "AuthorLookupId",
        "EditorLookupId",
        "AppAuthorLookupId",
        "AppEditorLookupId",
        "Attachments",
        "Edit",
        "LinkTitle",
        "LinkTitleNoMenu",
        "DocIcon",
        "ItemChildCount",
        "FolderChildCount",
        "ComplianceAssetId",
        "GUID",
        "FileRef",
        "FileLeafRef",
        "FileDirRef",
        "UniqueId",
        "Version",
    }
)


def writable_fields(backed_up: dict[str, Any]) -> dict[str, Any]:
    fields = backed_up.get("fields")
    if not isinstance(fields, dict):
        raise ValueError("the backed-up list item has no fields")
    return {
        key: value
        for key, value in fields.items()
        if key not in COMPUTED and not key.startswith(("@", "_")) and "@odata." not in key
    }


@dataclass(frozen=True)
class ListOptions:
    changed_items: bool = True
    deleted_items: bool = True


@dataclass(frozen=True)
class ListTarget:
    site_id: str
    list_id: str
    in_place: bool = True  # the items' own list: originals are looked up and compared


class ListItemRestorer:
    def __init__(
        self, client: GraphClient, reader: ContentReader, target: ListTarget, options: ListOptions
    ) -> None:
        self._client = client
        self._reader = reader
        self._target = target
        self._options = options
        self.stats = RestoreStats()

    async def restore(self, items: list[VersionInfo]) -> RestoreStats:
        await bounded(items, self._one, lambda v: v.metadata.name or v.external_id, self.stats)
        return self.stats

    async def _one(self, version: VersionInfo) -> None:
        if version.content_ref is None:
            self.stats.skipped += 1
            return
        what = version.metadata.name or version.external_id
        backed_up = parse_item(await self._reader.read(version), what)
        fields = writable_fields(backed_up)
        site, list_id = self._target.site_id, self._target.list_id
        if self._target.in_place:
            current = await self._current(version.external_id)
            if current is None:
                if not self._options.deleted_items:
                    self.stats.skipped += 1
                    return
            else:
                tag = backed_up.get("eTag") or backed_up.get("@odata.etag")
                if (tag and current.get("eTag") == tag) or not self._options.changed_items:
                    self.stats.skipped += 1
                    return
                await writers.update_list_item(self._client, site, list_id, version.external_id, fields)
                self.stats.merged += 1
                return
        await writers.create_list_item(self._client, site, list_id, fields)
        self.stats.created += 1

    async def _current(self, item_id: str) -> dict[str, Any] | None:
        try:
            return await self._client.get_json(
                f"/sites/{segment(self._target.site_id)}/lists/{segment(self._target.list_id)}"
                f"/items/{segment(item_id)}",
                scope=Scope.sharepoint(),
            )
        except GraphNotFound:
            return None
