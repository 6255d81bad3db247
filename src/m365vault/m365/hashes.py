"""QuickXorHash, the content hash OneDrive for Business and SharePoint report (`file.hashes`).

Definition (graph-protocol.md §3.7): byte i of the input is XORed into a 160-bit accumulator at bit
offset (11 * i) mod 160, wrapping around; the accumulator is serialised as 20 little-endian bytes,
the 64-bit little-endian input length is XORed into the last 8 bytes, and the result is base64.

A byte-at-a-time loop is far too slow in Python, so updates fold the input first: every byte whose
index has the same residue mod 160 lands at the same bit offset, so XORing 160-byte blocks together
(as big integers, halving the width each step) reduces any amount of input to 160 bytes in linear
time; `digest()` then places those 160 bytes at their offsets. The result is identical to the
definition (checked against the published test vectors).
"""

from __future__ import annotations

import base64

WIDTH_BITS = 160
BLOCK = 160  # bytes: indices i and i + 160 share a bit offset, since 11 * 160 = 0 (mod 160)
_BLOCK_BITS = BLOCK * 8
_MASK160 = (1 << WIDTH_BITS) - 1
_SLICE = BLOCK * 1024  # a power-of-two number of blocks: no padding work in _fold


def _fold(data: bytes) -> int:
    """XOR of the 160-byte blocks of `data` (len a multiple of 160), as a little-endian integer."""
    blocks = len(data) // BLOCK
    # Round the block count up to a power of two: the missing high blocks are zeros (harmless to
    # XOR), and every halving step is then a single shift, mask and XOR.
    width = 1 << max(0, (blocks - 1).bit_length())
    value = int.from_bytes(data, "little")
    while width > 1:
        width //= 2
        shift = _BLOCK_BITS * width
        value = (value >> shift) ^ (value & ((1 << shift) - 1))
    return value


class QuickXorHash:
    """Streaming QuickXorHash: `update(bytes)` any number of times, then `digest()` / `b64digest()`."""

    def __init__(self) -> None:
        self._folded = 0  # XOR of all complete 160-byte blocks, little-endian
        self._pending = b""  # bytes of an incomplete block (keeps block alignment with the input)
        self._length = 0

    def update(self, data: bytes) -> None:
        self._length += len(data)
        data = self._pending + bytes(data)
        usable = len(data) - len(data) % BLOCK
        view = memoryview(data)
        for start in range(0, usable, _SLICE):
            self._folded ^= _fold(bytes(view[start : min(start + _SLICE, usable)]))
        self._pending = data[usable:]

    def digest(self) -> bytes:
        residues = (self._folded ^ int.from_bytes(self._pending, "little")).to_bytes(BLOCK, "little")
        acc = 0
        for k, byte in enumerate(residues):
            if byte:
                shift = (11 * k) % WIDTH_BITS
                value = byte << shift
                acc ^= (value | (value >> WIDTH_BITS)) & _MASK160
        out = bytearray(acc.to_bytes(20, "little"))
        for k, length_byte in enumerate(self._length.to_bytes(8, "little")):
            out[12 + k] ^= length_byte
        return bytes(out)

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode()


def quick_xor_hash(data: bytes) -> str:
    """Base64 QuickXorHash of `data`."""
    hasher = QuickXorHash()
    hasher.update(data)
    return hasher.b64digest()
