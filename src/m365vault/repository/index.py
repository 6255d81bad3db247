"""The index: which pack holds each blob (format §6).

`IndexFile` is the serialized form of one index object; `MasterIndex` is the in-memory union of all
current index files plus what this process has stored since.

Memory: a repository of ten million blobs must fit in a modest server, so nothing here holds a
Python object per blob. A pack's entries stay in the 45-byte records of the index file format
(`PackEntries`); the lookup table is a hash table of 16-byte slots (blob id prefix, pack number,
entry number) in one bytearray per bucket. About 65 bytes per blob (bench_repository index).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

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
_ID_AT = 13  # where the blob id starts in an entry
_KINDS = tuple(BlobType)


def index_aad(name: str) -> bytes:
    return b"index" + bytes.fromhex(name)


class PackEntries(Sequence[PackEntry]):
    """A pack's entries as one bytes object of index-format records; `PackEntry` made on access."""

    __slots__ = ("records",)

    def __init__(self, records: bytes) -> None:
        if len(records) % _ENTRY.size:
            raise ValueError("records must be whole index entries")
        if records[:: _ENTRY.size].translate(None, bytes(_KINDS)):
            raise ValueError("unknown blob type")
        self.records = records

    @classmethod
    def of(cls, entries: Iterable[PackEntry]) -> PackEntries:
        if isinstance(entries, PackEntries):
            return entries
        return cls(
            b"".join(_ENTRY.pack(e.kind, e.offset, e.length, e.raw_length, e.blob_id) for e in entries)
        )

    def __len__(self) -> int:
        return len(self.records) // _ENTRY.size

    @overload
    def __getitem__(self, i: int) -> PackEntry: ...
    @overload
    def __getitem__(self, i: slice) -> list[PackEntry]: ...
    def __getitem__(self, i: int | slice) -> PackEntry | list[PackEntry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        kind, offset, length, raw, blob_id = _ENTRY.unpack_from(self.records, (i % len(self)) * _ENTRY.size)
        return PackEntry(_KINDS[kind], blob_id, offset, length, raw)

    def __iter__(self) -> Iterator[PackEntry]:
        for kind, offset, length, raw, blob_id in _ENTRY.iter_unpack(self.records):
            yield PackEntry(_KINDS[kind], blob_id, offset, length, raw)

    def blob_id(self, i: int) -> bytes:
        at = i * _ENTRY.size + _ID_AT
        return self.records[at : at + 32]

    def blob_ids(self) -> Iterator[bytes]:
        for i in range(len(self)):
            yield self.blob_id(i)


@dataclass
class IndexFile:
    packs: dict[str, PackEntries] = field(default_factory=dict)
    supersedes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.packs = {pack: PackEntries.of(entries) for pack, entries in self.packs.items()}

    def seal(self, keys: Keys, name: str) -> bytes:
        parts = [_HEAD.pack(INDEX_MAGIC, 1, len(self.supersedes))]
        parts.extend(bytes.fromhex(s) for s in self.supersedes)
        parts.append(_COUNT.pack(len(self.packs)))
        for pack, entries in self.packs.items():
            parts.append(_PACK.pack(bytes.fromhex(pack), len(entries)))
            parts.append(entries.records)
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
            packs: dict[str, PackEntries] = {}
            for _ in range(n_packs):
                pack, count = _PACK.unpack_from(body, pos)
                pos += _PACK.size
                records = body[pos : pos + count * _ENTRY.size]
                if len(records) != count * _ENTRY.size:
                    raise IntegrityError(f"index {name}: truncated")
                pos += count * _ENTRY.size
                packs[pack.hex()] = PackEntries(records)
        except (struct.error, ValueError, zstandard.ZstdError) as err:
            raise IntegrityError(f"index {name}: malformed ({err})") from None
        if pos != len(body):
            raise IntegrityError(f"index {name}: trailing bytes")
        return cls(packs, supersedes)


@dataclass(frozen=True, slots=True)
class Location:
    pack: str
    entry: PackEntry


_SLOT = struct.Struct("<8sII")  # blob id prefix, pack number, entry number in that pack
_BUCKET_SLOTS = 32  # average slots per bucket before the table doubles: a lookup scans ~512 bytes
_MAX_BITS = 24


def id_prefix(blob_id: bytes) -> bytes:
    """The 8 bytes a slot keeps of a blob id; ids sharing them are told apart by the full id in
    the pack's records. Tests replace this to force such collisions."""
    return blob_id[:8]


def _bucket(prefix: bytes | bytearray, bits: int) -> int:
    return int.from_bytes(prefix[:4], "big") >> (32 - bits) if bits else 0


class MasterIndex:
    """Blob id -> where it is stored. A blob may be in several packs; any copy will do.

    Changed on the event loop thread only. Pool threads may read it (the save path's "surely
    stored?" hint): buckets only grow in place and are replaced, never shrunk, and the table is
    swapped whole, so a reader sees a consistent, perhaps slightly old, state."""

    def __init__(self) -> None:
        self.packs: dict[str, PackEntries] = {}
        self.dictionaries: set[bytes] = set()  # ids of compression dictionary blobs
        self._names: list[str] = []  # pack number -> name
        self._entries: list[PackEntries | None] = []  # pack number -> entries (None once removed)
        self._numbers: dict[str, int] = {}
        self._table: tuple[int, list[bytearray]] = (0, [bytearray()])  # (bits, buckets)
        self._slots = 0
        self._distinct = 0

    def add_pack(self, pack: str, entries: Iterable[PackEntry]) -> None:
        if pack in self.packs:
            return
        listed = PackEntries.of(entries)
        number = len(self._names)
        self._names.append(pack)
        self._entries.append(listed)
        self._numbers[pack] = number
        self.packs[pack] = listed
        for i, blob_id in enumerate(listed.blob_ids()):
            if not self._locate(blob_id):
                self._distinct += 1
            prefix = id_prefix(blob_id)
            bits, buckets = self._table
            buckets[_bucket(prefix, bits)] += _SLOT.pack(prefix, number, i)
            self._slots += 1
            if self._slots > _BUCKET_SLOTS << bits:
                self._grow()
            if listed.records[i * _ENTRY.size] == BlobType.DICTIONARY:
                self.dictionaries.add(blob_id)

    def remove_pack(self, pack: str) -> None:
        listed = self.packs.pop(pack, None)
        if listed is None:
            return
        number = self._numbers.pop(pack)
        self._entries[number] = None
        bits, buckets = self._table
        for b in {_bucket(id_prefix(blob_id), bits) for blob_id in listed.blob_ids()}:
            kept = bytearray()
            for prefix, owner, i in _SLOT.iter_unpack(buckets[b]):
                if owner != number:
                    kept += _SLOT.pack(prefix, owner, i)
            self._slots -= (len(buckets[b]) - len(kept)) // _SLOT.size
            buckets[b] = kept  # replaced, not shrunk: see the class docstring
        for blob_id in set(listed.blob_ids()):
            if not self._locate(blob_id):
                self._distinct -= 1
                self.dictionaries.discard(blob_id)

    def lookup(self, blob_id: bytes) -> list[Location]:
        found = []
        for number, i in self._locate(blob_id):
            entries = self._entries[number]
            if entries is not None:
                found.append(Location(self._names[number], entries[i]))
        return found

    def holders(self, blob_id: bytes) -> list[str]:
        """Names of the packs holding a copy (`lookup` without building the entries)."""
        return [self._names[number] for number, _ in self._locate(blob_id)]

    def _locate(self, blob_id: bytes) -> list[tuple[int, int]]:
        """(pack number, entry number) of every copy of the blob."""
        prefix = id_prefix(blob_id)
        bits, buckets = self._table
        bucket = buckets[_bucket(prefix, bits)]
        found: list[tuple[int, int]] = []
        at = bucket.find(prefix)
        while at >= 0:
            if at % _SLOT.size:  # the prefix bytes straddle two slots: not a match
                at = bucket.find(prefix, at + 1)
                continue
            _, number, i = _SLOT.unpack_from(bucket, at)
            entries = self._entries[number]
            if entries is not None and entries.blob_id(i) == blob_id:
                found.append((number, i))
            at = bucket.find(prefix, at + _SLOT.size)
        return found

    def _grow(self) -> None:
        """Double the buckets until they hold about `_BUCKET_SLOTS` slots each."""
        bits, buckets = self._table
        if bits >= _MAX_BITS:
            return
        while self._slots > _BUCKET_SLOTS << bits and bits < _MAX_BITS:
            bits += 1
        grown = [bytearray() for _ in range(1 << bits)]
        for bucket in buckets:
            for at in range(0, len(bucket), _SLOT.size):
                slot = bucket[at : at + _SLOT.size]
                grown[_bucket(slot, bits)] += slot
        self._table = (bits, grown)

    def __contains__(self, blob_id: bytes) -> bool:
        return bool(self._locate(blob_id))

    def __len__(self) -> int:
        return self._distinct

    def blob_ids(self) -> Iterator[bytes]:
        """Every indexed blob id once (copies of one blob share a bucket, so a set per bucket
        suffices)."""
        for bucket in self._table[1]:
            seen: set[bytes] = set()
            for _, number, i in _SLOT.iter_unpack(bucket):
                entries = self._entries[number]
                if entries is not None:
                    blob_id = entries.blob_id(i)
                    if blob_id not in seen:
                        seen.add(blob_id)
                        yield blob_id
