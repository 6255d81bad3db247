"""Writer lock files and prune marks (format §8): small sealed JSON objects, never rewritten.

A lock says "a writer is open and has seen every prune mark made before `marks_seen`". A mark
lists the packs prune's phase 1 chose; writers must not deduplicate against blobs only found there.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m365vault.repository.crypto import Keys, open_sealed, seal

LOCK_REFRESH = timedelta(minutes=5)  # a writer rewrites its lock at least this often while active
LOCK_STALE = timedelta(minutes=30)  # a lock not refreshed for this long belongs to a dead writer


@dataclass(frozen=True)
class LockInfo:
    created: datetime
    marks_seen: datetime
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def seal(self, keys: Keys, name: str) -> bytes:
        doc = {
            "kind": "shared",
            "created": self.created.isoformat(),
            "marks_seen": self.marks_seen.isoformat(),
            "host": self.host,
            "pid": self.pid,
        }
        return seal(keys.data, json.dumps(doc).encode(), b"lock" + bytes.fromhex(name))

    @classmethod
    def open(cls, keys: Keys, name: str, data: bytes) -> LockInfo:
        doc = json.loads(open_sealed(keys.data, data, b"lock" + bytes.fromhex(name), f"lock {name}"))
        return cls(
            datetime.fromisoformat(doc["created"]),
            datetime.fromisoformat(doc["marks_seen"]),
            str(doc["host"]),
            int(doc["pid"]),
        )

    def is_stale(self, now: datetime) -> bool:
        return now - self.created > LOCK_STALE


@dataclass(frozen=True)
class PruneMark:
    created: datetime
    delete: frozenset[str]
    repack: frozenset[str]

    @property
    def packs(self) -> frozenset[str]:
        return self.delete | self.repack

    def seal(self, keys: Keys, name: str) -> bytes:
        doc = {
            "created": self.created.isoformat(),
            "delete": sorted(self.delete),
            "repack": sorted(self.repack),
        }
        return seal(keys.data, json.dumps(doc).encode(), b"mark" + bytes.fromhex(name))

    @classmethod
    def open(cls, keys: Keys, name: str, data: bytes) -> PruneMark:
        doc = json.loads(open_sealed(keys.data, data, b"mark" + bytes.fromhex(name), f"mark {name}"))
        return cls(datetime.fromisoformat(doc["created"]), frozenset(doc["delete"]), frozenset(doc["repack"]))
