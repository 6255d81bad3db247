"""Point-in-time queries for the explore views: objects, containers and items as they were at T.

A version is visible at T when first_seen <= T < gone_at (gone_at null = still there). Versions of
one entry never overlap, so "the latest version seen at or before T and not gone by T" is simply the
visible one: no per-entry grouping is needed and a listing is one index range scan.

Order is (entry id, first_seen): entry ids grow as entries are first met, so the order is total,
independent of T, and stable while later backups add rows (they are invisible at a pinned T).

Page cost: a listing reads one index range in order and stops after offset + limit matches. At or
after the object's last change the scan uses a partial index of open versions only, so deleted or
superseded history costs nothing there. Deep offsets are made cheap by `PageCursors`: it remembers
the key at the end of each served page, so the next page is a seek (`after` key) instead of a skip.
"""

from __future__ import annotations

import bisect
import enum
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Row, and_, func, literal, or_, select, tuple_
from sqlalchemy.orm import aliased

from m365vault.catalog.types import (
    EndReason,
    EntryKind,
    EntryMetadata,
    ObjectInfo,
    ObjectKind,
    RestorePoint,
    VersionInfo,
)
from m365vault.db.catalog_tables import (
    CatalogEntry,
    entries_table,
    objects_table,
    restore_points_table,
    to_micros,
    versions_table,
)

_objects = objects_table
_entries = entries_table
_versions = versions_table
_points = restore_points_table

MAX_LIMIT = 10_000  # v6 caps explore pages here; larger asks are a client bug, not a wish


class _AnyParent(enum.Enum):
    ANY = "any"


ANY_PARENT = _AnyParent.ANY
"""`parent=ANY_PARENT`: every entry of the kind in the object, flat (v3 `Folders` without parentId)."""

PageKey = tuple[int, int]
"""A position in a listing: (entry id, first_seen as epoch microseconds) of the last row served."""


@dataclass(frozen=True, slots=True)
class VersionPage:
    items: list[VersionInfo]
    next_key: PageKey | None  # key of the last row when the page was full, else None (no more rows)


@dataclass(frozen=True, slots=True)
class ListingQuery:
    """What a listing shows; hashable so `PageCursors` can remember positions per listing."""

    object_id: int
    kind: EntryKind
    at: datetime
    parent: str | _AnyParent | None = ANY_PARENT  # container external id, None = root
    show_deleted: bool = False
    all_versions: bool = False


@dataclass
class PageCursors:
    """Remembers where served pages ended, per listing, so that the next page (offset + limit, the
    way v3 clients walk a folder) and any revisited offset cost a seek, not a skip of the rows before.

    A cold jump to a deep offset still skips the rows before it once, but leaves a mark every
    `mark_every` rows on the way, so later jumps anywhere before it skip fewer than `mark_every` rows.

    Held by a restore session (its point in time is fixed, so remembered positions stay true). Bounded:
    at most `max_listings` listings (least recently used dropped), `max_marks` positions each (the
    lowest dropped first).
    """

    max_listings: int = 256
    max_marks: int = 4096
    mark_every: int = 1000
    _marks: OrderedDict[ListingQuery, tuple[list[int], list[PageKey]]] = field(default_factory=OrderedDict)

    def nearest(self, query: ListingQuery, offset: int) -> tuple[int, PageKey | None]:
        """The greatest remembered offset <= `offset` with its key; (0, None) when none."""
        marks = self._marks.get(query)
        if marks is None:
            return 0, None
        self._marks.move_to_end(query)
        offsets, keys = marks
        i = bisect.bisect_right(offsets, offset) - 1
        return (offsets[i], keys[i]) if i >= 0 else (0, None)

    def remember(self, query: ListingQuery, offset: int, key: PageKey) -> None:
        if offset <= 0:
            return
        offsets, keys = self._marks.setdefault(query, ([], []))
        self._marks.move_to_end(query)
        i = bisect.bisect_left(offsets, offset)
        if i < len(offsets) and offsets[i] == offset:
            return
        offsets.insert(i, offset)
        keys.insert(i, key)
        if len(offsets) > self.max_marks:
            del offsets[0], keys[0]
        while len(self._marks) > self.max_listings:
            self._marks.popitem(last=False)


