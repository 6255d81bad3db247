"""Blob encoding: compress, encrypt, and the reverse with verification (format §4).

These functions are CPU work; the repository runs them in a thread pool (zstd, AES-GCM and BLAKE3
release the GIL on large inputs).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from enum import IntEnum

import zstandard

from m365vault.repository.crypto import Keys, open_sealed, seal
from m365vault.repository.errors import IntegrityError

RAW = 0
ZSTD = 1


class BlobType(IntEnum):
    DATA = 0
    MANIFEST = 1


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = getattr(_local, "compressors", None) or {}
    _local.compressors = cache
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def blob_aad(kind: BlobType, blob_id: bytes) -> bytes:
    return b"blob" + bytes([kind]) + blob_id


def encode(keys: Keys, kind: BlobType, blob_id: bytes, content: bytes, level: int) -> bytes:
    """The blob's envelope: encoding byte + (zstd frame or raw), sealed with the blob id as AAD."""
    packed = _compressor(level).compress(content)
    body = bytes([ZSTD]) + packed if len(packed) < len(content) else bytes([RAW]) + content
    return seal(keys.data, body, blob_aad(kind, blob_id))


def decode(keys: Keys, kind: BlobType, blob_id: bytes, envelope: bytes, raw_length: int) -> bytes:
    body = open_sealed(keys.data, envelope, blob_aad(kind, blob_id), f"blob {blob_id.hex()}")
    if not body:
        raise IntegrityError(f"blob {blob_id.hex()}: empty body")
    if body[0] == RAW:
        content = body[1:]
    elif body[0] == ZSTD:
        try:
            content = _decompressor().decompress(body[1:], max_output_size=raw_length)
        except zstandard.ZstdError as err:
            raise IntegrityError(f"blob {blob_id.hex()}: bad zstd frame: {err}") from None
    else:
        raise IntegrityError(f"blob {blob_id.hex()}: unknown encoding {body[0]}")
    if len(content) != raw_length or keys.blob_id(content) != blob_id:
        raise IntegrityError(f"blob {blob_id.hex()}: content does not match its id")
    return content


# ---------------------------------------------------------------- manifests (format §4.3)

MANIFEST_MAGIC = b"M3VM"
_MANIFEST_HEAD = struct.Struct("<4sBQ")
_MANIFEST_ENTRY = struct.Struct("<32sI")


@dataclass(frozen=True)
class Manifest:
    size: int
    chunks: list[tuple[bytes, int]]  # (blob id, chunk size)

    def encode(self) -> bytes:
        parts = [_MANIFEST_HEAD.pack(MANIFEST_MAGIC, 1, self.size)]
        parts.extend(_MANIFEST_ENTRY.pack(cid, size) for cid, size in self.chunks)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) < _MANIFEST_HEAD.size or (len(data) - _MANIFEST_HEAD.size) % _MANIFEST_ENTRY.size:
            raise IntegrityError("manifest has a bad length")
        magic, version, size = _MANIFEST_HEAD.unpack_from(data)
        if magic != MANIFEST_MAGIC or version != 1:
            raise IntegrityError("not a version 1 manifest")
        chunks = [(bytes(c), n) for c, n in _MANIFEST_ENTRY.iter_unpack(data[_MANIFEST_HEAD.size :])]
        if sum(n for _, n in chunks) != size:
            raise IntegrityError("manifest sizes do not add up")
        return cls(size, chunks)
