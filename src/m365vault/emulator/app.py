"""The ASGI application: Graph under /v1.0, the login endpoints, the pre-authenticated download and
upload hosts, and the admin API under /_emulator/.

Every Graph response carries request-id and client-request-id (echoed) headers; errors use the body
of §7. Latency, faults and throttling wrap Graph calls here, in one place.
"""

from __future__ import annotations

import asyncio
import json
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from m365vault.emulator import (
    activity,
    archive,
    auth,
    batch,
    conversations,
    directory,
    files,
    mail,
    pim,
    sites,
)
from m365vault.emulator.clock import iso
from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp, Router, normalise
from m365vault.emulator.limits import Limiter, Ticket
from m365vault.emulator.uploads import Uploads
from m365vault.emulator.world import World

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DroppedConnection(Exception):
    """Raised after the response started, so the server cuts the connection (fault injection)."""


class Emulator:
    def __init__(self, world: World) -> None:
        self.world = world
        self.router = Router()
        self.uploads = Uploads(world)
        self.mail = mail.Mail(world, self.uploads)
        self.files = files.Files(world, self.uploads)
        self.lists = sites.Lists(world)
        self.limiter = Limiter(world)
        # What the emulator answered, by status, batch sub-requests included (GET /_admin/stats):
        # tests of throttling count the storm from Microsoft's side, not from the client's log.
        self.answered: Counter[int] = Counter()
        # ... and by route ("GET users/{user}/mailboxSettings", "POST $batch"): which requests a
        # backup spends, to find the ones worth saving.
        self.routes: Counter[str] = Counter()
        self.round_trips = 0  # HTTP requests, a $batch one however many sub-requests it carried
        directory.register(self.router, world)
        mail.register(self.router, world, self.mail)
        files.register(self.router, world, self.files)
        sites.register(self.router, world, self.files, self.lists)
        pim.register(self.router, world)
        self.conversations = conversations.Conversations(world)
        conversations.register(self.router, world, self.conversations)
        self.archives = archive.Archives(world, self.mail)
        archive.register(self.router, world, self.archives)
        self._register_drive_lists()

    def _register_drive_lists(self) -> None:
        w = self.world

        def drives_of(owner: Callable[[Req], list[Any]]) -> Callable[[Req], Resp]:
            return lambda req: Resp(
                200, {"value": [w.pick(self.files.drive_json(req, d), req.select()) for d in owner(req)]}
            )

        def user_drives(req: Req) -> list[Any]:
            drive = w.tenant.user_drive(w.user(req.params["user"]))
            return [drive] if drive else []

        self.router.add("GET", "users/{user}/drives", drives_of(user_drives))
        self.router.add(
            "GET",
            "groups/{group}/drives",
            drives_of(lambda req: [w.tenant.group_drive(self._group(req.params["group"]))]),
        )

    def _group(self, key: str) -> Any:
        g = self.world.tenant.group_by_id.get(key.lower())
        if g is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist.")
        return g

    # ------------------------------------------------------------------ dispatch (sync; also for $batch)
    def rewrite(self, path: str) -> str:
        """Drive aliases (users/groups/sites/{id}/drive, sites/{id}/lists/{id}/drive) → drives/{id}."""
        w = self.world
        segs = path.strip("/").split("/")
        low = [s.lower() for s in segs]
        drive = None
        rest: list[str] = []
        if len(segs) >= 3 and low[0] == "users" and low[2] == "drive":
            user = w.user(segs[1])
            drive = w.tenant.user_drive(user)
            if drive is None:
                raise GraphError(404, "ResourceNotFound", "User's mysite not found.")
            rest = segs[3:]
        elif len(segs) >= 3 and low[0] == "groups" and low[2] == "drive":
            drive, rest = w.tenant.group_drive(self._group(segs[1])), segs[3:]
        elif len(segs) >= 3 and low[0] == "sites" and low[2] == "drive":
            drive, rest = w.tenant.site_drives(w.site(segs[1]))[0], segs[3:]
        elif len(segs) >= 5 and low[0] == "sites" and low[2] == "lists" and low[4] == "drive":
            lst = self.lists.get(w.site(segs[1]), segs[3])
            if lst.drive_number is None:
                raise GraphError(404, "itemNotFound", "This list is not a document library.")
            drive, rest = w.tenant.drives[lst.drive_number], segs[5:]
        if drive is not None:
            segs = ["drives", drive.id, *rest]
            low = [s.lower() for s in segs]
        if len(segs) >= 3 and low[0] == "drives" and low[2] == "root":
            segs = [*segs[:2], "items", "root", *segs[3:]]
        return "/" + "/".join(segs)

    def dispatch(self, req: Req) -> Resp:
        if req.path.lower().startswith("/beta/"):
            req.version = "beta"
        try:
            path, item_path = normalise(req.path, req.query)
            req.path = self.rewrite(path)
            req.item_path = item_path if item_path is not None else req.item_path
            if req.method == "POST" and req.path.lower() == "/$batch":
                req.route = "POST $batch"
                return batch.run_batch(req, self._sub_request)
            handler = self.router.resolve(req)
            with self.world.store.lock:
                try:
                    return handler(req)
                except (TypeError, AttributeError, KeyError, ValueError) as exc:
                    if not req.body:
                        raise
                    # A payload of the wrong shape (a string where an object belongs, ...). Writes are
                    # applied last and atomically, so nothing was changed.
                    raise GraphError(
                        400, "BadRequest", f"The request payload is not valid ({exc!r})."
                    ) from exc
        except GraphError as exc:
            return self.error(req, exc)

    def _sub_request(self, req: Req) -> Resp:
        if req.path.lower().startswith("/v1.0/"):
            req.path = req.path[5:]
        ticket = Ticket()
        try:
            auth.check_bearer(self.world, req)
            # A sub-request fails on its own like any request (a dropped connection has no
            # sub-request form: the batch answer as a whole is what gets cut).
            fault = self.limiter.fault()
            if fault in ("500", "503"):
                raise _injected(fault)
            path, _ = normalise(req.path, dict(req.query))
            ticket = self.limiter.acquire(
                Req(
                    req.method, self.rewrite(path), req.query, req.headers, b"", req.base_url, req.request_id
                ),
                req.app_id or "",
                len(req.body),
            )
        except GraphError as exc:
            resp = self.error(req, exc)
            self._count(req, resp)
            return resp
        try:
            resp = self.dispatch(req)
        finally:
            self.limiter.release(ticket)
        self._count(req, resp)
        return resp

    def _count(self, req: Req, resp: Resp) -> None:
        self.answered[resp.status] += 1
        # Unrouted: auth, downloads, uploads, or a request refused before routing.
        route = req.route or f"{req.method} {req.path.strip('/').split('/')[0]}"
        self.routes[f"beta {route}" if req.version == "beta" else route] += 1

    def error(self, req: Req, exc: GraphError) -> Resp:
        body = exc.body(self.world.now_iso(), req.request_id, req.headers.get("client-request-id"))
        return Resp(exc.status, body, dict(exc.headers))

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:  # repeated headers (two Prefer lines) combine, as HTTP says
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1"
        proto = headers.get("x-forwarded-proto") or scope.get("scheme", "http")
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1").split("?")[0] if raw_path else scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        req = Req(scope["method"], path, query, headers, bytes(body), f"{proto}://{host}", str(uuid.uuid4()))
        resp = await self.handle(req)
        await self._send(send, req, resp)

    async def handle(self, req: Req) -> Resp:
        w = self.world
        path = req.path
        low = path.lower()
        try:
            if low.startswith("/_emulator/"):
                return self.admin(req)
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                req.params = {"tenant": parts[0]}
                return auth.openid_configuration(w, req)
            if (
                len(parts) == 4
                and [p.lower() for p in parts[1:]] == ["oauth2", "v2.0", "token"]
                and req.method == "POST"
            ):
                req.params = {"tenant": parts[0]}
                return auth.token(w, req)
            graph = low.startswith(("/v1.0/", "/beta/")) or low == "/v1.0"
            download = low.startswith("/_download/")
            upload = low.startswith("/_upload/")
            imported = low.startswith("/_import/")
            if not (graph or download or upload or imported):
                raise GraphError(404, "NotFound", f"No such endpoint: {path}")
            # Faults strike before any work, so a failed upload fragment is not applied. A download is
            # the exception for drops: its real answer is cut, so a resume sees what a network cut
            # leaves (the true status, length and Content-Range), never a made-up body.
            fault = self.limiter.fault()
            if fault == "drop" and not download:
                return Resp(200, _dropped(), {"Content-Length": "1024"})
            if fault in ("500", "503"):
                raise _injected(fault)
            if upload:
                return self._upload(req, path.split("/")[2])
            if imported:  # an archive import URL: pre-authenticated, like an upload URL
                with w.store.lock:
                    return self.archives.import_item(req)
            if download:
                await self._latency()
                with w.store.lock:
                    resp = files.download(w, self.files, req, path.split("/")[2])
                if fault == "drop" and isinstance(resp.body, Iterator):
                    resp.body = _cut(resp.body)
                return resp
            req.app_id = auth.check_bearer(w, req)
            if low.rstrip("/") in ("/v1.0/$batch", "/beta/$batch"):
                return self.dispatch(req)
            return await self._limited(req)
        except GraphError as exc:
            return self.error(req, exc)
        except Exception:  # a bug in the emulator: answer like Graph would, and say what happened in the log
            traceback.print_exc()
            return self.error(req, GraphError(500, "generalException", "An internal server error occurred."))

    async def _limited(self, req: Req) -> Resp:
        probe = Req(req.method, req.path, dict(req.query), req.headers, b"", req.base_url, req.request_id)
        path, _ = normalise(probe.path, probe.query)
        probe.path = self.rewrite(path)
        ticket = self.limiter.acquire(probe, req.app_id or "", len(req.body))
        try:
            await self._latency()  # while holding the mailbox slot, as a slow server would
            resp = self.dispatch(req)
            if isinstance(resp.body, Iterator):  # hold the mailbox slot while the body streams
                resp.body = _release_after(resp.body, self.limiter, ticket)
                ticket = Ticket()
            if ticket.headers:
                resp.headers.update(ticket.headers)
            return resp
        finally:
            self.limiter.release(ticket)

    async def _latency(self) -> None:
        if self.world.config.latency_ms:
            await asyncio.sleep(self.world.config.latency_ms / 1000)

    def _upload(self, req: Req, session_id: str) -> Resp:
        with self.world.store.lock:
            try:
                if req.method == "PUT":
                    return self.uploads.put(req, session_id)
                if req.method == "GET":
                    return self.uploads.status(session_id)
                if req.method == "DELETE":
                    return self.uploads.cancel(session_id)
                if req.method == "POST":
                    return self.uploads.commit(req, session_id)
            except GraphError as exc:
                return self.error(req, exc)
        return self.error(req, GraphError(405, "notAllowed", "Method not allowed on an upload URL."))

    async def _send(self, send: Send, req: Req, resp: Resp) -> None:
        if not req.path.lower().startswith("/_emulator/"):
            self._count(req, resp)
            self.round_trips += 1
        headers = {
            "request-id": req.request_id,
            "client-request-id": req.headers.get("client-request-id", req.request_id),
            "x-ms-ags-diagnostic": '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"1"}}',
            **resp.headers,
        }
        body = resp.body
        if isinstance(body, dict | list):
            payload: bytes | None = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        elif isinstance(body, bytes):
            payload = body
        elif body is None:
            payload = b""
        else:
            payload = None
        if resp.content_type:
            headers["Content-Type"] = resp.content_type
        if payload is not None:
            headers["Content-Length"] = str(len(payload))
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": resp.status, "headers": raw})
        if payload is not None:
            await send({"type": "http.response.body", "body": payload})
            return
        assert isinstance(body, Iterator)
        try:
            for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except DroppedConnection:
            return  # an unfinished response: the server closes the connection (fault injection)
        await send({"type": "http.response.body", "body": b""})

    # ------------------------------------------------------------------ admin
    def admin(self, req: Req) -> Resp:
        w = self.world
        name = req.path.strip("/").split("/", 1)[1].lower()
        try:
            if name == "health" and req.method == "GET":
                return Resp(
                    200,
                    {
                        "status": "ok",
                        "tenant": w.tenant.domain,
                        "tenantId": w.tenant.tenant_id,
                        "scale": w.tenant.scale,
                        "seed": w.seed,
                        "time": iso(w.now()),
                    },
                )
            if name == "stats" and req.method == "GET":
                return Resp(
                    200,
                    {
                        "statuses": {str(code): n for code, n in sorted(self.answered.items())},
                        "routes": dict(sorted(self.routes.items())),
                        "roundTrips": self.round_trips,
                        "groupAttachmentReads": self.conversations.attachment_reads,
                    },
                )
            if name == "config" and req.method == "GET":
                return Resp(200, w.config.to_json())
            if name == "config" and req.method == "POST":
                with w.store.lock:
                    w.config.update(json.loads(req.body or b"{}"))
                    w.save_config()
                return Resp(200, w.config.to_json())
            if name == "activity" and req.method == "POST":
                seed, counts = activity.parse_request(json.loads(req.body or b"{}"))
                runner = activity.Activity(w, self.dispatch, req.base_url, self.archives)
                return Resp(200, runner.run(seed, counts))
            if name == "expire" and req.method == "POST":
                data = json.loads(req.body or b"{}")
                scopes = {
                    "mail": ["m:", "mf:"],
                    "drive": ["d:"],
                    "list": ["l:"],
                    "calendar": ["ev:"],
                    "contacts": ["c:", "cf:"],
                    "archive": ["ai:", "af:"],
                    "all": [""],
                }
                scope = data.get("scope", "all") if isinstance(data, dict) else None
                if scope not in scopes:
                    raise ValueError(f"scope must be one of {sorted(scopes)}")
                for prefix in scopes[scope]:
                    w.store.expire(prefix, w.now())
                return Resp(200, {"expired": scope})
            if name == "certificates" and req.method == "POST":
                data = json.loads(req.body or b"{}")
                if not isinstance(data, dict) or not isinstance(data.get("pem"), str):
                    raise ValueError('body must be {"pem": "-----BEGIN CERTIFICATE-----..."}')
                return Resp(201, auth.register_certificate(w, data["pem"].encode()))
            if name == "tenant" and req.method == "GET":
                t = w.tenant
                return Resp(
                    200,
                    {
                        "domain": t.domain,
                        "tenantId": t.tenant_id,
                        "clientId": w.settings.client_id,
                        "users": len(t.users),
                        "mailboxes": sum(u.has_mailbox for u in t.users),
                        "baseMessages": t.mailbox_message_total(),
                        "sites": len(t.sites),
                        "drives": len(t.drives),
                        "baseFileBytes": t.total_file_bytes(),
                    },
                )
        except (ValueError, json.JSONDecodeError) as exc:
            return Resp(400, {"error": {"code": "invalidRequest", "message": str(exc)}})
        return Resp(
            404, {"error": {"code": "notFound", "message": f"No admin endpoint {req.method} {req.path}"}}
        )


def _dropped() -> Iterator[bytes]:
    yield b"x" * 100
    raise DroppedConnection("injected dropped connection")


def _injected(fault: str) -> GraphError:
    code = "generalException" if fault == "500" else "serviceNotAvailable"
    return GraphError(
        int(fault), code, "Injected fault.", headers={"Retry-After": "1"} if fault == "503" else {}
    )


def _cut(body: Iterator[bytes], after: int = 100) -> Iterator[bytes]:
    """The first `after` bytes of a real body, then a dropped connection."""
    sent = 0
    for chunk in body:
        if sent + len(chunk) >= after:
            yield chunk[: after - sent]
            break
        sent += len(chunk)
        yield chunk
    raise DroppedConnection("injected dropped connection")


def _release_after(body: Iterator[bytes], limiter: Limiter, ticket: Ticket) -> Iterator[bytes]:
    try:
        yield from body
    finally:
        limiter.release(ticket)
