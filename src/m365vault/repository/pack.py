"""Pack files: blobs followed by an encrypted header and a trailer (format §5)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import zstandard

from m365vault.repository.blob import BlobType, Envelope
from m365vault.repository.crypto import Keys, open_sealed, seal
from m365vault.repository.errors import IntegrityError

PACK_MAGIC = b"M3VP"
TRAILER = struct.Struct("<I4s")
HEADER_ENTRY = struct.Struct("<BII32s")  # type, envelope length, content length, blob id


@dataclass(frozen=True, slots=True)  # no per-object __dict__: the index holds one per blob
class PackEntry:
    kind: BlobType
    blob_id: bytes
    offset: int
    length: int
    raw_length: int


def header_aad(pack_name: str) -> bytes:
    return b"pack" + bytes.fromhex(pack_name)


class PackBuilder:
    """Collects blob envelopes in memory until the pack is big enough to store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._parts: list[bytes] = []
        self.entries: list[PackEntry] = []
        self.size = 0
        self._ids: set[bytes] = set()

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._ids

    def add(self, kind: BlobType, blob_id: bytes, envelope: Envelope, raw_length: int) -> None:
        if blob_id in self._ids:
            return  # a pack never lists a blob twice
        self._ids.add(blob_id)
        if isinstance(envelope, bytes):
            length = len(envelope)
            self._parts.append(envelope)
        else:
            length = sum(map(len, envelope))
            self._parts.extend(envelope)
        self.entries.append(PackEntry(kind, blob_id, self.size, length, raw_length))
        self.size += length

    def finish(self, keys: Keys) -> list[bytes]:
        """The whole pack object, as parts to write in order (joining them would copy the whole
        pack). The builder forgets them."""
        header = b"".join(HEADER_ENTRY.pack(e.kind, e.length, e.raw_length, e.blob_id) for e in self.entries)
        sealed = seal(keys.data, zstandard.ZstdCompressor(level=3).compress(header), header_aad(self.name))
        self._parts.append(sealed)
        self._parts.append(TRAILER.pack(len(sealed), PACK_MAGIC))
        parts, self._parts = self._parts, []
        return parts


def parse_header(keys: Keys, pack_name: str, tail: bytes, pack_size: int) -> list[PackEntry]:
    """Entries of a pack from its last bytes (`tail` must hold header and trailer)."""
    if len(tail) < TRAILER.size:
        raise IntegrityError(f"pack {pack_name}: too short for a trailer")
    header_length, magic = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)
    if magic != PACK_MAGIC:
        raise IntegrityError(f"pack {pack_name}: bad trailer (an interrupted or damaged write)")
    if header_length + TRAILER.size > len(tail):
        raise IntegrityError(f"pack {pack_name}: header length {header_length} out of range")
    start = len(tail) - TRAILER.size - header_length
    sealed = tail[start : len(tail) - TRAILER.size]
    plain = open_sealed(keys.data, sealed, header_aad(pack_name), f"pack {pack_name} header")
    try:
        header = zstandard.ZstdDecompressor().decompress(plain)
    except zstandard.ZstdError as err:
        raise IntegrityError(f"pack {pack_name}: bad header frame: {err}") from None
    if len(header) % HEADER_ENTRY.size:
        raise IntegrityError(f"pack {pack_name}: bad header length")
    entries: list[PackEntry] = []
    offset = 0
    for kind, length, raw_length, blob_id in HEADER_ENTRY.iter_unpack(header):
        try:
            entries.append(PackEntry(BlobType(kind), bytes(blob_id), offset, length, raw_length))
        except ValueError:
            raise IntegrityError(f"pack {pack_name}: unknown blob type {kind}") from None
        offset += length
    blobs_end = pack_size - TRAILER.size - header_length
    if offset != blobs_end:
        raise IntegrityError(
            f"pack {pack_name}: header describes {offset} bytes of blobs, pack has {blobs_end}"
        )
    return entries