def _visibility(query: ListingQuery, current_only: bool) -> ColumnElement[bool]:
    v = _versions.c
    if current_only:
        return v.gone_at.is_(None)
    t = query.at
    seen = v.first_seen <= t
    if query.all_versions:
        return seen
    live = or_(v.gone_at.is_(None), v.gone_at > t)
    if query.show_deleted:
        deleted = and_(
            v.end_reason == int(EndReason.DELETED),
            or_(v.resurrected_at.is_(None), v.resurrected_at > t),
        )
        return and_(seen, or_(live, deleted))
    return and_(seen, live)


def _metadata(row: Row[Any]) -> EntryMetadata:
    return EntryMetadata(
        name=row.name,
        path=row.path,
        item_class=row.item_class,
        subject=row.subject,
        sender=row.sender,
        to=tuple(row.to_recipients) if row.to_recipients is not None else None,
        cc=tuple(row.cc_recipients) if row.cc_recipients is not None else None,
        sent_at=row.sent_at,
        received_at=row.received_at,
        modified_at=row.modified_at,
        size=row.size,
        extras=row.extras,
    )


def _object_info(row: Row[Any]) -> ObjectInfo:
    return ObjectInfo(
        id=row.id,
        organization_id=row.organization_id,
        repository_id=row.repository_id,
        kind=ObjectKind(row.kind),
        external_id=row.external_id,
        name=row.name,
        email=row.email,
        url=row.url,
        parent_external_id=row.parent_external_id,
        extras=row.extras,
        first_seen=row.first_seen,
        gone_at=row.gone_at,
        last_change_at=row.last_change_at,
    )


_parent_entry = aliased(CatalogEntry, name="parent_entry")


def _version_select() -> Any:
    return (
        select(_versions, _entries.c.external_id, _parent_entry.external_id.label("parent_external_id"))
        .join(_entries, _entries.c.id == _versions.c.entry_id)
        .outerjoin(_parent_entry, _parent_entry.id == _versions.c.parent_id)
    )


def _version_info(row: Row[Any]) -> VersionInfo:
    return VersionInfo(
        version_id=row.id,
        entry_id=row.entry_id,
        object_id=row.object_id,
        external_id=row.external_id,
        parent_external_id=row.parent_external_id,
        kind=EntryKind(row.kind),
        first_seen=row.first_seen,
        gone_at=row.gone_at,
        end_reason=EndReason(row.end_reason),
        content_ref=row.content_ref,
        metadata=_metadata(row),
    )


