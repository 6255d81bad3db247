"""The repository's config object and the settings chosen at init (format §3.4)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from m365vault.repository.chunker import ChunkerParams
from m365vault.repository.crypto import Keys, open_sealed, seal
from m365vault.repository.errors import IntegrityError, UnsupportedFormat

FORMAT_VERSION = 1
_AAD = b"config"
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


@dataclass(frozen=True)
class ObjectLockPolicy:
    """Object Lock for config, packs and index files: mode and retention period."""

    mode: str
    days: int

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise ValueError(f"Object Lock mode must be one of {', '.join(LOCK_MODES)}")
        if self.days < 1:
            raise ValueError("Object Lock period must be at least one day")

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)


@dataclass(frozen=True)
class RepositoryConfig:
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    created: str = ""
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    small_item_limit: int = 1024 * 1024
    pack_size: int = 32 * 1024 * 1024
    compression_level: int = 3
    object_lock: ObjectLockPolicy | None = None
    version: int = FORMAT_VERSION

    def validate(self) -> None:
        c = self.chunker
        if not (64 <= c.min_size <= c.avg_size <= c.max_size <= 16 * 1024 * 1024):
            raise ValueError("chunker sizes must satisfy 64 <= min <= avg <= max <= 16 MiB")
        if self.small_item_limit < c.min_size:
            raise ValueError("small_item_limit must be at least the chunker's minimum size")
        if not (1024 <= self.pack_size <= 1024 * 1024 * 1024):
            raise ValueError("pack_size must be between 1 KiB and 1 GiB")
        if not (1 <= self.compression_level <= 22):
            raise ValueError("compression level must be 1..22")

    def seal(self, keys: Keys) -> bytes:
        doc: dict[str, Any] = {
            "version": self.version,
            "id": self.id,
            "created": self.created,
            "chunker": {
                "min": self.chunker.min_size,
                "avg": self.chunker.avg_size,
                "max": self.chunker.max_size,
            },
            "small_item_limit": self.small_item_limit,
            "pack_size": self.pack_size,
            "compression_level": self.compression_level,
            "object_lock": None
            if self.object_lock is None
            else {"mode": self.object_lock.mode, "days": self.object_lock.days},
        }
        return seal(keys.data, json.dumps(doc).encode(), _AAD)

    @classmethod
    def open(cls, keys: Keys, data: bytes) -> RepositoryConfig:
        doc = json.loads(open_sealed(keys.data, data, _AAD, "config"))
        if doc.get("version") != FORMAT_VERSION:
            raise UnsupportedFormat(f"repository format version {doc.get('version')} is not supported")
        try:
            lock = doc.get("object_lock")
            return cls(
                id=doc["id"],
                created=doc["created"],
                chunker=ChunkerParams(doc["chunker"]["min"], doc["chunker"]["avg"], doc["chunker"]["max"]),
                small_item_limit=int(doc["small_item_limit"]),
                pack_size=int(doc["pack_size"]),
                compression_level=int(doc["compression_level"]),
                object_lock=None if lock is None else ObjectLockPolicy(lock["mode"], int(lock["days"])),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise IntegrityError(f"config is malformed: {err}") from None
