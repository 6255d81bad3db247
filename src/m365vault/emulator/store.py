"""Everything that changed since the base tenant, in SQLite in the state directory.

Tables:
  journal      append-only history: (seq, ts, collection, item_id, state-or-NULL). seq is global and
               strictly increasing, so per-collection journals are ordered too (§3.9).
  changes      the latest journal row per (collection, item_id): what a delta round since seq S
               reports is exactly the rows of its collection with seq > S, once each, latest state.
  items        where each touched item lives now (collection) and its state (NULL = gone).
  generations  delta-link generations per collection (older ones expire, as Exchange's sync states).
  expiries     forced delta expiry (admin knob): tokens minted before seq X of a collection prefix.
  sessions     upload sessions; hashes: QuickXorHash cache of generated content; meta: counters.
Uploaded bytes live in blobs/ as content-addressed files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
    collection TEXT NOT NULL, item_id TEXT NOT NULL, state TEXT);
CREATE TABLE IF NOT EXISTS changes (collection TEXT NOT NULL, item_id TEXT NOT NULL, seq INTEGER NOT NULL,
    state TEXT, PRIMARY KEY (collection, item_id));
CREATE INDEX IF NOT EXISTS changes_seq ON changes (collection, seq);
CREATE INDEX IF NOT EXISTS journal_item ON journal (collection, item_id, seq);
CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, collection TEXT NOT NULL, parent TEXT,
    seq INTEGER NOT NULL, state TEXT);
CREATE INDEX IF NOT EXISTS items_parent ON items (collection, parent);
CREATE TABLE IF NOT EXISTS generations (collection TEXT NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (collection, gen));
CREATE TABLE IF NOT EXISTS expiries (prefix TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (key TEXT PRIMARY KEY, qxh TEXT NOT NULL);
"""


