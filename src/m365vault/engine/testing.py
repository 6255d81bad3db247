"""In-memory implementations of the engine's ports that behave like the real parts, with fault
injection: a tenant with delta journals, tokens, resyncs and failures; a content store with
durability (pending until flush, lost on crash); a catalog with atomic page commits that refuses
non-durable content and can crash mid-commit; a session reporter that records everything.

Test tools, importable by every suite (and by the lead's adapter conformance tests).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    CollectionRef,
    ContentGone,
    ItemChange,
    LogItem,
    ObjectKind,
    PageRecord,
    ServiceUnavailable,
    SessionStatistics,
    SessionStatus,
    TenantGroup,
    TenantSite,
    TenantUser,
)


class SimulatedCrash(Exception):
    """An injected failure standing in for the process dying at that point."""


# ---------------------------------------------------------------- the tenant


@dataclass
class _FakeItem:
    versions: dict[str, bytes]  # version_key -> content, every version ever written
    current: str | None  # live version_key, None once deleted
    seq: int  # journal position of the last change


@dataclass
class _FakeCollection:
    ref: CollectionRef
    items: dict[str, _FakeItem] = field(default_factory=dict)
    generation: int = 1


class FakeTenant:
    """A tenant: directory (TenantDirectory) and delta reader (ChangeSource) in one.

    Delta model as Graph's: a first round returns live items only; later rounds return every item
    changed since the token once, in its latest state, and tombstones for deleted ones; tokens are
    opaque `generation:seq` strings; `force_resync` invalidates tokens so the next round is a
    full enumeration flagged `resync`. Every page carries a checkpoint token.
    """

    def __init__(self, page_size: int = 3) -> None:
        self.page_size = page_size
        self.user_map: dict[str, TenantUser] = {}
        self.group_map: dict[str, TenantGroup] = {}
        self.sites_by_id: dict[str, TenantSite] = {}
        self.members: dict[str, list[str]] = {}
        self._objects: dict[tuple[str, str], dict[str, _FakeCollection]] = {}
        self._seq = 0
        self._version_counter = 0
        self._generations = 0
        self.delta_pages_served = 0
        self.content_reads = 0
        self.directory_error: Exception | None = None
        self.unavailable: dict[tuple[str, str], str] = {}  # object key -> ServiceUnavailable reason
        self.page_delay = 0.0
        self.content_delay = 0.0
        self._failures: dict[tuple[str, str], int] = {}
        self._read_failure_in: int | None = None

    # -------------------------------------------------------- building the tenant

    def add_user(self, user: TenantUser) -> TenantUser:
        self.user_map[user.id] = user
        return user

    def add_group(self, group: TenantGroup, members: Sequence[str] = ()) -> TenantGroup:
        self.group_map[group.id] = group
        self.members[group.id] = list(members)
        return group

    def add_site(self, site: TenantSite) -> TenantSite:
        self.sites_by_id[site.id] = site
        return site

    def _collection(self, obj: BackupObject, collection_id: str) -> _FakeCollection:
        self.add_collection(obj, collection_id)
        return self._objects[obj.key][collection_id]

    def add_collection(self, obj: BackupObject, collection_id: str, kind: str = "folder") -> None:
        collections = self._objects.setdefault(obj.key, {})
        if collection_id not in collections:
            # A fresh generation: tokens of an earlier collection with the same id are refused,
            # as Graph refuses the tokens of a deleted folder.
            self._generations += 1
            ref = CollectionRef(collection_id, kind, collection_id)
            collections[collection_id] = _FakeCollection(ref, generation=self._generations)

    def put(self, obj: BackupObject, collection_id: str, item_id: str, content: bytes) -> str:
        """Create or modify an item; returns its new version key."""
        collection = self._collection(obj, collection_id)
        self._seq += 1
        self._version_counter += 1
        key = f"v{self._version_counter}"
        item = collection.items.get(item_id)
        if item is None:
            collection.items[item_id] = _FakeItem({key: content}, key, self._seq)
        else:
            item.versions[key] = content
            item.current = key
            item.seq = self._seq
        return key

    def delete(self, obj: BackupObject, collection_id: str, item_id: str) -> None:
        item = self._objects[obj.key][collection_id].items[item_id]
        self._seq += 1
        item.current = None
        item.seq = self._seq

    def remove_collection(self, obj: BackupObject, collection_id: str) -> None:
        del self._objects[obj.key][collection_id]

    def force_resync(self, obj: BackupObject, collection_id: str) -> None:
        self._generations += 1
        self._objects[obj.key][collection_id].generation = self._generations

    def fail(self, obj: BackupObject, times: int) -> None:
        """The next `times` backups of `obj` fail while listing its collections."""
        self._failures[obj.key] = times

    def fail_read(self, after: int | None) -> None:
        """After `after` more successful page or content reads, one read fails (a dropped
        connection in the middle of a round or of a download); None disarms."""
        self._read_failure_in = after

    def _maybe_fail_read(self) -> None:
        if self._read_failure_in is None:
            return
        if self._read_failure_in == 0:
            self._read_failure_in = None
            raise ConnectionResetError("simulated dropped connection")
        self._read_failure_in -= 1

    def live(self, obj: BackupObject, collection_id: str) -> dict[str, bytes]:
        """What the tenant holds now: item id -> content."""
        items = self._objects[obj.key][collection_id].items
        return {i: item.versions[item.current] for i, item in items.items() if item.current is not None}

    def collection_ids(self, obj: BackupObject) -> list[str]:
        return sorted(self._objects.get(obj.key, {}))

    # -------------------------------------------------------- TenantDirectory

    def _check_directory(self) -> None:
        if self.directory_error is not None:
            raise self.directory_error

    async def users(self) -> AsyncIterator[TenantUser]:
        self._check_directory()
        for user in list(self.user_map.values()):
            yield user

    async def groups(self) -> AsyncIterator[TenantGroup]:
        self._check_directory()
        for group in list(self.group_map.values()):
            yield group

    async def sites(self) -> AsyncIterator[TenantSite]:
        self._check_directory()
        for site in list(self.sites_by_id.values()):
            yield site

    async def group_members(self, group_id: str) -> AsyncIterator[TenantUser]:
        self._check_directory()
        for user_id in self.members.get(group_id, []):
            if user_id in self.user_map:
                yield self.user_map[user_id]

    async def user(self, user_id: str) -> TenantUser | None:
        self._check_directory()
        return self.user_map.get(user_id)

    async def group(self, group_id: str) -> TenantGroup | None:
        self._check_directory()
        return self.group_map.get(group_id)

    async def site(self, site_id: str) -> TenantSite | None:
        self._check_directory()
        return self.sites_by_id.get(site_id)

    # -------------------------------------------------------- ChangeSource

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        if obj.key in self.unavailable:
            raise ServiceUnavailable(self.unavailable[obj.key])
        left = self._failures.get(obj.key, 0)
        if left > 0:
            self._failures[obj.key] = left - 1
            raise ConnectionError(f"simulated outage reading {obj.describe()}")
        return [c.ref for _, c in sorted(self._objects.get(obj.key, {}).items())]

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        state = self._objects[obj.key][collection.id]
        snapshot = self._seq
        since, resync = 0, False
        if token is not None:
            generation, _, seq = token.partition(":")
            if int(generation) == state.generation:
                since = int(seq)
            else:
                resync = True  # as 410 resyncRequired: start over, tell the caller
        full = token is None or resync
        entries = sorted(
            (item.seq, item_id, item)
            for item_id, item in state.items.items()
            if since < item.seq <= snapshot and (item.current is not None or not full)
        )
        pages = [entries[i : i + self.page_size] for i in range(0, len(entries), self.page_size)] or [[]]
        for number, page in enumerate(pages):
            if self.page_delay:
                await asyncio.sleep(self.page_delay)
            self._maybe_fail_read()
            self.delta_pages_served += 1
            final = number == len(pages) - 1
            changes = [
                ItemChange(item_id, item.current, metadata={"seq": seq})
                if item.current is not None
                else ItemChange(item_id, removed=True)
                for seq, item_id, item in page
            ]
            covered = snapshot if final else page[-1][0]
            yield ChangePage(changes, f"{state.generation}:{covered}", final=final, resync=resync)

    async def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        state = self._objects.get(obj.key, {}).get(collection.id)
        item = state.items.get(change.item_id) if state else None
        if item is None or change.version_key not in item.versions:
            raise ContentGone(change.item_id)
        self._maybe_fail_read()
        self.content_reads += 1
        data = item.versions[change.version_key]
        for start in range(0, max(len(data), 1), 4096):
            if self.content_delay:
                await asyncio.sleep(self.content_delay)
            yield data[start : start + 4096]


# ---------------------------------------------------------------- the repository


class MemoryContentStore:
    """ContentSaver: content-addressed, deduplicated; refs are durable only after flush."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.durable: set[str] = set()
        self.bytes_received = 0
        self.bytes_stored = 0
        self.saves = 0
        self.flushes = 0
        self.save_delay = 0.0

    async def save(self, stream: AsyncIterator[bytes], size: int | None = None) -> str:
        parts = []
        async for chunk in stream:
            if self.save_delay:
                await asyncio.sleep(self.save_delay)
            parts.append(chunk)
        data = b"".join(parts)
        self.saves += 1
        self.bytes_received += len(data)
        ref = hashlib.sha256(data).hexdigest()
        if ref not in self.blobs:
            self.blobs[ref] = data
            self.bytes_stored += len(data)
        return ref

    async def flush(self) -> None:
        self.flushes += 1
        self.durable |= set(self.blobs)

    def crash(self) -> None:
        """The process died: content that was never flushed is lost."""
        for ref in set(self.blobs) - self.durable:
            del self.blobs[ref]


