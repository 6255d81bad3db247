"""Blob encoding: compress, encrypt, and the reverse with verification (format §4).

These functions are CPU work; the repository runs them in a thread pool (zstd, AES-GCM and BLAKE3
release the GIL on large inputs).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import zstandard

from m365vault.repository.crypto import Keys, open_sealed, seal, seal_parts
from m365vault.repository.errors import IntegrityError

Envelope = bytes | list[bytes]  # whole, or pieces that make it up in order

RAW = 0
ZSTD = 1
ZSTD_DICT = 2  # followed by the 32-byte id of the dictionary blob, then the frame

# Small blobs compress far better with a dictionary trained on their kind (measured: mail 2.4x ->
# 3.4x, docs/repository-format.md §12); large chunks gain nothing from one.
DICTIONARY_MAX_CONTENT = 128 * 1024

# Already-compressed content (photos, PDFs, zip-based office files) is stored raw; a full zstd pass
# over it is half the write pipeline's zstd time on bench_repository (b)'s large items and gains
# nothing. Blobs this big are first probed: PROBES slices of PROBE_SIZE spread over the content,
# compressed on their own; if they shrink by less than 1/32, the blob is stored raw unprobed.
# Measured on that bench's chunks: the same 131 of 193 chunks go raw as with a full pass, losing
# 1 KB of 104 MB stored, for 3 % of a full pass on compressible ones.
PROBE_MIN_CONTENT = 64 * 1024
PROBES = 4
PROBE_SIZE = 8 * 1024


class BlobType(IntEnum):
    DATA = 0
    MANIFEST = 1
    DICTIONARY = 2


class MissingDictionary(IntegrityError):
    """The blob was compressed with a dictionary the caller has not supplied (yet)."""

    def __init__(self, dictionary_id: bytes) -> None:
        super().__init__(f"needs dictionary {dictionary_id.hex()}")
        self.dictionary_id = dictionary_id


@dataclass(frozen=True)
class Dictionary:
    """A zstd dictionary stored as a blob of its own; `blob_id` names it in encoded blobs."""

    blob_id: bytes
    data: zstandard.ZstdCompressionDict

    @classmethod
    def from_content(cls, blob_id: bytes, content: bytes) -> Dictionary:
        return cls(blob_id, zstandard.ZstdCompressionDict(content))


_local = threading.local()


def _compressor(level: int, dictionary: Dictionary | None = None) -> zstandard.ZstdCompressor:
    cache: dict[tuple[int, bytes], zstandard.ZstdCompressor] = getattr(_local, "compressors", None) or {}
    _local.compressors = cache
    key = (level, b"" if dictionary is None else dictionary.blob_id)
    if key not in cache:
        cache[key] = zstandard.ZstdCompressor(
            level=level, write_content_size=True, dict_data=None if dictionary is None else dictionary.data
        )
    return cache[key]


def _decompressor(dictionary: Dictionary | None = None) -> zstandard.ZstdDecompressor:
    cache: dict[bytes, zstandard.ZstdDecompressor] = getattr(_local, "decompressors", None) or {}
    _local.decompressors = cache
    key = b"" if dictionary is None else dictionary.blob_id
    if key not in cache:
        cache[key] = zstandard.ZstdDecompressor(dict_data=None if dictionary is None else dictionary.data)
    return cache[key]


def looks_incompressible(content: bytes | memoryview, level: int) -> bool:
    """True when zstd would save less than 1/32 of `content` (judged from samples of it)."""
    if len(content) < PROBE_MIN_CONTENT:
        return False
    compressor = _compressor(level)
    step = (len(content) - PROBE_SIZE) // (PROBES - 1)
    with memoryview(content) as view:
        packed = sum(len(compressor.compress(view[i * step : i * step + PROBE_SIZE])) for i in range(PROBES))
    return packed >= PROBES * PROBE_SIZE * 31 // 32


def blob_aad(kind: BlobType, blob_id: bytes) -> bytes:
    return b"blob" + bytes([kind]) + blob_id


def encode(
    keys: Keys,
    kind: BlobType,
    blob_id: bytes,
    content: bytes | memoryview,
    level: int,
    dictionary: Dictionary | None = None,
) -> Envelope:
    """The blob's envelope: encoding byte + (zstd frame or raw), sealed with the blob id as AAD;
    large ones as pieces to write in order (see `seal_parts`)."""
    if looks_incompressible(content, level):
        return seal_parts(keys.data, (bytes([RAW]), content), blob_aad(kind, blob_id))
    use_dictionary = (
        dictionary is not None and kind is BlobType.DATA and len(content) <= DICTIONARY_MAX_CONTENT
    )
    if use_dictionary:
        assert dictionary is not None
        packed = _compressor(level, dictionary).compress(content)
        prefix = bytes([ZSTD_DICT]) + dictionary.blob_id
    else:
        packed = _compressor(level).compress(content)
        prefix = bytes([ZSTD])
    parts = (prefix, packed) if len(prefix) + len(packed) < 1 + len(content) else (bytes([RAW]), content)
    if len(parts[1]) < 64 * 1024:  # joining copies little, and AESGCM's one call is quicker here
        return seal(keys.aead, b"".join(parts), blob_aad(kind, blob_id))
    return seal_parts(keys.data, parts, blob_aad(kind, blob_id))


def decode(
    keys: Keys,
    kind: BlobType,
    blob_id: bytes,
    envelope: bytes,
    raw_length: int,
    dictionaries: Mapping[bytes, Dictionary] | None = None,
) -> bytes:
    """Decrypt, decompress and verify one blob. `MissingDictionary` asks the caller to supply one."""
    body = open_sealed(keys.aead, envelope, blob_aad(kind, blob_id), f"blob {blob_id.hex()}")
    if not body:
        raise IntegrityError(f"blob {blob_id.hex()}: empty body")
    if body[0] == RAW:
        content = body[1:]
    elif body[0] in (ZSTD, ZSTD_DICT):
        dictionary = None
        frame = memoryview(body)[1:]
        if body[0] == ZSTD_DICT:
            dict_id = bytes(body[1:33])
            dictionary = (dictionaries or {}).get(dict_id)
            if dictionary is None:
                raise MissingDictionary(dict_id)
            frame = frame[32:]
        try:
            content = _decompressor(dictionary).decompress(frame, max_output_size=raw_length)
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
