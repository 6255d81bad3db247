"""The index: which pack holds each blob (format §6).

`IndexFile` is the serialized form of one index object; `MasterIndex` is the in-memory union of all
current index files plus what this process has stored since.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from m365vault.repository.blob import BlobType
from m365vault.repository.crypto import Keys, open_sealed, seal
from m365vault.repository.errors import IntegrityError
from m365vault.repository.pack import PackEntry

INDEX_MAGIC = b"M3VI"
_HEAD = struct.Struct("<4sBI")
_COUNT = struct.Struct("<I")
_PACK = struct.Struct("<32sI")
_ENTRY = struct.Struct("<BIII32s")  # type, offset, envelope length, content length, blob id


def index_aad(name: str) -> bytes:
    return b"index" + bytes.fromhex(name)


@dataclass
class IndexFile:
    packs: dict[str, list[PackEntry]] = field(default_factory=dict)
    supersedes: list[str] = field(default_factory=list)

    def seal(self, keys: Keys, name: str) -> bytes:
        parts = [_HEAD.pack(INDEX_MAGIC, 1, len(self.supersedes))]
        parts.extend(bytes.fromhex(s) for s in self.supersedes)
        parts.append(_COUNT.pack(len(self.packs)))
        for pack, entries in self.packs.items():
            parts.append(_PACK.pack(bytes.fromhex(pack), len(entries)))
            parts.extend(_ENTRY.pack(e.kind, e.offset, e.length, e.raw_length, e.blob_id) for e in entries)
        return seal(keys.data, zstandard.ZstdCompressor(level=3).compress(b"".join(parts)), index_aad(name))

    @classmethod
    def open(cls, keys: Keys, name: str, data: bytes) -> IndexFile:
        plain = open_sealed(keys.data, data, index_aad(name), f"index {name}")
        try:
            body = zstandard.ZstdDecompressor().decompress(plain)
            magic, version, n_super = _HEAD.unpack_from(body)
            if magic != INDEX_MAGIC or version != 1:
                raise IntegrityError(f"index {name}: not a version 1 index")
            pos = _HEAD.size
            supersedes = [body[pos + 32 * i : pos + 32 * (i + 1)].hex() for i in range(n_super)]
            pos += 32 * n_super
            (n_packs,) = _COUNT.unpack_from(body, pos)
            pos += _COUNT.size
            packs: dict[str, list[PackEntry]] = {}
            for _ in range(n_packs):
                pack, count = _PACK.unpack_from(body, pos)
                pos += _PACK.size
                entries = []
                for kind, offset, length, raw, blob_id in _ENTRY.iter_unpack(
                    body[pos : pos + count * _ENTRY.size]
                ):
                    entries.append(PackEntry(BlobType(kind), bytes(blob_id), offset, length, raw))
                if len(entries) != count:
                    raise IntegrityError(f"index {name}: truncated")
                pos += count * _ENTRY.size
                packs[pack.hex()] = entries
        except (struct.error, ValueError, zstandard.ZstdError) as err:
            raise IntegrityError(f"index {name}: malformed ({err})") from None
        if pos != len(body):
            raise IntegrityError(f"index {name}: trailing bytes")
        return cls(packs, supersedes)


@dataclass(frozen=True, slots=True)  # no per-object __dict__: the index holds one per blob
class Location:
    pack: str
    entry: PackEntry


class MasterIndex:
    """Blob id -> where it is stored. A blob may be in several packs; any copy will do."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, list[Location]] = {}
        self.packs: dict[str, list[PackEntry]] = {}
        self.dictionaries: set[bytes] = set()  # ids of compression dictionary blobs

    def add_pack(self, pack: str, entries: Iterable[PackEntry]) -> None:
        if pack in self.packs:
            return
        listed = list(entries)
        self.packs[pack] = listed
        for entry in listed:
            self._blobs.setdefault(entry.blob_id, []).append(Location(pack, entry))
            if entry.kind is BlobType.DICTIONARY:
                self.dictionaries.add(entry.blob_id)

    def remove_pack(self, pack: str) -> None:
        for entry in self.packs.pop(pack, []):
            remaining = [loc for loc in self._blobs.get(entry.blob_id, []) if loc.pack != pack]
            if remaining:
                self._blobs[entry.blob_id] = remaining
            else:
                self._blobs.pop(entry.blob_id, None)
                self.dictionaries.discard(entry.blob_id)

    def lookup(self, blob_id: bytes) -> list[Location]:
        return self._blobs.get(blob_id, [])

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def blob_ids(self) -> Iterator[bytes]:
        return iter(self._blobs)
