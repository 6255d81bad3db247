"""The retention pass: removes from the catalog what a repository's policy no longer keeps, and
releases the content references that lost their last version so the repository's prune can reclaim
them.

ItemLevel: an item version is kept while its age is within the period. Age is measured from the
item's own modification time (received time for mail without one), falling back to the time the
backup first saw it: that is what an administrator means by "keep mail for 3 years" (a message
received 4 years ago goes, however recently it was backed up). Containers carry no content; a
container version is dropped only once it has been closed (renamed, moved, deleted) for longer
than the period.

SnapshotBased: the state as of every restore point inside the period is kept. A version is
dropped only when no retained restore point can see it. Since every retained restore point r is
>= the cutoff, a version [first_seen, gone_at) that started before the cutoff is visible to some
retained point exactly when the object's oldest retained point r_min is < gone_at; open versions
are always visible to the next restore point and are kept (unless the object itself is gone from
the tenant and has no retained point left). Versions first seen inside the period are never dropped,
which also protects a run in progress whose restore point is not recorded yet.

Restore points older than the cutoff are removed in both modes. Work is done in bounded
transactions (`batch_size` versions each) so a pass over a large repository never holds a long lock
or a big list in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, func, or_, select

from m365vault.catalog.refs import release_unreferenced
from m365vault.catalog.retention_policy import RetentionPolicy, RetentionType
from m365vault.catalog.types import EntryKind
from m365vault.clock import Clock
from m365vault.db.catalog_tables import (
    objects_table,
    restore_points_table,
    versions_table,
)

_objects = objects_table
_versions = versions_table
_points = restore_points_table

_CONTAINER_KINDS = [k.value for k in EntryKind if k.is_container]


@dataclass(frozen=True, slots=True)
class RetentionResult:
    repository_id: str
    ran_at: datetime
    cutoff: datetime | None  # None: the policy keeps everything, nothing was examined
    versions_removed: int = 0
    restore_points_removed: int = 0
    refs_released: int = 0


class RetentionPass:
    def __init__(self, engine: Engine, clock: Clock, *, batch_size: int = 2000) -> None:
        self._engine = engine
        self._clock = clock
        self._batch_size = batch_size

    def run(self, repository_id: str, policy: RetentionPolicy) -> RetentionResult:
        now = self._clock()
        cutoff = policy.cutoff(now)
        if cutoff is None:
            return RetentionResult(repository_id, now, None)
        removed = released = points = 0
        for object_id, object_gone in self._objects(repository_id):
            with self._engine.begin() as conn:
                r_min = conn.execute(
                    select(func.min(_points.c.run_time)).where(
                        _points.c.object_id == object_id, _points.c.run_time >= cutoff
                    )
                ).scalar_one()
                points += conn.execute(
                    delete(_points).where(_points.c.object_id == object_id, _points.c.run_time < cutoff)
                ).rowcount
            if policy.retention_type is RetentionType.ITEM_LEVEL:
                doomed = _item_level(object_id, cutoff)
            else:
                doomed = _snapshot_based(object_id, cutoff, r_min, object_gone)
            while True:
                with self._engine.begin() as conn:
                    count, refs = self._remove_batch(conn, doomed)
                    released += release_unreferenced(conn, repository_id, refs, now)
                removed += count
                if count < self._batch_size:
                    break
        return RetentionResult(repository_id, now, cutoff, removed, points, released)

    def _objects(self, repository_id: str) -> list[tuple[int, bool]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_objects.c.id, _objects.c.gone_at)
                .where(_objects.c.repository_id == repository_id)
                .order_by(_objects.c.id)
            )
            return [(row.id, row.gone_at is not None) for row in rows]

    def _remove_batch(self, conn: Connection, doomed: ColumnElement[bool]) -> tuple[int, Sequence[str]]:
        rows = conn.execute(
            select(_versions.c.id, _versions.c.content_ref).where(doomed).limit(self._batch_size)
        ).all()
        if not rows:
            return 0, ()
        conn.execute(delete(_versions).where(_versions.c.id.in_([row.id for row in rows])))
        return len(rows), sorted({row.content_ref for row in rows if row.content_ref is not None})


def _item_level(object_id: int, cutoff: datetime) -> ColumnElement[bool]:
    v = _versions.c
    items = and_(v.object_id == object_id, v.age_at < cutoff, v.kind.not_in(_CONTAINER_KINDS))
    containers = and_(
        v.object_id == object_id, v.gone_at.is_not(None), v.gone_at < cutoff, v.kind.in_(_CONTAINER_KINDS)
    )
    return or_(items, containers)


def _snapshot_based(
    object_id: int, cutoff: datetime, r_min: datetime | None, object_gone: bool
) -> ColumnElement[bool]:
    v = _versions.c
    before_period = and_(v.object_id == object_id, v.first_seen < cutoff)
    if r_min is None:
        if object_gone:
            return before_period  # gone from the tenant and no retained point: nothing can see it
        return and_(before_period, v.gone_at.is_not(None), v.gone_at <= cutoff)
    return and_(before_period, v.gone_at.is_not(None), v.gone_at <= r_min)
