"""Encryption of secrets at rest: organization app secrets, certificate passwords, proxy and SMTP
passwords, repository passwords.

AES-256-GCM under one server key kept in `<data-dir>/server.key` (created 0600 on first start).
Each sealed value is `version byte || 12-byte nonce || ciphertext+tag`; the purpose string is bound
as associated data, so a value sealed for one column cannot be replayed into another.
Secrets leave this module only as plaintext handed to the code that needs them, never to logs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE_NAME = "server.key"
_VERSION = b"\x01"
_NONCE_BYTES = 12
_KEY_BYTES = 32


class SecretBoxError(Exception):
    """A sealed value could not be opened (wrong key, damaged, or sealed for another purpose)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError("the server key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, purpose: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), purpose.encode())

    def open(self, sealed: bytes, purpose: str) -> str:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SecretBoxError("not a sealed secret of a known version")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, purpose.encode()).decode()
        except Exception as exc:  # InvalidTag, UnicodeDecodeError
            raise SecretBoxError("secret cannot be opened with this server key") from exc

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(<key hidden>)"


def load_or_create_key(data_dir: Path) -> bytes:
    """Read the server key, creating it with mode 0600 if it does not exist yet."""
    path = data_dir / KEY_FILE_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(_KEY_BYTES)
        data_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(data_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
    if len(key) != _KEY_BYTES:
        raise SecretBoxError(f"{path} is not a 32-byte server key")
    return key


def open_secretbox(data_dir: Path) -> SecretBox:
    return SecretBox(load_or_create_key(data_dir))
