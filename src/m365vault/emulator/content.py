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


def _block(cipher_key: bytes, index: int, ratio: float) -> bytes:
    nonce = index.to_bytes(16, "big")
    enc = Cipher(algorithms.AES(cipher_key), modes.CTR(nonce)).encryptor()
    raw = enc.update(bytes(BLOCK))
    # Block kind: a stable function of the block's first keystream byte and the file's ratio.
    if raw[0] / 256.0 < ratio:
        return raw.translate(_TEXT_TABLE)
    return raw


def stream(seed: int, key: str, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of the file (end exclusive, default: size), in pieces of at most 64 KiB."""
    stop = size if end is None else min(end, size)
    if start >= stop:
        return
    cipher_key = _key(seed, key)
    ratio = text_ratio(seed, key)
    pos = start
    while pos < stop:
        index = pos // BLOCK
        block = _block(cipher_key, index, ratio)
        lo = pos - index * BLOCK
        hi = min(BLOCK, stop - index * BLOCK)
        yield block[lo:hi]
        pos = index * BLOCK + hi


def read_all(seed: int, key: str, size: int) -> bytes:
    return b"".join(stream(seed, key, size))
