"""Which content references a repository's catalog still uses: what the repository's prune asks.

Two ways in, both streamed in sorted pages so memory stays flat at any repository size:
- `live_refs`: every reference some version of the repository still holds (mark phase of a
  mark-and-sweep prune);
- `released_refs`: references a retention pass saw lose their last version. A backup may have
  referenced the same content again since (deduplication), so prune must confirm with
  `still_referenced` inside its own second phase before reclaiming, then `forget_released`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select

from m365vault.db.catalog_tables import (
    objects_table,
    released_refs_table,
    versions_table,
)

_objects = objects_table
_versions = versions_table
_released = released_refs_table

_CHUNK = 500


def _referenced(conn: Connection, repository_id: str, refs: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(refs), _CHUNK):
        chunk = list(refs[start : start + _CHUNK])
        rows = conn.execute(
            select(_versions.c.content_ref)
            .join(_objects, _objects.c.id == _versions.c.object_id)
            .where(_versions.c.content_ref.in_(chunk), _objects.c.repository_id == repository_id)
            .distinct()
        )
        found.update(row.content_ref for row in rows)
    return found


def release_unreferenced(conn: Connection, repository_id: str, refs: Sequence[str], at: datetime) -> int:
    """Record which of `refs` no version of the repository holds any more; returns how many."""
    if not refs:
        return 0
    unreferenced = sorted(set(refs) - _referenced(conn, repository_id, refs))
    if not unreferenced:
        return 0
    known: set[str] = set()
    for start in range(0, len(unreferenced), _CHUNK):
        chunk = unreferenced[start : start + _CHUNK]
        known.update(
            conn.execute(
                select(_released.c.content_ref).where(
                    _released.c.repository_id == repository_id, _released.c.content_ref.in_(chunk)
                )
            ).scalars()
        )
    fresh = [ref for ref in unreferenced if ref not in known]
    if fresh:
        conn.execute(
            insert(_released),
            [{"repository_id": repository_id, "content_ref": ref, "released_at": at} for ref in fresh],
        )
    return len(fresh)


class ContentRefs:
    """The catalog's answers to the repository's prune."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def live_refs(self, repository_id: str, *, page_size: int = 10_000) -> Iterator[str]:
        """Every distinct content reference held by a version in the repository, ascending."""
        after: str | None = None
        while True:
            query = (
                select(_versions.c.content_ref)
                .join(_objects, _objects.c.id == _versions.c.object_id)
                .where(_objects.c.repository_id == repository_id, _versions.c.content_ref.is_not(None))
                .distinct()
                .order_by(_versions.c.content_ref)
                .limit(page_size)
            )
            if after is not None:
                query = query.where(_versions.c.content_ref > after)
            with self._engine.connect() as conn:
                page = list(conn.execute(query).scalars())
            yield from page
            if len(page) < page_size:
                return
            after = page[-1]

    def released_refs(self, repository_id: str, *, page_size: int = 10_000) -> Iterator[tuple[str, datetime]]:
        """(reference, released at) of references released by retention and not yet forgotten."""
        after: str | None = None
        while True:
            query = (
                select(_released.c.content_ref, _released.c.released_at)
                .where(_released.c.repository_id == repository_id)
                .order_by(_released.c.content_ref)
                .limit(page_size)
            )
            if after is not None:
                query = query.where(_released.c.content_ref > after)
            with self._engine.connect() as conn:
                page = [(row.content_ref, row.released_at) for row in conn.execute(query)]
            yield from page
            if len(page) < page_size:
                return
            after = page[-1][0]

    def still_referenced(self, repository_id: str, refs: Iterable[str]) -> set[str]:
        """The subset of `refs` that some version of the repository holds right now."""
        with self._engine.connect() as conn:
            return _referenced(conn, repository_id, list(dict.fromkeys(refs)))

    def unreferenced_refs(self, repository_id: str, candidates: Iterable[str]) -> Iterator[str]:
        """Stream the candidates (e.g. every blob the repository lists) that no version holds."""
        batch: list[str] = []
        for ref in candidates:
            batch.append(ref)
            if len(batch) >= _CHUNK:
                yield from self._unreferenced_batch(repository_id, batch)
                batch = []
        if batch:
            yield from self._unreferenced_batch(repository_id, batch)

    def _unreferenced_batch(self, repository_id: str, batch: list[str]) -> list[str]:
        held = self.still_referenced(repository_id, batch)
        return [ref for ref in batch if ref not in held]

    def forget_released(self, repository_id: str, refs: Iterable[str]) -> None:
        """Prune reclaimed (or re-confirmed as live) these references: stop reporting them."""
        pending = list(dict.fromkeys(refs))
        with self._engine.begin() as conn:
            for start in range(0, len(pending), _CHUNK):
                conn.execute(
                    delete(_released).where(
                        _released.c.repository_id == repository_id,
                        _released.c.content_ref.in_(pending[start : start + _CHUNK]),
                    )
                )
