"""Opaque signed tokens: delta/skip tokens, download and upload URLs, access tokens.

A token is base64url(JSON) + "." + base64url(HMAC-SHA256) under the tenant's signing key, so a
client cannot forge or edit one (edited tokens answer 400) and the emulator keeps no table of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidToken(Exception):
    """The token was not minted by this tenant or was altered."""


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def mint(self, kind: str, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps({"k": kind, **payload}, separators=(",", ":")).encode())
        mac = hmac.new(self._key, f"{kind}.{body}".encode(), hashlib.sha256).digest()[:18]
        return f"{body}.{_b64(mac)}"

    def read(self, kind: str, token: str) -> dict[str, Any]:
        try:
            body, mac = token.split(".", 1)
            want = hmac.new(self._key, f"{kind}.{body}".encode(), hashlib.sha256).digest()[:18]
            if not hmac.compare_digest(want, _unb64(mac)):
                raise InvalidToken(kind)
            payload = json.loads(_unb64(body))
        except (ValueError, json.JSONDecodeError) as exc:
            raise InvalidToken(kind) from exc
        if not isinstance(payload, dict) or payload.get("k") != kind:
            raise InvalidToken(kind)
        return payload
