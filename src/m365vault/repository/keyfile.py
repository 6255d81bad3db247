"""Key files: the master key wrapped by a key derived from a password (format §3.3).

Argon2id costs ~0.1-0.3 s by design; callers run it off the event loop.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from m365vault.repository.crypto import KEY_SIZE, open_sealed, seal
from m365vault.repository.errors import IntegrityError, WrongPassword

_AAD = b"key"


@dataclass(frozen=True)
class KdfParams:
    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    # Cheap parameters for tests only: a repository made with them is as weak as its password.
    @classmethod
    def for_tests(cls) -> KdfParams:
        return cls(time_cost=1, memory_kib=8 * 1024, parallelism=1)


def _derive(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_SIZE,
        type=Type.ID,
    )


def wrap_master_key(master: bytes, password: bytes, params: KdfParams, created: datetime) -> bytes:
    salt = os.urandom(16)
    wrapped = seal(_derive(password, salt, params), master, _AAD)
    doc = {
        "version": 1,
        "kdf": "argon2id",
        "time_cost": params.time_cost,
        "memory_kib": params.memory_kib,
        "parallelism": params.parallelism,
        "salt": base64.b64encode(salt).decode(),
        "created": created.isoformat(),
        "wrapped": base64.b64encode(wrapped).decode(),
    }
    return json.dumps(doc, indent=1).encode()


def unwrap_master_key(data: bytes, password: bytes) -> bytes:
    try:
        doc: dict[str, Any] = json.loads(data)
        if doc.get("version") != 1 or doc.get("kdf") != "argon2id":
            raise IntegrityError(
                f"damaged or unsupported key file (version {doc.get('version')}, kdf {doc.get('kdf')})"
            )
        params = KdfParams(int(doc["time_cost"]), int(doc["memory_kib"]), int(doc["parallelism"]))
        salt = base64.b64decode(doc["salt"])
        wrapped = base64.b64decode(doc["wrapped"])
    except (ValueError, KeyError, TypeError) as err:
        raise IntegrityError(f"key file is damaged: {err}") from None
    try:
        master = open_sealed(_derive(password, salt, params), wrapped, _AAD, "key file")
    except IntegrityError:
        raise WrongPassword("wrong password") from None
    if len(master) != KEY_SIZE:
        raise IntegrityError("key file holds a key of the wrong size")
    return master
