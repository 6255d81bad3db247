"""QuickXorHash (graph-protocol.md §3.7), fast enough for multi-gigabyte tenants.

Byte i lands at bit offset (11 * i) mod 160, so bytes 160 apart land on the same offset: the data
folds (XOR) into one 160-byte lane block first, using big-int XORs that run in C (about 1 GB/s),
and only that block goes through the per-byte shifting.
"""

from __future__ import annotations

import base64
import struct

_WIDTH = 160
_MASK = (1 << _WIDTH) - 1
_PIECE = _WIDTH * 64  # 10 KiB: converted to an int and XOR-ed in one C call each


def _fold(block: memoryview) -> int:
    """XOR all 160-byte lanes of `block` (length a multiple of 160) into one 160-byte int.

    Pieces start at multiples of 160 bytes, so lane k of every piece is the same lane of the data:
    XOR the pieces as big ints, then fold the 64 lanes of the result in halves.
    """
    acc = 0
    for start in range(0, len(block), _PIECE):
        acc ^= int.from_bytes(block[start : start + _PIECE], "little")
    lanes_bits = _PIECE * 8
    while lanes_bits > _WIDTH * 8:
        lanes_bits //= 2
        acc = (acc >> lanes_bits) ^ (acc & ((1 << lanes_bits) - 1))
    return acc


class QuickXorHash:
    """Streaming hasher: update() in any chunking, digest_b64() at the end."""

    def __init__(self) -> None:
        self._lanes = bytearray(_WIDTH)  # lane k holds XOR of bytes with index ≡ k (mod 160)
        self._lane_int = 0
        self._length = 0
        self._pending = b""

    def update(self, data: bytes) -> None:
        buf = self._pending + data if self._pending else bytes(data)
        # Keep lane alignment: the pending part always starts at an index ≡ 0 (mod 160).
        usable = (len(buf) // _WIDTH) * _WIDTH
        if usable:
            self._lane_int ^= _fold(memoryview(buf)[:usable])
        self._pending = buf[usable:]
        self._length += len(data)

    def digest(self) -> bytes:
        lane_int = self._lane_int
        if self._pending:
            lane_int ^= int.from_bytes(self._pending + bytes(_WIDTH - len(self._pending)), "little")
        lanes = lane_int.to_bytes(_WIDTH, "little")
        acc = 0
        for k, byte in enumerate(lanes):
            if byte:
                v = byte << ((11 * k) % _WIDTH)
                acc ^= (v | (v >> _WIDTH)) & _MASK
        out = bytearray(acc.to_bytes(20, "little"))
        for k, lb in enumerate(struct.pack("<q", self._length)):
            out[12 + k] ^= lb
        return bytes(out)

    def digest_b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def quick_xor_hash(data: bytes) -> str:
    h = QuickXorHash()
    h.update(data)
    return h.digest_b64()
