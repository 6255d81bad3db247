"""The emulator's own small request/response model and router.

Graph paths are case-insensitive and come in several spellings (`mailfolders('id')`,
`/microsoft.graph.delta`, `delta(token='...')`, `root:/a/b.txt:`); they are normalised once here, so
handlers see one form. `$batch` sub-requests go through the same router.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from m365vault.emulator.errors import GraphError

Body = bytes | Iterator[bytes] | dict[str, Any] | list[Any] | None


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str
    request_id: str
    app_id: str | None = None
    item_path: str | None = None  # drive path addressing: the part between the colons
    params: dict[str, str] = field(default_factory=dict)
    version: str = "v1.0"  # "beta" for requests under /beta (the archive routes answer only there)
    route: str | None = None  # the route pattern it resolved to ("GET users/{user}"), for the stats

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        return data

    def prefer(self, name: str) -> str | None:
        """Value of a Prefer preference (`odata.maxpagesize=5`, `IdType="ImmutableId"`, flags)."""
        for part in self.headers.get("prefer", "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name.lower():
                return value.strip().strip('"') if value else ""
        return None

    @property
    def graph_base(self) -> str:
        return f"{self.base_url}/{self.version}"

    def select(self) -> list[str] | None:
        text = self.query.get("$select")
        return [s.strip() for s in text.split(",") if s.strip()] if text else None


@dataclass
class Resp:
    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


Handler = Callable[[Req], Resp]

_FUNC_TOKEN = re.compile(r"/delta\(token='([^']*)'\)", re.IGNORECASE)
_KEY_SEGMENT = re.compile(r"([A-Za-z]+)\('([^']*)'\)")
_COLON_PATH = re.compile(r"^(.*?/(?:root|items/[^/:]+)):(/[^:]*?)(?::(/.*)?)?$")


def normalise(path: str, query: dict[str, str]) -> tuple[str, str | None]:
    """(canonical path without /v1.0 or /beta, drive item path or None); may add `token` to query."""
    path = unquote(path)
    if path.lower().startswith(("/v1.0", "/beta/")):
        path = path[5:]
    match = _FUNC_TOKEN.search(path)
    if match:
        query.setdefault("token", match.group(1))
        path = path[: match.start()] + "/delta" + path[match.end() :]
    path = _KEY_SEGMENT.sub(lambda m: f"{m.group(1)}/{m.group(2)}", path)
    path = re.sub(r"/microsoft\.graph\.", "/", path, flags=re.IGNORECASE)
    item_path = None
    colon = _COLON_PATH.match(path)
    if colon:
        item_path = colon.group(2).strip("/")
        path = colon.group(1) + (colon.group(3) or "")
    return "/" + path.strip("/"), item_path


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, list[str], Handler]] = []
        self._ordered: list[tuple[str, list[str], Handler]] | None = None

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, pattern.strip("/").split("/"), handler))
        self._ordered = None

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn

        return deco

    def resolve(self, req: Req) -> Handler:
        segments = req.path.strip("/").split("/")
        allowed = False
        # Literal segments win over parameters ("mailFolders/delta" before "mailFolders/{folder}").
        if self._ordered is None:
            self._ordered = sorted(self._routes, key=lambda r: [s.startswith("{") for s in r[1]])
        for method, pattern, handler in self._ordered:
            if len(pattern) != len(segments):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, segments, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want.lower() != got.lower():
                    break
            else:
                if method != req.method:
                    allowed = True
                    continue
                req.params = params
                req.route = f"{method} {'/'.join(pattern)}"
                return handler
        if allowed:
            raise GraphError(
                405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            )
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[-1]}'.")
