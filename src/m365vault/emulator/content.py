"""Deterministic file bytes, produced as a stream from (seed, key, size) and never held whole.

Bytes come from an AES-CTR keystream (fast, random-access by block): "random-like" blocks are the
keystream itself (as compressed media or archives are); "text-like" blocks map the keystream onto a
skewed alphabet of letters, spaces and line breaks (as documents are: compressible, never
identical). Each file mixes both kinds by a ratio chosen from its key, so backups see realistic
compression ratios and no accidental deduplication between files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 64 * 1024

# A skewed alphabet: frequent letters appear more often, as in prose.
_ALPHABET = (
    b"eeeeeeeeeeeetttttttttaaaaaaaaoooooooiiiiiiinnnnnnnsssssshhhhhhrrrrrrdddddllllcccuuummmwwf"
    b"fggyyppbbvkjxqz        ,.\n"
)
_TEXT_TABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))


def _key(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def text_ratio(seed: int, key: str) -> float:
    """Share of text-like blocks in this file (documents mostly text, media mostly random)."""
    kind = _key(seed, key)[0] % 4
    return (0.9, 0.6, 0.2, 0.0)[kind]


_COUNTERS_PER_BLOCK = BLOCK // 16  # AES blocks per 64 KiB: each file block owns its own counter range
_RUN = 16  # blocks generated per cipher call (1 MiB)


def _blocks(cipher_key: bytes, first: int, count: int, ratio: float) -> bytes:
    """File blocks [first, first + count) as one bytes object."""
    nonce = (first * _COUNTERS_PER_BLOCK).to_bytes(16, "big")
    raw = Cipher(algorithms.AES(cipher_key), modes.CTR(nonce)).encryptor().update(bytes(BLOCK * count))
    parts = []
    for k in range(count):
        block = raw[k * BLOCK : (k + 1) * BLOCK]
        # Block kind: a stable function of the block's first keystream byte and the file's ratio.
        parts.append(block.translate(_TEXT_TABLE) if block[0] / 256.0 < ratio else block)
    return b"".join(parts)


def stream(seed: int, key: str, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of the file (end exclusive, default: size), in pieces of at most 1 MiB."""
    stop = size if end is None else min(end, size)
    if start >= stop:
        return
    cipher_key = _key(seed, key)
    ratio = text_ratio(seed, key)
    pos = start
    while pos < stop:
        first = pos // BLOCK
        last = min((stop - 1) // BLOCK, first + _RUN - 1)
        run = _blocks(cipher_key, first, last - first + 1, ratio)
        lo = pos - first * BLOCK
        hi = min(len(run), stop - first * BLOCK)
        yield run[lo:hi]
        pos = first * BLOCK + hi


def read_all(seed: int, key: str, size: int) -> bytes:
    return b"".join(stream(seed, key, size))
