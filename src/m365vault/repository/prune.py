"""Prune: reclaim space in two phases without racing concurrent backups (format §8).

Phase 1 (mark) only writes a prune mark naming packs to delete and packs to repack. Phase 2
(sweep) runs on a later call, once the mark is older than the grace period and every live writer
has seen it; it re-evaluates with the caller's refs as of then, so a blob a backup referenced in
the meantime survives. Nothing stored after phase 1 began is ever a candidate, nothing under Object
Lock retention is ever removed, and no object is rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m365vault.repository.backends.base import BackendError, Handle, Kind, NotFound, ObjectInfo, ObjectLocked
from m365vault.repository.errors import IntegrityError, RepositoryError
from m365vault.repository.locks import LockInfo, PruneMark
from m365vault.repository.pack import PackEntry
from m365vault.repository.repo import Repository, new_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyParameters:
    """Every margin prune keeps, with the reason for it."""

    # How long after phase 1 the sweep may run. Covers the time between a writer handing out a ref
    # (possibly deduplicated against a now-marked pack) and the caller recording it.
    grace: timedelta = timedelta(hours=1)
    # Packs with less than this fraction of their bytes in use are rewritten.
    repack_below: float = 0.5

    @classmethod
    def none(cls) -> SafetyParameters:
        """For tests and for a repository nobody else writes to."""
        return cls(grace=timedelta(0))


@dataclass
class PruneReport:
    phase: str = ""  # "marked", "swept", "waiting", "nothing to do"
    marked_delete: int = 0
    marked_repack: int = 0
    deleted_packs: int = 0
    repacked_packs: int = 0
    repacked_blobs: int = 0
    deleted_index_files: int = 0
    kept_locked: int = 0
    freed_bytes: int = 0
    temp_files_removed: int = 0
    waiting_for: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def used_blobs(repo: Repository, live_refs: Iterable[str] | None) -> set[bytes]:
    """Blob ids the live refs need; None means every indexed blob is live (garbage-only prune)."""
    if live_refs is None:
        return set(repo.index.blob_ids())
    used: set[bytes] = set(repo.index.dictionaries)  # few and small; any blob may need one
    for ref in live_refs:
        try:
            used.update(await repo.item_blobs(ref))
        except (RepositoryError, IntegrityError, BackendError) as err:
            raise RepositoryError(
                f"prune stopped: live item {ref} cannot be read ({err}); run check"
            ) from err
    return used


def _pack_usage(repo: Repository, used: set[bytes]) -> dict[str, tuple[int, int]]:
    """pack -> (bytes used, bytes total). A blob counts once, in the first pack (by name) holding it,
    so duplicate copies from concurrent writers show as waste."""
    counted: set[bytes] = set()
    usage: dict[str, tuple[int, int]] = {}
    for pack in sorted(repo.index.packs):
        entries = repo.index.packs[pack]
        in_use = 0
        for e in entries:
            if e.blob_id in used and e.blob_id not in counted:
                counted.add(e.blob_id)
                in_use += e.length
        usage[pack] = (in_use, sum(e.length for e in entries))
    return usage


async def prune(
    repo: Repository,
    live_refs: Iterable[str] | None,
    *,
    safety: SafetyParameters | None = None,
) -> PruneReport:
    """Run the sweep of a ripe mark if there is one, otherwise mark. `live_refs` is the set of
    refs the caller still needs; None keeps every indexed blob (removes only crash garbage and
    duplicate copies)."""
    safety = safety or SafetyParameters()
    refs = None if live_refs is None else list(live_refs)
    report = PruneReport()
    await repo.flush()
    await repo.load_index()
    await repo._load_marks()
    now = repo.clock()
    for name, mark in sorted(repo.marks.items(), key=lambda kv: kv[1].created):
        waiting = await _sweep_blockers(repo, mark, now, safety)
        if waiting:
            report.phase = "waiting"
            report.waiting_for = waiting
            return report
        await _sweep(repo, name, mark, refs, report)
        report.phase = "swept"
        return report
    await _mark(repo, refs, report, safety)
    report.temp_files_removed = await _remove_temp_files(repo, now - safety.grace)
    return report


async def _remove_temp_files(repo: Repository, before: datetime) -> int:
    """Backends that write through temp files (local) may hold some from killed writers."""
    backend: object = repo.backend
    while hasattr(backend, "unwrap"):
        backend = backend.unwrap()
    remove = getattr(backend, "remove_temp_files", None)
    return int(await remove(before)) if remove is not None else 0


async def _sweep_blockers(
    repo: Repository, mark: PruneMark, now: datetime, safety: SafetyParameters
) -> list[str]:
    blockers: list[str] = []
    if now - mark.created < safety.grace:
        blockers.append(f"grace period until {(mark.created + safety.grace).isoformat()}")
    async for info in repo.backend.list(Kind.LOCKS):
        if info.handle.name == repo._lock_name:
            continue
        try:
            lock = LockInfo.open(repo.keys, info.handle.name, await repo.backend.load(info.handle))
        except (IntegrityError, NotFound, ValueError, KeyError):
            continue  # removed meanwhile, or not ours to read
        if not lock.is_stale(now) and lock.marks_seen < mark.created:
            blockers.append(f"writer {lock.host}:{lock.pid} has not seen the prune mark yet")
    return blockers


async def _mark(
    repo: Repository, refs: list[str] | None, report: PruneReport, safety: SafetyParameters
) -> None:
    started = repo.clock()
    used = await used_blobs(repo, refs)
    present = {info.handle.name: info async for info in repo.backend.list(Kind.DATA)}
    delete: set[str] = set()
    repack: set[str] = set()
    for pack, (in_use, total) in _pack_usage(repo, used).items():
        if pack not in present:
            continue
        if in_use == 0:
            delete.add(pack)
        elif total and in_use / total < safety.repack_below:
            repack.add(pack)
    # Packs no index lists and that were stored before we started: garbage of a crashed writer.
    # (A live writer's not-yet-indexed packs are indexed before it acknowledges the mark.)
    for pack, info in present.items():
        if pack not in repo.index.packs and (info.modified is None or info.modified <= started):
            delete.add(pack)
    if not delete and not repack:
        report.phase = "nothing to do"
        return
    mark = PruneMark(created=started, delete=frozenset(delete), repack=frozenset(repack))
    name = new_name()
    await repo.backend.save(Handle(Kind.MARKS, name), mark.seal(repo.keys, name))
    repo.marks[name] = mark
    report.phase = "marked"
    report.marked_delete, report.marked_repack = len(delete), len(repack)


async def _sweep(
    repo: Repository, mark_name: str, mark: PruneMark, refs: list[str] | None, report: PruneReport
) -> None:
    await repo._load_marks()  # our own writes must avoid the marked packs too
    used = await used_blobs(repo, refs)
    present = {info.handle.name: info async for info in repo.backend.list(Kind.DATA)}
    candidates = {p for p in mark.packs if p in present}

    # Copy used blobs that live only in candidate packs into new packs (dedup skips marked packs).
    for pack in sorted(candidates & repo.index.packs.keys()):
        moved = 0
        for entry in repo.index.packs[pack]:
            if entry.blob_id in used and not _has_copy_outside(repo, entry, candidates):
                content = await repo.load_blob(entry.kind, entry.blob_id)
                await repo._store_blob(entry.kind, content)
                moved += 1
        if moved:
            report.repacked_packs += 1
            report.repacked_blobs += moved
    await repo.flush()

    # Now every used blob has a copy outside the candidates: drop them from the index, then delete.
    locked: set[str] = set()
    for pack in sorted(candidates):
        info = await _stat(repo, Handle(Kind.DATA, pack))
        if info is not None and info.retain_until is not None and info.retain_until > repo.clock():
            locked.add(pack)
    removable = candidates - locked
    await repo.load_index()  # include index files other writers wrote meanwhile: we supersede them
    keep = {p: e for p, e in repo.index.packs.items() if p not in removable}
    # Supersede every present index file, not only current ones: a superseded file kept by its lock
    # must not come back to life when the file that superseded it is removed.
    old_index = list(repo.index_files) + list(repo.index_problems)
    new_index = await repo._write_index(supersedes=old_index, packs=keep)
    for pack in sorted(removable):
        try:
            await repo.backend.remove(Handle(Kind.DATA, pack))
            report.deleted_packs += 1
            report.freed_bytes += present[pack].size
        except ObjectLocked:
            report.kept_locked += 1
        except NotFound:
            pass
    report.kept_locked += len(locked)
    for name in old_index:
        if name == new_index:
            continue
        try:
            await repo.backend.remove(Handle(Kind.INDEX, name))
            report.deleted_index_files += 1
        except ObjectLocked:
            report.notes.append(f"index/{name[:12]} is locked; superseded, so readers ignore it")
        except NotFound:
            pass
    await repo.backend.remove(Handle(Kind.MARKS, mark_name))
    await repo.load_index()
    await repo._load_marks()


def _has_copy_outside(repo: Repository, entry: PackEntry, candidates: set[str]) -> bool:
    return any(
        loc.pack not in candidates and loc.entry.kind is entry.kind
        for loc in repo.index.lookup(entry.blob_id)
    )


async def _stat(repo: Repository, handle: Handle) -> ObjectInfo | None:
    try:
        return await repo.backend.stat(handle)
    except NotFound:
        return None
