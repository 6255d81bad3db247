"""Explore views: the v3 explore trees (Vex, Veod, Vesp) as paged reads of the catalog at a session's
point in time, with its show-deleted and all-versions flags.

Identifiers on the wire:
- a mailbox, OneDrive or site is named by its catalog object's external id (the Graph user or site
  id); an archive mailbox by the same id with `ARCHIVE_SUFFIX` (it shares the user id);
- a folder, list, library, item or document by its entry's external id (the Graph id); with
  all-versions, a version other than the one visible at T is named `<external id>~v<version id>`,
  so older versions list as separate elements with their own ids and can be opened, saved and
  restored like any other.

Paging: each listing asks the catalog for one page and, when the page is full, probes one row past
it (a seek on the page's last key), so `has_more` is exact without counting the whole listing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from m365vault.catalog import (
    ANY_PARENT,
    CatalogReader,
    EntryKind,
    ListingQuery,
    ObjectInfo,
    ObjectKind,
    PageCursors,
    VersionInfo,
)

T = TypeVar("T")

ARCHIVE_SUFFIX = ":archive"
VERSION_MARK = "~v"

MAIL_KINDS = (ObjectKind.MAILBOX, ObjectKind.ARCHIVE)


@dataclass(frozen=True)
class Scope:
    """What one restore session sees: an organization at a point in time, with its flags."""

    organization_id: str
    at: datetime
    show_deleted: bool = False
    all_versions: bool = False


@dataclass(frozen=True)
class Listing(Generic[T]):
    items: list[T]
    has_more: bool


def object_wire_id(obj: ObjectInfo) -> str:
    return obj.external_id + ARCHIVE_SUFFIX if obj.kind is ObjectKind.ARCHIVE else obj.external_id


def entry_wire_id(version: VersionInfo, current: bool) -> str:
    """The id a listing shows: the entry's own id for the version visible at T, else a version id."""
    return version.external_id if current else f"{version.external_id}{VERSION_MARK}{version.version_id}"


def split_entry_id(wire_id: str) -> tuple[str, int | None]:
    external, mark, version = wire_id.rpartition(VERSION_MARK)
    if mark and external and version.isdigit():
        return external, int(version)
    return wire_id, None


