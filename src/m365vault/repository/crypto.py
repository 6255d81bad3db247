"""Keys and the authenticated envelope (docs/repository-format.md §3).

The master key never leaves memory unwrapped; every other key derives from it with BLAKE3's
key-derivation mode, so each purpose has an independent key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from m365vault.repository.errors import IntegrityError

NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
KEY_SIZE = 32

_DATA_CONTEXT = "m365vault repository v1 data encryption"
_ID_CONTEXT = "m365vault repository v1 blob id"
_CHUNKER_CONTEXT = "m365vault repository v1 chunker seed"


def derive(master: bytes, context: str) -> bytes:
    return blake3.blake3(master, derive_key_context=context).digest()


def seal(key: bytes | AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """nonce ‖ AES-256-GCM(plaintext) ‖ tag. `key` may be an AESGCM built once (`Keys.aead`):
    building one costs as much as sealing a mail-sized blob."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + _aead(key).encrypt(nonce, plaintext, aad)


def _aead(key: bytes | AESGCM) -> AESGCM:
    return key if isinstance(key, AESGCM) else AESGCM(key)


def seal_parts(key: bytes, parts: tuple[bytes | memoryview, ...], aad: bytes) -> list[bytes]:
    """`seal` of the parts' concatenation, as pieces that make up the envelope in order: neither
    the plaintext nor the envelope is ever joined (blobs can be megabytes; a fresh zeroed buffer for
    the envelope cost more than AES-GCM itself, bench_repository (b) large items). The pieces
    joined are the envelope `seal` gives, so `open_sealed` opens them."""
    nonce = os.urandom(NONCE_SIZE)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    pieces = [nonce]
    pieces.extend(encryptor.update(part) for part in parts if len(part))
    encryptor.finalize()
    pieces.append(encryptor.tag)
    return pieces


def open_sealed(key: bytes | AESGCM, envelope: bytes, aad: bytes, what: str = "data") -> bytes:
    if len(envelope) < OVERHEAD:
        raise IntegrityError(f"{what}: envelope too short ({len(envelope)} bytes)")
    try:
        return _aead(key).decrypt(envelope[:NONCE_SIZE], envelope[NONCE_SIZE:], aad)
    except InvalidTag:
        raise IntegrityError(f"{what}: authentication failed") from None


@dataclass(frozen=True)
class Keys:
    """The keys one repository uses, derived from its master key."""

    master: bytes
    data: bytes
    ids: bytes
    chunker_seed: int
    # `data` made ready for AES-GCM once; instances keep no state between calls, so threads share it.
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "aead", AESGCM(self.data))

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        if len(master) != KEY_SIZE:
            raise ValueError("the master key is 32 bytes")
        seed_bytes = derive(master, _CHUNKER_CONTEXT)[:8]
        seed = (int.from_bytes(seed_bytes, "little") & ((1 << 62) - 1)) + 1
        return cls(master, derive(master, _DATA_CONTEXT), derive(master, _ID_CONTEXT), seed)

    @classmethod
    def generate(cls) -> Keys:
        return cls.from_master(os.urandom(KEY_SIZE))

    def blob_id(self, content: bytes | memoryview) -> bytes:
        """Keyed BLAKE3: reveals nothing about content to someone without the key."""
        return blake3.blake3(content, key=self.ids).digest()

    def __repr__(self) -> str:  # never print key material
        return "Keys(<redacted>)"
