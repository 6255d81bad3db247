"""Case-insensitive routing for the v3 surface.

v3 clients write `/v3/Jobs`, `/v3/jobs` and `/v3/usedRepositories` alike. Rather than registering
every spelling, this ASGI middleware rewrites the literal segments of the request path onto the
canonical spelling of the route they match (path parameter values keep their case), drops a
trailing slash, and lower-cases query parameter names (routes declare theirs in lower case).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

Template = tuple[str | None, ...]  # None marks a path parameter


def _template(path: str) -> Template:
    return tuple(None if seg.startswith("{") else seg for seg in path.strip("/").split("/"))


class CaseInsensitivePaths:
    def __init__(self, app: ASGIApp, route_paths: Callable[[], Iterable[str]], prefix: str = "/v3") -> None:
        self.app = app
        self._route_paths = route_paths
        self._prefix = prefix.casefold()
        self._by_length: dict[int, list[Template]] | None = None

    def _templates(self) -> dict[int, list[Template]]:
        if self._by_length is None:
            by_length: dict[int, list[Template]] = {}
            for path in self._route_paths():
                if path.casefold().startswith(self._prefix):
                    t = _template(path)
                    by_length.setdefault(len(t), []).append(t)
            # Prefer routes with more literal segments: /Jobs/{id}/Action over /Jobs/{id}/{x}.
            for templates in by_length.values():
                templates.sort(key=lambda t: sum(s is None for s in t))
            self._by_length = by_length
        return self._by_length

    def canonical(self, path: str) -> str:
        segments = path.strip("/").split("/")
        for template in self._templates().get(len(segments), []):
            if all(
                t is None or t.casefold() == s.casefold() for t, s in zip(template, segments, strict=True)
            ):
                return "/" + "/".join(s if t is None else t for t, s in zip(template, segments, strict=True))
        return path.rstrip("/") or "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].casefold().startswith(self._prefix):
            path = self.canonical(scope["path"])
            query = scope.get("query_string", b"")
            if query:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                query = urlencode([(k.lower(), v) for k, v in pairs]).encode("latin-1")
            scope = {**scope, "path": path, "raw_path": path.encode(), "query_string": query}
        await self.app(scope, receive, send)
