"""Graph-looking opaque ids that still decode to where the emulator generates the item from.

An id is a prefix (Outlook ids start "AAMk"/"AQMk", drive item ids "01", drive ids "b!") followed by
base64url or base32 of a kind byte, the integers that place the item, and a short seed-bound hash,
so ids differ between tenants and a mistyped id never decodes to a different item.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid


def _check(seed: int, raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=4, key=str(seed).encode()).digest()


def make(seed: int, prefix: str, kind: int, *numbers: int, b32: bool = False) -> str:
    raw = bytes([kind, len(numbers)]) + struct.pack(f">{len(numbers)}Q", *numbers)
    raw += _check(seed, raw)
    if b32:
        return prefix + base64.b32encode(raw).decode().rstrip("=")
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse(seed: int, prefix: str, text: str, *, b32: bool = False) -> tuple[int, tuple[int, ...]] | None:
    """(kind, numbers) of an id minted by make(), or None if it is not one."""
    if not text.startswith(prefix):
        return None
    body = text[len(prefix) :]
    try:
        if b32:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        else:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) < 6:
        return None
    count = raw[1]
    if len(raw) != 2 + 8 * count + 4 or _check(seed, raw[:-4]) != raw[-4:]:
        return None
    return raw[0], struct.unpack(f">{count}Q", raw[2:-4])


def guid(seed: int, *parts: object) -> str:
    """A stable GUID for a named object of this tenant."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
