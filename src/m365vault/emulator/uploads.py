"""Upload sessions shared by drive files and Outlook attachments (graph-protocol.md §5.2, §5.4).

The uploadUrl is pre-authenticated (no Authorization header); fragments must arrive in order,
each under 60 MiB, with the same total in every Content-Range; resent bytes answer 416.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable
from typing import Any

from m365vault.emulator.clock import iso
from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp
from m365vault.emulator.world import World

MAX_FRAGMENT = 60 * 1024 * 1024
FRAGMENT_MULTIPLE = 320 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

Committer = Callable[[Req, dict[str, Any], bytes], Resp]


class Uploads:
    def __init__(self, world: World) -> None:
        self.world = world
        self.dir = world.settings.state_dir / "uploads"
        self.dir.mkdir(exist_ok=True)
        self.committers: dict[str, Committer] = {}

    def create(
        self, req: Req, kind: str, size: int | None, target: dict[str, Any], defer: bool = False
    ) -> dict[str, Any]:
        session_id = secrets.token_urlsafe(24)
        expires = self.world.now() + 3 * 86400 if kind == "drive" else self.world.now() + 86400
        state = {
            "kind": kind,
            "size": size,
            "received": 0,
            "expires": expires,
            "target": target,
            "defer": defer,
            "complete": False,
        }
        self.world.store.session_put(session_id, state)
        (self.dir / session_id).write_bytes(b"")
        return {
            "uploadUrl": f"{req.base_url}/_upload/{session_id}",
            "expirationDateTime": iso(expires),
            "nextExpectedRanges": ["0-"],
        }

    def _session(self, session_id: str) -> dict[str, Any]:
        state = self.world.store.session_get(session_id)
        if state is None or state["expires"] <= self.world.now():
            raise GraphError(
                404, "itemNotFound", "The upload session was not found.", inner_code="uploadSessionNotFound"
            )
        return state

    def status(self, session_id: str) -> Resp:
        s = self._session(session_id)
        ranges = [] if s["complete"] else [f"{s['received']}-"]
        return Resp(200, {"expirationDateTime": iso(s["expires"]), "nextExpectedRanges": ranges})

    def cancel(self, session_id: str) -> Resp:
        self._session(session_id)
        self.world.store.session_put(session_id, None)
        (self.dir / session_id).unlink(missing_ok=True)
        return Resp(204)

    def put(self, req: Req, session_id: str) -> Resp:
        if "authorization" in req.headers and req.headers["authorization"].lower().startswith("bearer"):
            raise GraphError(
                401,
                "unauthenticated",
                "The upload URL is pre-authenticated; do not send an Authorization header.",
            )
        s = self._session(session_id)
        match = _RANGE.match(req.headers.get("content-range", ""))
        if not match:
            raise GraphError(
                400,
                "invalidRequest",
                "Content-Range header is missing or malformed.",
                inner_code="invalidContentRangeHeader",
            )
        start, end, total_text = int(match.group(1)), int(match.group(2)), match.group(3)
        total = int(total_text) if total_text != "*" else None
        if end < start or len(req.body) != end - start + 1:
            raise GraphError(
                400,
                "invalidRequest",
                "The Content-Range does not match the bytes sent.",
                inner_code="fragmentLengthMismatch",
            )
        if len(req.body) > MAX_FRAGMENT:
            raise GraphError(
                400,
                "invalidRequest",
                "Fragment is larger than 60 MiB.",
                inner_code="maxFragmentLengthExceeded",
            )
        if s["size"] is None:
            s["size"] = total
        if total is not None and total != s["size"]:
            raise GraphError(
                400,
                "invalidRequest",
                "The declared total size changed between fragments.",
                inner_code="fragmentLengthMismatch",
            )
        if start < s["received"]:
            raise GraphError(
                416,
                "invalidRange",
                "The uploaded fragment overlaps with data that has already been received.",
                inner_code="fragmentOverlap",
            )
        if start > s["received"]:
            raise GraphError(
                400,
                "invalidRange",
                f"Fragments must be uploaded in order; expected offset {s['received']}.",
                inner_code="fragmentOutOfOrder",
            )
        if s["size"] is not None and end >= s["size"]:
            raise GraphError(
                400, "invalidRange", "The fragment ends beyond the declared size.", inner_code="invalidRange"
            )
        last = s["size"] is not None and end + 1 == s["size"]
        if s["kind"] == "drive" and not last and len(req.body) % FRAGMENT_MULTIPLE:
            if self.world.config.enforce_fragment_multiple:
                raise GraphError(
                    400,
                    "invalidRequest",
                    "Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).",
                    inner_code="invalidRange",
                )
            print(
                f"warning: upload fragment of {len(req.body)} bytes is not a multiple of 320 KiB",
                file=sys.stderr,
            )
        with open(self.dir / session_id, "ab") as f:
            f.write(req.body)
        s["received"] = end + 1
        done = s["size"] is not None and s["received"] == s["size"]
        if not done:
            self.world.store.session_put(session_id, s)
            code = 202 if s["kind"] == "drive" else 200
            return Resp(
                code, {"expirationDateTime": iso(s["expires"]), "nextExpectedRanges": [f"{s['received']}-"]}
            )
        s["complete"] = True
        self.world.store.session_put(session_id, s)
        if s["defer"]:
            return Resp(202, {"expirationDateTime": iso(s["expires"]), "nextExpectedRanges": []})
        return self._commit(req, session_id, s)

    def commit(self, req: Req, session_id: str) -> Resp:
        """deferCommit: POST {uploadUrl} with an empty body finishes the upload."""
        s = self._session(session_id)
        if not s["complete"]:
            raise GraphError(
                400, "invalidRequest", "The upload is not complete.", inner_code="uploadSessionIncomplete"
            )
        return self._commit(req, session_id, s)

    def _commit(self, req: Req, session_id: str, s: dict[str, Any]) -> Resp:
        data = (self.dir / session_id).read_bytes()
        resp = self.committers[s["kind"]](req, s["target"], data)  # may raise 409: the session survives
        self.world.store.session_put(session_id, None)
        (self.dir / session_id).unlink(missing_ok=True)
        return resp
