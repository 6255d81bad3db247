"""QuickXorHash (graph-protocol.md §3.7), fast enough for multi-gigabyte tenants.

Byte i lands at bit offset (11 * i) mod 160, so bytes 160 apart land on the same offset: the data
folds (XOR) into one 160-byte lane block first, using big-int XORs that run in C, and only that
block goes through the per-byte shifting.
"""

from __future__ import annotations

import base64
import struct

_WIDTH = 160
_MASK = (1 << _WIDTH) - 1
_FOLD_UNIT = _WIDTH * 4096  # 640 KiB: the unit that folds with big-int XORs


def _fold(block: bytes) -> int:
    """XOR every 160-byte lane of `block` (whose length is a multiple of 160) into one int."""
    data = block
    while len(data) > _WIDTH:
        lanes = len(data) // _WIDTH
        half = (lanes // 2) * _WIDTH
        a = int.from_bytes(data[:half], "little")
        b = int.from_bytes(data[half : 2 * half], "little")
        rest = data[2 * half :]
        folded = (a ^ b).to_bytes(half, "little")
        if rest:
            head = int.from_bytes(folded[:_WIDTH], "little") ^ int.from_bytes(rest, "little")
            folded = head.to_bytes(_WIDTH, "little") + folded[_WIDTH:]
        data = folded
    return int.from_bytes(data, "little")


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
            for start in range(0, usable, _FOLD_UNIT):
                self._lane_int ^= _fold(buf[start : min(start + _FOLD_UNIT, usable)])
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