def _load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.blob_dir = state_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            state_dir / "emulator.sqlite", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ meta
    def meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def counter(self, key: str, start: int = 0) -> int:
        """Next value of a named counter (list item ids, created object numbers)."""
        with self.lock:
            value = int(self.meta_get(f"counter:{key}") or start) + 1
            self.meta_set(f"counter:{key}", str(value))
            return value

    def current_seq(self) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM journal").fetchone()
        return int(row[0] or 0)

    def seq_at(self, ts: float) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM journal WHERE ts <= ?", (ts,)).fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ writes
    def write(self, ts: float, ops: list[tuple[str, str, dict[str, Any] | None, str | None]]) -> int:
        """Apply (collection, item_id, state-or-None, parent) ops atomically; returns the last seq.

        A None state in a collection is a tombstone there (delete, or move out).
        """
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = 0
                for collection, item_id, state, parent in ops:
                    text = None if state is None else json.dumps(state, separators=(",", ":"))
                    cur = self._db.execute(
                        "INSERT INTO journal (ts, collection, item_id, state) VALUES (?, ?, ?, ?)",
                        (ts, collection, item_id, text),
                    )
                    seq = int(cur.lastrowid or 0)
                    self._db.execute(
                        "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)", (collection, item_id, seq, text)
                    )
                    if state is not None:
                        self._db.execute(
                            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                            (item_id, collection, parent, seq, text),
                        )
                    else:
                        # Only mark the item gone if it still lives in this collection (not a move).
                        row = self._db.execute(
                            "SELECT collection FROM items WHERE item_id = ?", (item_id,)
                        ).fetchone()
                        if row is None or row[0] == collection:
                            self._db.execute(
                                "INSERT OR REPLACE INTO items VALUES (?, ?, NULL, ?, NULL)",
                                (item_id, collection, seq),
                            )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return seq

    # ------------------------------------------------------------------ reads
    def item(self, item_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """(collection, state or None if gone) for a touched item; None if never touched."""
        row = self._db.execute("SELECT collection, state FROM items WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None else (str(row[0]), _load(row[1]))

    def touched_in(self, collection: str) -> set[str]:
        rows = self._db.execute("SELECT item_id FROM changes WHERE collection = ?", (collection,))
        return {str(r[0]) for r in rows}

    def live_added(
        self, collection: str, upto: int, after: int, limit: int
    ) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT seq, item_id, state FROM changes WHERE collection = ? AND seq > ? AND seq <= ? "
            "AND state IS NOT NULL ORDER BY seq LIMIT ?",
            (collection, after, upto, limit),
        )
        return [(int(s), str(i), json.loads(t)) for s, i, t in rows]

    def changed(
        self, collection: str, after: int, upto: int, limit: int
    ) -> list[tuple[int, str, dict[str, Any] | None]]:
        rows = self._db.execute(
            "SELECT seq, item_id, state FROM changes WHERE collection = ? AND seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?",
            (collection, after, upto, limit),
        )
        return [(int(s), str(i), _load(t)) for s, i, t in rows]

    def live_in(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT item_id, state FROM items WHERE collection = ? AND state IS NOT NULL ORDER BY seq",
            (collection,),
        )
        for item_id, text in rows.fetchall():
            yield str(item_id), json.loads(text)

    def count_live_and_touched_base(self, collection: str, is_base: Callable[[str], bool]) -> tuple[int, int]:
        """(live touched items, touched generated items of this collection): counts without listing."""
        live = touched_base = 0
        for item_id, text in self._db.execute(
            "SELECT item_id, state FROM changes WHERE collection = ?", (collection,)
        ):
            if text is not None:
                live += 1
            if is_base(item_id):
                touched_base += 1
        return live, touched_base

    def state_at(self, collection: str, item_id: str, seq: int) -> tuple[bool, bool]:
        """(journal knew the item at `seq`, it was alive there) for one item in one collection."""
        row = self._db.execute(
            "SELECT state IS NOT NULL FROM journal WHERE collection = ? AND item_id = ? AND seq <= ? "
            "ORDER BY seq DESC LIMIT 1",
            (collection, item_id, seq),
        ).fetchone()
        return (False, False) if row is None else (True, bool(row[0]))

    def history(self, collection: str, item_id: str) -> list[tuple[int, float, dict[str, Any] | None]]:
        """Every journal row of one item in one collection, oldest first: (seq, ts, state)."""
        rows = self._db.execute(
            "SELECT seq, ts, state FROM journal WHERE collection = ? AND item_id = ? ORDER BY seq",
            (collection, item_id),
        )
        return [(int(s), float(t), _load(x)) for s, t, x in rows]

    def children(self, collection: str, parent: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT item_id, state FROM items WHERE collection = ? AND parent = ? "
            "AND state IS NOT NULL ORDER BY seq",
            (collection, parent),
        )
        return [(str(i), json.loads(t)) for i, t in rows]

    # ------------------------------------------------------------------ delta generations
    def generation_for(self, collection: str, seq: int) -> int:
        """The generation of a deltaLink at `seq`: a new one whenever the collection moved on."""
        with self.lock:
            row = self._db.execute(
                "SELECT gen, seq FROM generations WHERE collection = ? ORDER BY gen DESC LIMIT 1",
                (collection,),
            ).fetchone()
            if row is not None and int(row[1]) == seq:
                return int(row[0])
            gen = 1 if row is None else int(row[0]) + 1
            self._db.execute("INSERT INTO generations VALUES (?, ?, ?)", (collection, gen, seq))
            return gen

    def latest_generation(self, collection: str) -> int:
        row = self._db.execute(
            "SELECT MAX(gen) FROM generations WHERE collection = ?", (collection,)
        ).fetchone()
        return int(row[0] or 0)

    def expire(self, prefix: str, ts: float) -> int:
        """Force every token of collections starting with `prefix` minted up to now to expire."""
        with self.lock:
            # A journal marker moves the sequence on, so tokens minted from now on are newer than it.
            cur = self._db.execute(
                "INSERT INTO journal (ts, collection, item_id, state) VALUES (?, ?, '', NULL)",
                (ts, f"_expire:{prefix}"),
            )
            seq = int(cur.lastrowid or 0)
            self._db.execute("INSERT OR REPLACE INTO expiries VALUES (?, ?)", (prefix, seq))
            return seq

    def expired_before(self, collection: str) -> int:
        row = self._db.execute(
            "SELECT MAX(seq) FROM expiries WHERE ? LIKE prefix || '%'", (collection,)
        ).fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ blobs, sessions, hashes
    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_dir / digest
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.blob_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest

    def session_put(self, session_id: str, state: dict[str, Any] | None) -> None:
        if state is None:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        else:
            self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (session_id, json.dumps(state)))

    def session_get(self, session_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else _load(row[0])

    def hash_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT qxh FROM hashes WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def hash_put(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?)", (key, value))
