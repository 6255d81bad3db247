"""Blob envelopes: every encoding path opens with the plain AES-GCM envelope of format §3."""

from __future__ import annotations

import os

import pytest

from m365vault.repository.blob import (
    PROBE_MIN_CONTENT,
    RAW,
    ZSTD,
    BlobType,
    blob_aad,
    decode,
    encode,
    looks_incompressible,
)
from m365vault.repository.crypto import NONCE_SIZE, Keys, open_sealed, seal_parts
from m365vault.repository.errors import IntegrityError


def test_sealed_parts_open_as_one_envelope() -> None:
    key = os.urandom(32)
    parts = (b"\x01", memoryview(os.urandom(200_000))[3:], b"", b"tail")
    envelope = b"".join(seal_parts(key, parts, b"aad"))
    assert len(envelope) == NONCE_SIZE + sum(map(len, parts)) + 16
    assert open_sealed(key, envelope, b"aad") == b"".join(parts)
    with pytest.raises(IntegrityError):
        open_sealed(key, envelope, b"other aad")


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        (os.urandom(300_000), RAW),  # large and incompressible: sealed part by part
        (b"compressible line\n" * 20_000, ZSTD),  # large frame: sealed part by part
        # Incompressible head, compressible rest: the probe samples the whole blob, not its start.
        (os.urandom(150_000) + b"compressible line\n" * 20_000, ZSTD),
        (os.urandom(1_000), RAW),  # small: one AES-GCM call
        (b"small and compressible " * 40, ZSTD),
    ],
)
def test_every_encoding_round_trips(content: bytes, encoding: int) -> None:
    keys = Keys.generate()
    blob_id = keys.blob_id(content)
    for data in (content, memoryview(content)):
        encoded = encode(keys, BlobType.DATA, blob_id, data, 3)
        envelope = encoded if isinstance(encoded, bytes) else b"".join(encoded)
        body = open_sealed(keys.data, envelope, blob_aad(BlobType.DATA, blob_id))
        assert body[0] == encoding
        assert decode(keys, BlobType.DATA, blob_id, envelope, len(content)) == content


def test_probe_tells_compressed_content_from_text() -> None:
    text = b"invoice,total,customer,region,2026\n" * 4_000
    assert not looks_incompressible(text, 3)
    assert looks_incompressible(os.urandom(PROBE_MIN_CONTENT), 3)
    # Below the probe's size the full zstd pass decides (and still stores random bytes raw).
    assert not looks_incompressible(os.urandom(PROBE_MIN_CONTENT - 1), 3)
