"""The backup engine's side of the catalog: objects, versions, gone marks, delta tokens, restore points.

Every write is one transaction. A delta page's versions, gone marks and the delta token that follows
the page commit together, so a token is never durable before the versions it accounts for.

Replays are harmless: an upsert whose content reference, metadata and parent equal the open version
changes nothing; a gone mark on something already gone changes nothing. Several changes of one entry
inside one run (same run time) rewrite the run's version in place, so a restore point shows the state
the run ended with and intervals are never empty by accident.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from m365vault.catalog.errors import OutOfOrderWrite, UnknownObject
from m365vault.catalog.types import (
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ObjectKind,
    ObjectRef,
    PageStats,
    PageWrite,
    VersionWrite,
)
from m365vault.db.catalog_tables import (
    entries_table,
    objects_table,
    restore_points_table,
    sync_state_table,
    to_micros,
    versions_table,
)

_objects = objects_table
_entries = entries_table
_versions = versions_table
_sync = sync_state_table
_points = restore_points_table

_CONTAINER_KINDS = [k.value for k in EntryKind if k.is_container]
_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and psycopg's parameter limits


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metadata_columns(meta: EntryMetadata) -> dict[str, Any]:
    """The version table's metadata columns for `meta` (datetimes as micros, lists as JSON)."""
    return {
        "name": meta.name,
        "path": meta.path,
        "item_class": meta.item_class,
        "subject": meta.subject,
        "sender": meta.sender,
        "to_recipients": list(meta.to) if meta.to is not None else None,
        "cc_recipients": list(meta.cc) if meta.cc is not None else None,
        "sent_at": meta.sent_at,
        "received_at": meta.received_at,
        "modified_at": meta.modified_at,
        "size": meta.size,
        "extras": meta.extras,
    }


