"""Randomized point-in-time check against a model that knows nothing of intervals.

The model keeps only what each backup run observed (a snapshot of the mailbox after the run) and
how each absence began (deleted or moved out of scope). From snapshots alone it derives the three
listings at any time T; the catalog, fed the same runs as delta pages (with replays, pages split
and intermediate same-run states), must agree for every folder and many T. The seed is printed.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m365vault.catalog import (
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ListingQuery,
    PageCursors,
    PageWrite,
    VersionWrite,
)
from tests.catalog.conftest import Catalog, run

FOLDERS = ["f-inbox", "f-sent", "f-archive"]
RUNS = 7
ITEMS = 24

State = tuple[str, str]  # (parent folder, subject)


@dataclass
class Model:
    snapshots: list[tuple[datetime, dict[str, State]]] = field(default_factory=list)
    # endings[k + 1]: ext id -> how an absence began in snapshot k (endings[0] is before any run)
    endings: list[dict[str, EndReason]] = field(default_factory=list)

    def run_index(self, at: datetime) -> int:
        index = -1
        for i, (when, _) in enumerate(self.snapshots):
            if when <= at:
                index = i
        return index

    def versions(self, until: int) -> list[tuple[str, State, int]]:
        """(ext, state, first run) of every version begun by run `until`."""
        out: list[tuple[str, State, int]] = []
        previous: dict[str, State] = {}
        for i in range(until + 1):
            snapshot = self.snapshots[i][1]
            for ext, state in snapshot.items():
                if previous.get(ext) != state:
                    out.append((ext, state, i))
            previous = snapshot
        return out

    def live(self, at: datetime, folder: str) -> list[tuple[str, str]]:
        i = self.run_index(at)
        if i < 0:
            return []
        return sorted((ext, s) for ext, (p, s) in self.snapshots[i][1].items() if p == folder)

    def deleted(self, at: datetime, folder: str) -> list[tuple[str, str]]:
        """Items absent at T whose absence began with a deletion: their last state."""
        i = self.run_index(at)
        out = []
        for ext in {e for _, snap in self.snapshots[: i + 1] for e in snap}:
            if ext in self.snapshots[i][1]:
                continue
            last_seen = max(j for j in range(i + 1) if ext in self.snapshots[j][1])
            if self.endings[last_seen + 2].get(ext) is not EndReason.DELETED:
                continue
            parent, subject = self.snapshots[last_seen][1][ext]
            if parent == folder:
                out.append((ext, subject))
        return sorted(out)

    def all_versions(self, at: datetime, folder: str) -> list[tuple[str, str]]:
        i = self.run_index(at)
        if i < 0:
            return []
        return sorted((ext, s) for ext, (p, s), _ in self.versions(i) if p == folder)


def mail(ext: str, state: State) -> VersionWrite:
    parent, subject = state
    return VersionWrite(
        ext, EntryKind.ITEM, parent, EntryMetadata(subject=subject), content_ref=f"{ext}:{subject}"
    )


def test_catalog_agrees_with_snapshot_model(catalog: Catalog) -> None:
    seed = int(os.environ.get("CATALOG_SEED", random.randrange(1 << 30)))
    print(f"catalog model seed: {seed} (rerun with CATALOG_SEED={seed})")
    rng = random.Random(seed)
    box = catalog.mailbox()
    folders = tuple(VersionWrite(f, EntryKind.FOLDER, None, EntryMetadata(name=f)) for f in FOLDERS)
    catalog.writer.apply_page(box.id, PageWrite(run(1), upserts=folders))

    model = Model()
    current: dict[str, State] = {}
    model.endings.append({})
    revision = 0
    for n in range(1, RUNS + 1):
        when = run(n)
        upserts: list[VersionWrite] = []
        gones: list[GoneWrite] = []
        endings: dict[str, EndReason] = {}
        for i in range(ITEMS):
            ext = f"m{i:02}"
            roll = rng.random()
            if ext not in current:
                if roll < 0.5:
                    revision += 1
                    state = (rng.choice(FOLDERS), f"s{revision}")
                    if rng.random() < 0.2:  # an intermediate state within the same run
                        upserts.append(mail(ext, (rng.choice(FOLDERS), "draft")))
                    current[ext] = state
                    upserts.append(mail(ext, state))
            elif roll < 0.15:
                gones.append(GoneWrite(ext))
                endings[ext] = EndReason.DELETED
                del current[ext]
            elif roll < 0.2:
                gones.append(GoneWrite(ext, EndReason.MOVED))
                endings[ext] = EndReason.MOVED
                del current[ext]
            elif roll < 0.35:
                revision += 1
                current[ext] = (current[ext][0], f"s{revision}")
                upserts.append(mail(ext, current[ext]))
            elif roll < 0.45:
                current[ext] = (rng.choice([f for f in FOLDERS if f != current[ext][0]]), current[ext][1])
                upserts.append(mail(ext, current[ext]))
            elif roll < 0.6:
                upserts.append(mail(ext, current[ext]))  # delta resends an unchanged item
        model.snapshots.append((when, dict(current)))
        model.endings.append(endings)
        # Feed the run as several pages; replay some of them.
        writes: list[VersionWrite | GoneWrite] = [*upserts, *gones]
        cut = rng.randrange(len(writes) + 1)
        for chunk in (writes[:cut], writes[cut:]):
            page = PageWrite(
                when,
                upserts=tuple(w for w in chunk if isinstance(w, VersionWrite)),
                gones=tuple(w for w in chunk if isinstance(w, GoneWrite)),
            )
            catalog.writer.apply_page(box.id, page)
            if rng.random() < 0.3:
                again = catalog.writer.apply_page(box.id, page)
                assert again.created == again.replaced == again.gone == 0
    model.endings.append({})

    times = [run(0)] + [
        run(n) + delta for n in range(1, RUNS + 1) for delta in (timedelta(0), timedelta(hours=7))
    ]
    cursors = PageCursors()
    for at in times:
        i = model.run_index(at)
        for n in range(ITEMS):
            ext = f"m{n:02}"
            found = catalog.reader.version_at(box.id, ext, at)
            expected_state = model.snapshots[i][1].get(ext) if i >= 0 else None
            got_state = (found.parent_external_id, found.metadata.subject) if found else None
            assert got_state == expected_state, (seed, at, ext)
        for folder in FOLDERS:
            for show_deleted, all_versions in ((False, False), (True, False), (False, True)):
                query = ListingQuery(box.id, EntryKind.ITEM, at, folder, show_deleted, all_versions)
                got = _walk(catalog, query, cursors, page_size=rng.choice([1, 3, 5, 1000]))
                if all_versions:
                    expected = model.all_versions(at, folder)
                elif show_deleted:
                    expected = sorted(model.live(at, folder) + model.deleted(at, folder))
                else:
                    expected = model.live(at, folder)
                assert sorted(got) == expected, (seed, at, folder, show_deleted, all_versions)


def _walk(
    catalog: Catalog, query: ListingQuery, cursors: PageCursors, page_size: int
) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    offset = 0
    keys: list[tuple[int, datetime]] = []
    while True:
        page = catalog.reader.list_versions(query, offset=offset, limit=page_size, cursors=cursors)
        seen += [(v.external_id, v.metadata.subject or "") for v in page.items]
        keys += [(v.entry_id, v.first_seen) for v in page.items]
        offset += len(page.items)
        if page.next_key is None:
            break
    assert keys == sorted(keys), "pages must come in one stable order"
    # random jumps through a cursor that leaves marks every 2 rows land where the walk said
    jumps = PageCursors(mark_every=2)
    for start in sorted({len(seen), len(seen) // 2, max(0, len(seen) - 5), 7}, reverse=True):
        page = catalog.reader.list_versions(query, offset=start, limit=3, cursors=jumps)
        assert [(v.external_id, v.metadata.subject or "") for v in page.items] == seen[start : start + 3]
    return seen