# ---------------------------------------------------------------- the catalog


@dataclass
class VersionRow:
    version_key: str
    content_ref: str | None
    size: int
    first_seen: datetime
    gone_at: datetime | None = None


@dataclass
class _CatalogCollection:
    ref: CollectionRef
    token: str | None = None
    retired: bool = False
    items: dict[str, list[VersionRow]] = field(default_factory=dict)


class MemoryCatalog:
    """VersionRecorder with the real catalog's guarantees: a page commit is all or nothing, a
    version never points at non-durable content, replays of a recorded version add nothing."""

    def __init__(self, store: MemoryContentStore | None = None) -> None:
        self.store = store
        self._state: dict[tuple[str, str], dict[str, _CatalogCollection]] = {}
        self.commits = 0
        self.token_history: list[tuple[str, str, str]] = []  # (object key, collection, token)
        self._crash_in: int | None = None

    def crash_on_commit(self, after: int | None = 0) -> None:
        """The commit after `after` more successful ones dies half-applied (and is rolled back);
        None disarms."""
        self._crash_in = after

    async def load_token(self, obj: BackupObject, collection_id: str) -> str | None:
        state = self._state.get(obj.key, {}).get(collection_id)
        return None if state is None or state.retired else state.token

    async def known_collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        return [c.ref for c in self._state.get(obj.key, {}).values() if not c.retired]

    async def current_versions(
        self, obj: BackupObject, collection_id: str, item_ids: Sequence[str]
    ) -> Mapping[str, str]:
        state = self._state.get(obj.key, {}).get(collection_id)
        if state is None:
            return {}
        out = {}
        for item_id in item_ids:
            rows = state.items.get(item_id)
            if rows and rows[-1].gone_at is None:
                out[item_id] = rows[-1].version_key
        return out

    async def live_ids(self, obj: BackupObject, collection_id: str) -> set[str]:
        state = self._state.get(obj.key, {}).get(collection_id)
        if state is None:
            return set()
        return {i for i, rows in state.items.items() if rows and rows[-1].gone_at is None}

    async def record_page(self, obj: BackupObject, page: PageRecord) -> None:
        await self.record_pages(obj, [page])

    async def record_pages(self, obj: BackupObject, pages: Sequence[PageRecord]) -> None:
        # Stage every page on copies; nothing is visible until all are staged (atomic).
        staged = [self._stage(obj, page) for page in pages]
        if self._crash_in is not None:
            if self._crash_in == 0:
                self._crash_in = None
                raise SimulatedCrash("catalog commit interrupted")  # the copies are dropped: rollback
            self._crash_in -= 1
        for page, touched in zip(pages, staged, strict=True):
            self._publish(obj, page, touched)
        self.commits += 1

    def _stage(self, obj: BackupObject, page: PageRecord) -> dict[str, list[VersionRow]]:
        for version in page.versions:
            ref = version.content_ref
            if self.store is not None and ref is not None and ref not in self.store.durable:
                raise AssertionError(f"write order violated: {version.content_ref} is not durable")
        existing = self._state.get(obj.key, {}).get(page.collection.id)
        items = existing.items if existing else {}
        touched: dict[str, list[VersionRow]] = {}

        def rows_of(item_id: str) -> list[VersionRow]:
            if item_id not in touched:
                touched[item_id] = [copy.copy(row) for row in items.get(item_id, [])]
            return touched[item_id]

        for version in page.versions:
            rows = rows_of(version.item_id)
            if rows and rows[-1].gone_at is None:
                if rows[-1].version_key == version.version_key:
                    continue  # a replay
                rows[-1].gone_at = page.at
            rows.append(VersionRow(version.version_key, version.content_ref, version.size, page.at))
        for item_id in page.gone:
            rows = rows_of(item_id)
            if rows and rows[-1].gone_at is None:
                rows[-1].gone_at = page.at
        return touched

    def _publish(self, obj: BackupObject, page: PageRecord, touched: dict[str, list[VersionRow]]) -> None:
        collections = self._state.setdefault(obj.key, {})
        state = collections.setdefault(page.collection.id, _CatalogCollection(page.collection))
        state.ref, state.retired = page.collection, False
        state.items.update({item_id: rows for item_id, rows in touched.items() if rows})
        if page.token is not None:
            state.token = page.token
            self.token_history.append((obj.key[1], page.collection.id, page.token))
        if page.retire:
            state.token, state.retired = None, True

    # -------------------------------------------------------- inspection for tests

    def rows(self, obj: BackupObject, collection_id: str) -> dict[str, list[VersionRow]]:
        state = self._state.get(obj.key, {}).get(collection_id)
        return {} if state is None else state.items

    def live_content(self, obj: BackupObject, collection_id: str) -> dict[str, str | None]:
        """item id -> content ref of the live version."""
        return {
            item_id: rows[-1].content_ref
            for item_id, rows in self.rows(obj, collection_id).items()
            if rows and rows[-1].gone_at is None
        }


# ---------------------------------------------------------------- the session


class RecordingReporter:
    """SessionReporter that keeps what it is told."""

    def __init__(self) -> None:
        self.items: list[LogItem] = []
        self.progress_updates: list[tuple[int, SessionStatistics]] = []
        self.status: SessionStatus = SessionStatus.RUNNING
        self.end_time: datetime | None = None

    async def log(self, item: LogItem) -> None:
        self.items.append(item)

    async def progress(self, progress: int, statistics: SessionStatistics) -> None:
        self.progress_updates.append((progress, statistics))

    async def finish(self, status: SessionStatus, end_time: datetime) -> None:
        if self.end_time is not None:
            raise AssertionError("session finished twice")
        self.status, self.end_time = status, end_time

    @property
    def titles(self) -> list[str]:
        return [item.title for item in self.items]


def mailbox(user_id: str, name: str = "") -> BackupObject:
    return BackupObject(ObjectKind.MAILBOX, user_id, name or user_id)
