"""QuickXorHash against the published vectors and the plain definition."""

from __future__ import annotations

import base64
import random
import struct

import pytest

from m365vault.m365.hashes import QuickXorHash, quick_xor_hash


def reference(data: bytes) -> str:
    """The definition, byte by byte (graph-protocol.md §3.7)."""
    acc, width = 0, 160
    mask = (1 << width) - 1
    for i, b in enumerate(data):
        v = b << ((11 * i) % width)
        acc ^= (v | (v >> width)) & mask
    out = bytearray(acc.to_bytes(20, "little"))
    for k, lb in enumerate(struct.pack("<q", len(data))):
        out[12 + k] ^= lb
    return base64.b64encode(bytes(out)).decode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
        (b"a" * 1000, "cIADHOAABzjAAQ5waAAcgQhEIAI="),
    ],
)
def test_published_vectors(data: bytes, expected: str) -> None:
    assert quick_xor_hash(data) == expected


def test_streaming_in_odd_pieces_matches_the_definition() -> None:
    rng = random.Random(4)
    for size in (1, 159, 160, 161, 320, 1000, 12345):
        data = rng.randbytes(size)
        hasher = QuickXorHash()
        pos = 0
        while pos < size:
            step = rng.randint(1, 400)
            hasher.update(data[pos : pos + step])
            pos += step
        assert hasher.b64digest() == reference(data) == quick_xor_hash(data), size
