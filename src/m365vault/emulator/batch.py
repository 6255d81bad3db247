"""JSON batching (graph-protocol.md §6.5): up to 20 sub-requests, dependsOn, 424 for failed
dependencies, per-item status, answers not in request order. Sub-requests run through the same
router, auth, limiters and injected faults (500 / 503 per sub-request)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp

MAX_REQUESTS = 20


def _validate(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    requests: list[dict[str, Any]] = data["requests"]
    if not requests:
        raise GraphError(400, "BadRequest", "The batch must contain at least one request.")
    if len(requests) > MAX_REQUESTS:
        raise GraphError(400, "BadRequest", f"Number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for r in requests:
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("id"), str)
            or not isinstance(r.get("method"), str)
            or not isinstance(r.get("url"), str)
        ):
            raise GraphError(400, "BadRequest", "Each batch request needs id, method and url.")
        if r["id"].lower() in seen:
            raise GraphError(400, "BadRequest", f"Batch request id '{r['id']}' is not unique.")
        seen.add(r["id"].lower())
        if r["url"].lstrip("/").lower().removeprefix("v1.0/").startswith("$batch"):
            raise GraphError(400, "BadRequest", "Batch requests cannot be nested.")
        if "body" in r and not any(k.lower() == "content-type" for k in (r.get("headers") or {})):
            raise GraphError(
                400, "BadRequest", f"Batch request '{r['id']}' has a body but no Content-Type header."
            )
        for dep in r.get("dependsOn") or []:
            if str(dep).lower() not in seen:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Batch request '{r['id']}' depends on unknown or later request '{dep}'.",
                )
    return requests


def run_batch(outer: Req, dispatch: Callable[[Req], Resp]) -> Resp:
    requests = _validate(outer.json())
    status: dict[str, int] = {}
    responses = []
    for r in requests:
        deps = [str(d).lower() for d in r.get("dependsOn") or []]
        if any(status.get(d, 424) >= 400 for d in deps):
            status[r["id"].lower()] = 424
            responses.append(
                {
                    "id": r["id"],
                    "status": 424,
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "error": {
                            "code": "FailedDependency",
                            "message": "A request this request depends on failed.",
                        }
                    },
                }
            )
            continue
        headers = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
        body = r.get("body")
        raw = b""
        if body is not None:
            if headers.get("content-type", "").startswith("application/json"):
                raw = json.dumps(body).encode()
            elif isinstance(body, str):
                try:
                    raw = (
                        base64.b64decode(body, validate=True)
                        if "text/plain" not in headers.get("content-type", "")
                        else body.encode()
                    )
                except ValueError:
                    raw = body.encode()
        url = urlsplit(r["url"] if r["url"].startswith("/") else "/" + r["url"])
        sub = Req(
            method=r["method"].upper(),
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={**{k: v for k, v in outer.headers.items() if k in ("authorization",)}, **headers},
            body=raw,
            base_url=outer.base_url,
            request_id=outer.request_id,
            app_id=outer.app_id,
            version=outer.version,  # sub-requests of /beta/$batch are beta requests
        )
        resp = dispatch(sub)
        status[r["id"].lower()] = resp.status
        out_body: Any = resp.body
        if isinstance(out_body, bytes):
            out_body = base64.b64encode(out_body).decode() if out_body else None
        elif out_body is not None and not isinstance(out_body, dict | list):
            out_body = base64.b64encode(b"".join(out_body)).decode()
        item: dict[str, Any] = {
            "id": r["id"],
            "status": resp.status,
            "headers": {**resp.headers, "Content-Type": resp.content_type or "application/json"},
        }
        if out_body is not None:
            item["body"] = out_body
        responses.append(item)
    # Graph answers in any order; never the request order here, so clients must match by id.
    responses.reverse()
    return Resp(200, {"responses": responses})