def version_digest(parent_id: int, kind: EntryKind, content_ref: str | None, meta: EntryMetadata) -> str:
    """A fingerprint of everything that makes a new version when it changes."""
    canonical = json.dumps(
        [
            parent_id,
            kind.value,
            content_ref,
            meta.name,
            meta.path,
            meta.item_class,
            meta.subject,
            meta.sender,
            list(meta.to) if meta.to is not None else None,
            list(meta.cc) if meta.cc is not None else None,
            to_micros(meta.sent_at) if meta.sent_at else None,
            to_micros(meta.received_at) if meta.received_at else None,
            to_micros(meta.modified_at) if meta.modified_at else None,
            meta.size,
            meta.extras,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class _Latest:
    """The newest version of an entry as the page sees it (persisted or pending)."""

    version_id: int | None  # None while the row is a pending insert
    parent_id: int
    first_seen: int
    gone_at: int | None
    end_reason: int
    digest: str


class _PagePlan:
    """The row changes one page makes, gathered in memory and flushed as batched statements."""

    def __init__(self, object_id: int, run_time: datetime) -> None:
        self.object_id = object_id
        self.run_time = run_time
        self.t = to_micros(run_time)
        self.inserts: dict[int, dict[str, Any]] = {}  # entry id -> row of the new version
        self.updates: dict[int, dict[str, Any]] = {}  # version id -> changed columns
        self.stats = PageStats()

    def bump(self, **counts: int) -> None:
        self.stats = replace(self.stats, **{k: getattr(self.stats, k) + v for k, v in counts.items()})

    def update(self, version_id: int, **values: Any) -> None:
        self.updates.setdefault(version_id, {}).update(values)

    def new_row(self, entry_id: int, parent_id: int, write: VersionWrite, digest: str) -> dict[str, Any]:
        meta = write.metadata
        age = meta.modified_at or meta.received_at or self.run_time
        return {
            "entry_id": entry_id,
            "object_id": self.object_id,
            "parent_id": parent_id,
            "kind": write.kind.value,
            "first_seen": self.run_time,
            "gone_at": None,
            "end_reason": int(EndReason.OPEN),
            "resurrected_at": None,
            "age_at": age,
            "digest": digest,
            "content_ref": write.content_ref,
            **metadata_columns(meta),
        }


class CatalogWriter:
    """Writes the catalog for the backup engine. Safe to share; each call is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ objects
    def ensure_object(
        self,
        organization_id: str,
        repository_id: str,
        kind: ObjectKind,
        external_id: str,
        *,
        seen_at: datetime,
        name: str = "",
        email: str | None = None,
        url: str | None = None,
        parent_external_id: str | None = None,
        extras: dict[str, Any] | None = None,
    ) -> ObjectRef:
        """Find or create the object; refresh its descriptive fields. An object seen again after it
        was marked gone is live again from `seen_at`."""
        to_micros(seen_at)  # refuses a naive datetime before anything is written
        key = and_(
            _objects.c.organization_id == organization_id,
            _objects.c.repository_id == repository_id,
            _objects.c.kind == kind.value,
            _objects.c.external_id == external_id,
        )
        described: dict[str, Any] = {
            "name": name,
            "email": email,
            "url": url,
            "parent_external_id": parent_external_id,
        }
        if extras is not None:
            described["extras"] = extras
        creation = {
            "organization_id": organization_id,
            "repository_id": repository_id,
            "kind": kind.value,
            "external_id": external_id,
        }
        # Two tasks may meet a new object at once: the loser of the insert race retries and finds it.
        for attempt in range(2):
            try:
                object_id = self._upsert_object(key, seen_at, described, creation)
                break
            except IntegrityError:
                if attempt:
                    raise
        return ObjectRef(object_id, organization_id, repository_id, kind, external_id)

    def _upsert_object(
        self, key: ColumnElement[bool], seen_at: datetime, described: dict[str, Any], creation: dict[str, Any]
    ) -> int:
        with self._engine.begin() as conn:
            row = conn.execute(
                select(_objects.c.id, _objects.c.first_seen, _objects.c.gone_at).where(key)
            ).first()
            if row is None:
                created: int = conn.execute(
                    insert(_objects)
                    .values(**creation, first_seen=seen_at, gone_at=None, last_change_at=seen_at, **described)
                    .returning(_objects.c.id)
                ).scalar_one()
                return created
            values: dict[str, Any] = dict(described)
            if row.first_seen > seen_at:
                values["first_seen"] = seen_at
            if row.gone_at is not None and row.gone_at <= seen_at:
                values["gone_at"] = None
            conn.execute(update(_objects).where(_objects.c.id == row.id).values(**values))
            return int(row.id)

    def mark_object_gone(self, object_id: int, at: datetime) -> None:
        """The mailbox, drive or site no longer exists in the tenant (its history stays)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(_objects)
                .where(_objects.c.id == object_id, _objects.c.gone_at.is_(None))
                .values(gone_at=at)
            )

    # ------------------------------------------------------------------ versions
    def apply_page(self, object_id: int, page: PageWrite) -> PageStats:
        """Apply a delta page (upserts, then gone marks) and save its delta token, atomically."""
        with self._engine.begin() as conn:
            return self.apply_page_in(conn, object_id, page)

    def upsert_version(self, object_id: int, write: VersionWrite, run_time: datetime) -> PageStats:
        return self.apply_page(object_id, PageWrite(run_time=run_time, upserts=(write,)))

    def mark_gone(
        self, object_id: int, external_id: str, at: datetime, reason: EndReason = EndReason.DELETED
    ) -> PageStats:
        return self.apply_page(object_id, PageWrite(run_time=at, gones=(GoneWrite(external_id, reason),)))

    def apply_page_in(self, conn: Connection, object_id: int, page: PageWrite) -> PageStats:
        """`apply_page` inside a transaction the caller owns (to join other writes to it)."""
        last_change = conn.execute(
            select(_objects.c.last_change_at).where(_objects.c.id == object_id)
        ).scalar_one_or_none()
        if last_change is None:
            raise UnknownObject(f"catalog object {object_id} does not exist")
        plan = _PagePlan(object_id, page.run_time)
        ids = self._entry_ids(conn, object_id, page)
        latest = self._latest_versions(
            conn,
            [ids[w.external_id] for w in page.upserts]
            + [ids[g.external_id] for g in page.gones if g.external_id in ids],
        )
        for write in page.upserts:
            parent_id = ids[write.parent_external_id] if write.parent_external_id is not None else 0
            self._plan_upsert(plan, latest, ids[write.external_id], parent_id, write)
        for gone in page.gones:
            entry_id = ids.get(gone.external_id)
            if entry_id is not None:
                self._plan_gone(plan, latest, entry_id, gone.reason)
        self._flush(conn, plan)
        for gone in page.gones:
            if gone.with_contents and gone.external_id in ids:
                closed = self._close_contents(
                    conn, object_id, ids[gone.external_id], page.run_time, gone.reason
                )
                plan.bump(gone=closed)
        if plan.inserts or plan.updates or plan.stats.gone:
            conn.execute(
                update(_objects)
                .where(_objects.c.id == object_id, _objects.c.last_change_at < page.run_time)
                .values(last_change_at=page.run_time)
            )
        if page.delta_token is not None:
            self._save_token(conn, object_id, page.delta_token[0], page.delta_token[1], page.run_time)
        return plan.stats

    def _entry_ids(self, conn: Connection, object_id: int, page: PageWrite) -> dict[str, int]:
        """Entry ids for every external id the page names, creating entries for new ones (gone
        marks of never-seen entries are ignored, so they create nothing)."""
        kinds: dict[str, str | None] = {}
        for write in page.upserts:
            if write.parent_external_id is not None:
                kinds.setdefault(write.parent_external_id, None)
            kinds[write.external_id] = write.kind.value
        wanted = list(dict.fromkeys([*kinds, *(g.external_id for g in page.gones)]))
        ids: dict[str, int] = {}
        known_kind: dict[str, str | None] = {}
        for chunk in _chunks(wanted):
            rows = conn.execute(
                select(_entries.c.id, _entries.c.external_id, _entries.c.kind).where(
                    _entries.c.object_id == object_id, _entries.c.external_id.in_(chunk)
                )
            )
            for row in rows:
                ids[row.external_id] = row.id
                known_kind[row.external_id] = row.kind
        missing = [ext for ext in kinds if ext not in ids]
        if missing:
            conn.execute(
                insert(_entries),
                [{"object_id": object_id, "external_id": e, "kind": kinds[e]} for e in missing],
            )
            for chunk in _chunks(missing):
                rows = conn.execute(
                    select(_entries.c.id, _entries.c.external_id).where(
                        _entries.c.object_id == object_id, _entries.c.external_id.in_(chunk)
                    )
                )
                ids.update({row.external_id: row.id for row in rows})
        # Entries first met as a parent learn their kind when they are described themselves.
        unkinded = [
            {"eid": ids[ext], "k": kind}
            for ext, kind in kinds.items()
            if kind is not None and ext in known_kind and known_kind[ext] != kind
        ]
        if unkinded:
            conn.execute(
                update(_entries).where(_entries.c.id == bindparam("eid")).values(kind=bindparam("k")),
                unkinded,
            )
        return ids

    def _latest_versions(self, conn: Connection, entry_ids: list[int]) -> dict[int, _Latest]:
        latest: dict[int, _Latest] = {}
        unique = list(dict.fromkeys(entry_ids))
        newest = select(_versions.c.entry_id, func.max(_versions.c.first_seen).label("fs")).group_by(
            _versions.c.entry_id
        )
        for chunk in _chunks(unique):
            sub = newest.where(_versions.c.entry_id.in_(chunk)).subquery()
            rows = conn.execute(
                select(
                    _versions.c.id,
                    _versions.c.entry_id,
                    _versions.c.parent_id,
                    _versions.c.first_seen,
                    _versions.c.gone_at,
                    _versions.c.end_reason,
                    _versions.c.digest,
                ).join(sub, and_(sub.c.entry_id == _versions.c.entry_id, sub.c.fs == _versions.c.first_seen))
            )
            for row in rows:
                latest[row.entry_id] = _Latest(
                    row.id,
                    row.parent_id,
                    to_micros(row.first_seen),
                    to_micros(row.gone_at) if row.gone_at is not None else None,
                    row.end_reason,
                    row.digest,
                )
        return latest

    def _plan_upsert(
        self, plan: _PagePlan, latest: dict[int, _Latest], entry_id: int, parent_id: int, write: VersionWrite
    ) -> None:
        t = plan.t
        digest = version_digest(parent_id, write.kind, write.content_ref, write.metadata)
        current = latest.get(entry_id)
        if current is not None and current.first_seen > t:
            raise OutOfOrderWrite(
                f"entry {write.external_id!r} has a version from a later run than {plan.run_time.isoformat()}"
            )
        if current is not None and current.gone_at is not None and current.gone_at > t:
            raise OutOfOrderWrite(f"entry {write.external_id!r} was closed after {plan.run_time.isoformat()}")
        row = plan.new_row(entry_id, parent_id, write, digest)
        if current is None:
            plan.inserts[entry_id] = row
            latest[entry_id] = _Latest(None, parent_id, t, None, int(EndReason.OPEN), digest)
            plan.bump(created=1)
            return
        if current.digest == digest and (current.gone_at is None or current.gone_at == t):
            if current.gone_at is None:
                plan.bump(unchanged=1)
                return
            # Gone and back within one run with nothing changed: the absence was never a state.
            self._rewrite(plan, entry_id, current, {"gone_at": None, "end_reason": int(EndReason.OPEN)})
            current.gone_at, current.end_reason = None, int(EndReason.OPEN)
            plan.bump(updated_in_place=1)
            return
        if current.first_seen == t:
            # Changed again within the same run: the run's version becomes the newer state.
            changes = {k: v for k, v in row.items() if k not in ("entry_id", "object_id", "first_seen")}
            self._rewrite(plan, entry_id, current, changes)
            current.gone_at, current.end_reason, current.digest = None, int(EndReason.OPEN), digest
            current.parent_id = parent_id
            plan.bump(updated_in_place=1)
            return
        if current.gone_at is None:
            reason = EndReason.MOVED if current.parent_id != parent_id else EndReason.REPLACED
            self._rewrite(plan, entry_id, current, {"gone_at": plan.run_time, "end_reason": int(reason)})
            plan.bump(replaced=1)
        else:
            if current.end_reason == EndReason.DELETED:
                self._rewrite(plan, entry_id, current, {"resurrected_at": plan.run_time})
            plan.bump(created=1)
        plan.inserts[entry_id] = row
        latest[entry_id] = _Latest(None, parent_id, t, None, int(EndReason.OPEN), digest)

    def _plan_gone(
        self, plan: _PagePlan, latest: dict[int, _Latest], entry_id: int, reason: EndReason
    ) -> None:
        current = latest.get(entry_id)
        if current is None or current.gone_at is not None:
            return  # never seen, or already gone: a replay changes nothing
        if current.first_seen > plan.t:
            raise OutOfOrderWrite(f"entry {entry_id} has a version from a later run")
        self._rewrite(plan, entry_id, current, {"gone_at": plan.run_time, "end_reason": int(reason)})
        current.gone_at, current.end_reason = plan.t, int(reason)
        plan.bump(gone=1)

    @staticmethod
    def _rewrite(plan: _PagePlan, entry_id: int, current: _Latest, values: dict[str, Any]) -> None:
        if current.version_id is None:
            plan.inserts[entry_id].update(values)
        else:
            plan.update(current.version_id, **values)

    @staticmethod
    def _close_contents(conn: Connection, object_id: int, root: int, at: datetime, reason: EndReason) -> int:
        """Close every version live under `root` (breadth first through live containers)."""
        v = _versions.c
        closed = 0
        parents = [root]
        while parents:
            children: list[int] = []
            for chunk in _chunks(parents):
                live = and_(v.object_id == object_id, v.parent_id.in_(chunk), v.gone_at.is_(None))
                children += conn.execute(
                    select(v.entry_id).where(live, v.kind.in_(_CONTAINER_KINDS))
                ).scalars()
                closed += conn.execute(
                    update(_versions)
                    .where(live, v.first_seen <= at)
                    .values(gone_at=at, end_reason=int(reason))
                ).rowcount
            parents = children
        return closed

    def _flush(self, conn: Connection, plan: _PagePlan) -> None:
        # Updates are grouped by the columns they set, one executemany per group.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for version_id, values in plan.updates.items():
            groups.setdefault(tuple(sorted(values)), []).append(
                {"v_id": version_id, **{f"v_{k}": val for k, val in values.items()}}
            )
        for columns, rows in groups.items():
            statement = (
                update(_versions)
                .where(_versions.c.id == bindparam("v_id"))
                .values({c: bindparam(f"v_{c}", type_=_versions.c[c].type) for c in columns})
            )
            conn.execute(statement, rows)
        if plan.inserts:
            conn.execute(insert(_versions), list(plan.inserts.values()))

    # ------------------------------------------------------------------ delta tokens
    @staticmethod
    def _save_token(conn: Connection, object_id: int, collection: str, token: str, at: datetime) -> None:
        changed = conn.execute(
            update(_sync)
            .where(_sync.c.object_id == object_id, _sync.c.collection == collection)
            .values(token=token, updated_at=at)
        ).rowcount
        if not changed:
            conn.execute(
                insert(_sync).values(object_id=object_id, collection=collection, token=token, updated_at=at)
            )

    def save_tokens_in(
        self, conn: Connection, object_id: int, tokens: Sequence[tuple[str, str]], at: datetime
    ) -> None:
        """Save several collections' delta tokens inside the caller's transaction: one statement per
        kind of write instead of one or two per token (an incremental saves a token for every
        unchanged folder). The last token given for a collection wins."""
        latest = dict(tokens)
        if not latest:
            return
        saved: set[str] = set()
        for chunk in _chunks(list(latest)):
            saved.update(
                conn.execute(
                    select(_sync.c.collection).where(
                        _sync.c.object_id == object_id, _sync.c.collection.in_(chunk)
                    )
                ).scalars()
            )
        updates = [{"c": c, "t": t} for c, t in latest.items() if c in saved]
        if updates:
            conn.execute(
                update(_sync)
                .where(_sync.c.object_id == object_id, _sync.c.collection == bindparam("c"))
                .values(token=bindparam("t"), updated_at=at),
                updates,
            )
        fresh = [
            {"object_id": object_id, "collection": c, "token": t, "updated_at": at}
            for c, t in latest.items()
            if c not in saved
        ]
        if fresh:
            conn.execute(insert(_sync), fresh)

    def delta_token(self, object_id: int, collection: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                select(_sync.c.token).where(_sync.c.object_id == object_id, _sync.c.collection == collection)
            ).scalar_one_or_none()

    def delta_tokens(self, object_id: int) -> dict[str, str]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_sync.c.collection, _sync.c.token).where(_sync.c.object_id == object_id)
            )
            return {row.collection: row.token for row in rows}

    def forget_delta_token(self, object_id: int, collection: str) -> None:
        """Drop a token (expired or invalid at the source): the next run resyncs the collection."""
        with self._engine.begin() as conn:
            conn.execute(
                _sync.delete().where(_sync.c.object_id == object_id, _sync.c.collection == collection)
            )

    # ------------------------------------------------------------------ resync support
    def known_external_ids(
        self,
        object_id: int,
        parent_external_id: str | None,
        *,
        kinds: Iterable[EntryKind] | None = None,
        page_size: int = 1000,
    ) -> Iterator[str]:
        """External ids live now under a container (None: the root), in a stable order, streamed in
        pages: a full resync diffs them against the source to find what vanished unseen."""
        kind_values = [k.value for k in kinds] if kinds is not None else None
        with self._engine.connect() as conn:
            if parent_external_id is None:
                parent_id = 0
            else:
                found = conn.execute(
                    select(_entries.c.id).where(
                        _entries.c.object_id == object_id, _entries.c.external_id == parent_external_id
                    )
                ).scalar_one_or_none()
                if found is None:
                    return
                parent_id = found
        after = -1
        while True:
            query = (
                select(_versions.c.entry_id, _entries.c.external_id)
                .join(_entries, _entries.c.id == _versions.c.entry_id)
                .where(
                    _versions.c.object_id == object_id,
                    _versions.c.parent_id == parent_id,
                    _versions.c.gone_at.is_(None),
                    _versions.c.entry_id > after,
                )
                .order_by(_versions.c.entry_id)
                .limit(page_size)
            )
            if kind_values is not None:
                query = query.where(_versions.c.kind.in_(kind_values))
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield row.external_id
            if len(rows) < page_size:
                return
            after = rows[-1].entry_id

    # ------------------------------------------------------------------ restore points
    def record_restore_point(
        self, object_id: int, run_time: datetime, job_session_id: str | None = None
    ) -> None:
        """Record that a backup run of the object completed at `run_time` (idempotent)."""
        with self._engine.begin() as conn:
            obj = conn.execute(
                select(_objects.c.organization_id, _objects.c.repository_id).where(_objects.c.id == object_id)
            ).first()
            if obj is None:
                raise UnknownObject(f"catalog object {object_id} does not exist")
            exists = conn.execute(
                select(_points.c.id).where(_points.c.object_id == object_id, _points.c.run_time == run_time)
            ).first()
            if exists is None:
                conn.execute(
                    insert(_points).values(
                        object_id=object_id,
                        organization_id=obj.organization_id,
                        repository_id=obj.repository_id,
                        run_time=run_time,
                        job_session_id=job_session_id,
                    )
                )