class Explorer:
    """Read-only views of one organization's catalog for one session scope."""

    def __init__(self, reader: CatalogReader, scope: Scope, cursors: PageCursors | None = None) -> None:
        self._reader = reader
        self.scope = scope
        self._cursors = cursors if cursors is not None else PageCursors()

    # ------------------------------------------------------------ objects
    def objects(
        self,
        kinds: tuple[ObjectKind, ...],
        offset: int,
        limit: int,
        parent_external_id: Any = ANY_PARENT,
    ) -> Listing[ObjectInfo]:
        rows = self._reader.objects(
            self.scope.organization_id,
            at=self.scope.at,
            kinds=kinds,
            parent_external_id=parent_external_id,
            show_deleted=self.scope.show_deleted,
            offset=offset,
            limit=limit + 1,
        )
        return Listing(rows[:limit], len(rows) > limit)

    def object(self, kinds: tuple[ObjectKind, ...], wire_id: str) -> ObjectInfo | None:
        kind_wanted = ObjectKind.ARCHIVE if wire_id.endswith(ARCHIVE_SUFFIX) else None
        external = wire_id.removesuffix(ARCHIVE_SUFFIX)
        for kind in kinds:
            if kind_wanted is not None and kind is not kind_wanted:
                continue
            if kind_wanted is None and kind is ObjectKind.ARCHIVE:
                continue
            for obj in self._reader.find_object(self.scope.organization_id, kind, external):
                if self._visible(obj):
                    return obj
        return None

    def _visible(self, obj: ObjectInfo) -> bool:
        if obj.first_seen > self.scope.at:
            return False
        return self.scope.show_deleted or obj.gone_at is None or obj.gone_at > self.scope.at

    # ------------------------------------------------------------ entries
    def entries(
        self,
        obj: ObjectInfo,
        kind: EntryKind,
        offset: int,
        limit: int,
        parent: Any = ANY_PARENT,
    ) -> Listing[tuple[str, VersionInfo]]:
        """(wire id, version) pairs of one kind under `parent` (ANY_PARENT: all; None: the root)."""
        query = ListingQuery(
            object_id=obj.id,
            kind=kind,
            at=self.scope.at,
            parent=parent,
            show_deleted=self.scope.show_deleted,
            all_versions=self.scope.all_versions,
        )
        page = self._reader.list_versions(query, offset=offset, limit=limit, cursors=self._cursors)
        more = False
        if page.next_key is not None:
            more = bool(self._reader.list_versions(query, after=page.next_key, limit=1).items)
        return Listing([(self._wire_id(v), v) for v in page.items], more)

    def _wire_id(self, version: VersionInfo) -> str:
        if not self.scope.all_versions:
            return version.external_id
        return entry_wire_id(version, self._is_current(version))

    def _is_current(self, version: VersionInfo) -> bool:
        """Whether this is the version visible at T (or, for an item deleted by T, its last one)."""
        at = self.scope.at
        if version.gone_at is None or version.gone_at > at:
            return True
        if version.is_deleted:
            # The last version of a deleted item stands for the item when it is shown as deleted.
            later = self._reader.version_at(version.object_id, version.external_id, at, show_deleted=True)
            return later is not None and later.version_id == version.version_id
        return False

    def entry(self, obj: ObjectInfo, kinds: tuple[EntryKind, ...], wire_id: str) -> VersionInfo | None:
        """One element by wire id, if this session can see it."""
        external, version_id = split_entry_id(wire_id)
        if version_id is not None:
            if not self.scope.all_versions:
                return None
            found = self._reader.get_version(version_id)
            if (
                found is None
                or found.object_id != obj.id
                or found.external_id != external
                or found.first_seen > self.scope.at
            ):
                return None
        else:
            found = self._reader.version_at(
                obj.id, external, self.scope.at, show_deleted=self.scope.show_deleted
            )
        if found is None or found.kind not in kinds:
            return None
        return found

    def history(self, obj: ObjectInfo, external_id: str) -> list[VersionInfo]:
        """Every version of an element seen by the point in time, oldest first."""
        return [v for v in self._reader.history(obj.id, external_id) if v.first_seen <= self.scope.at]

    def last_known(self, obj: ObjectInfo, external_id: str) -> VersionInfo | None:
        """The element as last seen by the point in time, even if deleted by then (for paths)."""
        return self._reader.version_at(obj.id, external_id, self.scope.at, show_deleted=True)

    def walk(
        self,
        obj: ObjectInfo,
        kinds: tuple[EntryKind, ...],
        parent: Any = ANY_PARENT,
        page: int = 500,
    ) -> list[VersionInfo]:
        """Every element of these kinds under `parent` (current versions only, for actions)."""
        out: list[VersionInfo] = []
        for kind in kinds:
            offset = 0
            while True:
                listing = self.entries(obj, kind, offset, page, parent)
                out.extend(v for wire, v in listing.items if VERSION_MARK not in wire)
                if not listing.has_more:
                    break
                offset += page
        return out

    def subtree(
        self,
        obj: ObjectInfo,
        root: str | None,
        item_kinds: tuple[EntryKind, ...],
        container_kinds: tuple[EntryKind, ...] = (EntryKind.FOLDER,),
    ) -> list[tuple[list[str], VersionInfo]]:
        """Items under `root` (None: the object's root) with the folder names leading to them."""
        out: list[tuple[list[str], VersionInfo]] = []
        pending: list[tuple[list[str], str | None]] = [([], root)]
        while pending:
            path, parent = pending.pop(0)
            for item in self.walk(obj, item_kinds, parent):
                out.append((path, item))
            for folder in self.walk(obj, container_kinds, parent):
                pending.append(([*path, folder.metadata.name or folder.external_id], folder.external_id))
        return out

    def iter_current(
        self, obj: ObjectInfo, kind: EntryKind, parent: Any = ANY_PARENT, page: int = 500
    ) -> Iterator[VersionInfo]:
        """The current elements of one kind under `parent`, read page by page (a seek per page),
        so a caller holds one page at a time whatever the listing's size."""
        query = ListingQuery(
            object_id=obj.id,
            kind=kind,
            at=self.scope.at,
            parent=parent,
            show_deleted=self.scope.show_deleted,
            all_versions=self.scope.all_versions,
        )
        after = None
        while True:
            batch = self._reader.list_versions(query, after=after, limit=page)
            for version in batch.items:
                if VERSION_MARK not in self._wire_id(version):
                    yield version
            if batch.next_key is None:
                return
            after = batch.next_key

    def iter_subtree(
        self,
        obj: ObjectInfo,
        root: str | None,
        item_kinds: tuple[EntryKind, ...],
        container_kinds: tuple[EntryKind, ...] = (EntryKind.FOLDER,),
        page: int = 500,
    ) -> Iterator[tuple[list[str], VersionInfo]]:
        """`subtree`, lazily: items are yielded as their pages are read; only the folders still to
        visit are held."""
        pending: deque[tuple[list[str], str | None]] = deque([([], root)])
        while pending:
            path, parent = pending.popleft()
            for kind in item_kinds:
                for item in self.iter_current(obj, kind, parent, page):
                    yield path, item
            for kind in container_kinds:
                for folder in self.iter_current(obj, kind, parent, page):
                    pending.append(([*path, folder.metadata.name or folder.external_id], folder.external_id))