class CatalogReader:
    """Read side of the catalog. Stateless; share one per engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ objects
    def objects(
        self,
        organization_id: str,
        *,
        at: datetime,
        kinds: Iterable[ObjectKind] | None = None,
        repository_id: str | None = None,
        parent_external_id: str | _AnyParent | None = ANY_PARENT,
        show_deleted: bool = False,
        offset: int = 0,
        limit: int = 30,
    ) -> list[ObjectInfo]:
        """Objects first backed up at or before `at` (a mailbox not yet backed up then is absent);
        objects gone from the tenant by `at` only with `show_deleted`. Ordered by object id."""
        o = _objects.c
        query = select(_objects).where(o.organization_id == organization_id, o.first_seen <= at)
        if kinds is not None:
            query = query.where(o.kind.in_([k.value for k in kinds]))
        if repository_id is not None:
            query = query.where(o.repository_id == repository_id)
        if parent_external_id is not ANY_PARENT:
            query = query.where(
                o.parent_external_id.is_(None)
                if parent_external_id is None
                else o.parent_external_id == parent_external_id
            )
        if not show_deleted:
            query = query.where(or_(o.gone_at.is_(None), o.gone_at > at))
        query = query.order_by(o.id).offset(max(offset, 0)).limit(_clamp(limit))
        with self._engine.connect() as conn:
            return [_object_info(row) for row in conn.execute(query)]

    def get_object(self, object_id: int) -> ObjectInfo | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(_objects).where(_objects.c.id == object_id)).first()
            return _object_info(row) if row is not None else None

    def find_object(
        self, organization_id: str, kind: ObjectKind, external_id: str, repository_id: str | None = None
    ) -> list[ObjectInfo]:
        """The object in each repository holding it (one unless the organization moved repository)."""
        o = _objects.c
        query = select(_objects).where(
            o.organization_id == organization_id, o.kind == kind.value, o.external_id == external_id
        )
        if repository_id is not None:
            query = query.where(o.repository_id == repository_id)
        with self._engine.connect() as conn:
            return [_object_info(row) for row in conn.execute(query.order_by(o.id))]

    # ------------------------------------------------------------------ listings
    def list_versions(
        self,
        query: ListingQuery,
        *,
        offset: int = 0,
        limit: int = 30,
        after: PageKey | None = None,
        cursors: PageCursors | None = None,
    ) -> VersionPage:
        """One page of a listing. `after` seeks past a key; `offset` skips rows after that. With
        `cursors` the nearest remembered position before `offset` is used as the starting key."""
        limit = _clamp(limit)
        offset = max(offset, 0)
        base_offset = 0
        if after is None and cursors is not None:
            base_offset, after = cursors.nearest(query, offset)
        with self._engine.connect() as conn:
            found = self._listing_context(conn, query)
            if found is None:
                return VersionPage([], None)
            parent_id, last_change = found
            current_only = not query.show_deleted and not query.all_versions and query.at >= last_change
            v = _versions.c
            keys = select(v.entry_id, v.first_seen).where(
                v.object_id == query.object_id, v.kind == query.kind.value, _visibility(query, current_only)
            )
            if parent_id is not ANY_PARENT:
                keys = keys.where(v.parent_id == parent_id)
            if after is not None:
                keys = keys.where(
                    tuple_(v.entry_id, v.first_seen)
                    > tuple_(literal(after[0], BigInteger), literal(after[1], BigInteger))
                )
            skip = offset - base_offset
            if cursors is not None and skip >= 2 * cursors.mark_every:
                self._leave_marks(conn, keys, query, cursors, base_offset, skip)
                mark_offset, mark = cursors.nearest(query, offset)
                if mark is not None and mark_offset > base_offset:
                    skip = offset - mark_offset
                    keys = keys.where(
                        tuple_(v.entry_id, v.first_seen)
                        > tuple_(literal(mark[0], BigInteger), literal(mark[1], BigInteger))
                    )
            page = keys.order_by(v.entry_id, v.first_seen).offset(skip).limit(limit).subquery()
            rows = conn.execute(
                _version_select()
                .join(page, and_(page.c.entry_id == v.entry_id, page.c.first_seen == v.first_seen))
                .order_by(v.entry_id, v.first_seen)
            ).all()
        items = [_version_info(row) for row in rows]
        next_key = (items[-1].entry_id, to_micros(items[-1].first_seen)) if len(items) == limit else None
        if cursors is not None and items:
            cursors.remember(
                query, offset + len(items), (items[-1].entry_id, to_micros(items[-1].first_seen))
            )
        return VersionPage(items, next_key)

    @staticmethod
    def _leave_marks(
        conn: Any, keys: Any, query: ListingQuery, cursors: PageCursors, base_offset: int, skip: int
    ) -> None:
        """Walk the `skip` keys once (inside the covering index) and remember every mark_every-th."""
        v = _versions.c
        walked = keys.order_by(v.entry_id, v.first_seen).limit(skip).subquery()
        numbered = select(
            walked.c.entry_id,
            walked.c.first_seen,
            func.row_number().over(order_by=(walked.c.entry_id, walked.c.first_seen)).label("n"),
        ).subquery()
        marks = conn.execute(
            select(numbered.c.entry_id, numbered.c.first_seen, numbered.c.n).where(
                numbered.c.n % cursors.mark_every == 0
            )
        )
        for row in marks:
            cursors.remember(query, base_offset + row.n, (row.entry_id, to_micros(row.first_seen)))

    @staticmethod
    def _listing_context(conn: Any, query: ListingQuery) -> tuple[int | _AnyParent, datetime] | None:
        """The parent's entry id and the object's last change, in one round trip; None when the
        object or the named parent does not exist."""
        o = _objects.c
        if query.parent is ANY_PARENT or query.parent is None:
            last_change = conn.execute(
                select(o.last_change_at).where(o.id == query.object_id)
            ).scalar_one_or_none()
            if last_change is None:
                return None
            return (ANY_PARENT if query.parent is ANY_PARENT else 0), last_change
        row = conn.execute(
            select(_entries.c.id, o.last_change_at)
            .join(_objects, o.id == _entries.c.object_id)
            .where(_entries.c.object_id == query.object_id, _entries.c.external_id == query.parent)
        ).first()
        return None if row is None else (row.id, row.last_change_at)

    # ------------------------------------------------------------------ single entries
    def version_at(
        self, object_id: int, external_id: str, at: datetime, *, show_deleted: bool = False
    ) -> VersionInfo | None:
        """The entry as it was at `at`: its visible version, or with `show_deleted` its last version
        if it had been deleted by then. None when it did not exist (yet, or any more)."""
        v = _versions.c
        with self._engine.connect() as conn:
            row = conn.execute(
                _version_select()
                .where(
                    _entries.c.object_id == object_id,
                    _entries.c.external_id == external_id,
                    v.first_seen <= at,
                )
                .order_by(v.first_seen.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        info = _version_info(row)
        if info.gone_at is None or info.gone_at > at:
            return info
        resurrected = row.resurrected_at
        if show_deleted and info.is_deleted and (resurrected is None or resurrected > at):
            return info
        return None

    def get_version(self, version_id: int) -> VersionInfo | None:
        with self._engine.connect() as conn:
            row = conn.execute(_version_select().where(_versions.c.id == version_id)).first()
        return _version_info(row) if row is not None else None

    def history(self, object_id: int, external_id: str) -> list[VersionInfo]:
        """Every version of one entry, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                _version_select()
                .where(_entries.c.object_id == object_id, _entries.c.external_id == external_id)
                .order_by(_versions.c.first_seen)
            ).all()
        return [_version_info(row) for row in rows]

    # ------------------------------------------------------------------ restore points
    def restore_points(
        self,
        organization_id: str,
        *,
        repository_id: str | None = None,
        object_ids: Sequence[int] | None = None,
        until: datetime | None = None,
    ) -> list[datetime]:
        """The organization's restore points (distinct backup run times), oldest first."""
        query = select(_points.c.run_time).where(_points.c.organization_id == organization_id).distinct()
        if repository_id is not None:
            query = query.where(_points.c.repository_id == repository_id)
        if object_ids is not None:
            query = query.where(_points.c.object_id.in_(list(object_ids)))
        if until is not None:
            query = query.where(_points.c.run_time <= until)
        with self._engine.connect() as conn:
            return list(conn.execute(query.order_by(_points.c.run_time)).scalars())

    def object_restore_points(self, object_id: int) -> list[RestorePoint]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_points).where(_points.c.object_id == object_id).order_by(_points.c.run_time)
            )
            return [RestorePoint(row.object_id, row.run_time, row.job_session_id) for row in rows]

    def backup_span(
        self, organization_id: str, repository_id: str | None = None
    ) -> tuple[datetime, datetime] | None:
        """(firstBackuptime, lastBackuptime) of the organization, or None if never backed up."""
        query = select(func.min(_points.c.run_time), func.max(_points.c.run_time)).where(
            _points.c.organization_id == organization_id
        )
        if repository_id is not None:
            query = query.where(_points.c.repository_id == repository_id)
        with self._engine.connect() as conn:
            first, last = conn.execute(query).one()
        if first is None or last is None:
            return None
        return first, last

    def restore_point_at(self, organization_id: str, at: datetime) -> datetime | None:
        """The restore point a session at `at` stands on: the newest one at or before `at`."""
        with self._engine.connect() as conn:
            value: datetime | None = conn.execute(
                select(func.max(_points.c.run_time)).where(
                    _points.c.organization_id == organization_id, _points.c.run_time <= at
                )
            ).scalar_one()
        return value


def _clamp(limit: int) -> int:
    return min(max(limit, 1), MAX_LIMIT)
