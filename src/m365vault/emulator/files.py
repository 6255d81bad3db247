"""OneDrive and SharePoint document libraries: drives, driveItems, delta, content, versions, uploads
(graph-protocol.md §2.4, §3.5, §4.3, §4.4, §5.3–5.5)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from typing import Any

from m365vault.emulator import content, ids
from m365vault.emulator.clock import iso, parse_iso
from m365vault.emulator.delta import Expired, View
from m365vault.emulator.errors import GraphError, not_found_drive
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.quickxor import QuickXorHash
from m365vault.emulator.tenant import Drive, DriveEntry
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.uploads import Uploads
from m365vault.emulator.world import World

K_BASE, K_NEW = 6, 16
SIMPLE_UPLOAD_MAX = 250 * 1024 * 1024


def _etag_guid(item_id: str) -> str:
    h = hashlib.md5(item_id.encode()).hexdigest().upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class Files:
    def __init__(self, world: World, uploads: Uploads) -> None:
        self.w = world
        self.uploads = uploads
        uploads.committers["drive"] = self._commit_upload

    # ------------------------------------------------------------------ identity and state
    def item_id(self, drive: Drive, index: int) -> str:
        return ids.make(self.w.seed, "01", K_BASE, drive.number, index, b32=True)

    def root_id(self, drive: Drive) -> str:
        return self.item_id(drive, 0)

    def coll(self, drive: Drive) -> str:
        return f"d:{drive.number}"

    def _base_state(self, drive: Drive, e: DriveEntry) -> dict[str, Any]:
        state: dict[str, Any] = {
            "name": e.name,
            "parentId": self.item_id(drive, e.parent) if e.parent is not None else None,
            "folder": e.is_folder,
            "createdDateTime": e.created,
            "lastModifiedDateTime": e.created + 3600 * e.versions,
            "fileSystemInfo": {
                "createdDateTime": e.created,
                "lastModifiedDateTime": e.created + 3600 * e.versions,
            },
            "etagN": e.versions,
            "_drive": drive.number,
        }
        if not e.is_folder:
            state["versions"] = [
                {
                    "id": f"{v}.0",
                    "size": self.w.tenant.version_size(e, v),
                    "_content": {
                        "gen": f"file:{drive.number}:{e.index}:v{v}",
                        "size": self.w.tenant.version_size(e, v),
                    },
                    "lastModifiedDateTime": e.created + 3600 * v,
                }
                for v in range(1, e.versions + 1)
            ]
        return state

    def view(self, drive: Drive) -> View:
        entries = self.w.tenant.drive_entries(drive.number)
        return View(
            self.coll(drive),
            len(entries),
            lambda i: self.item_id(drive, i),
            lambda i: self._base_state(drive, entries[i]),
        )

    def item(self, drive: Drive, item_id: str) -> dict[str, Any]:
        if item_id.lower() == "root":
            item_id = self.root_id(drive)
        found = self.w.store.item(item_id)
        if found is not None:
            coll, state = found
            if state is None or coll != self.coll(drive):
                raise not_found_drive()
            return state
        parsed = ids.parse(self.w.seed, "01", item_id, b32=True)
        if parsed and parsed[0] == K_BASE and parsed[1][0] == drive.number:
            entries = self.w.tenant.drive_entries(drive.number)
            if parsed[1][1] < len(entries):
                return self._base_state(drive, entries[parsed[1][1]])
        raise not_found_drive()

    def children(self, drive: Drive, parent_id: str) -> list[tuple[str, dict[str, Any]]]:
        entries = self.w.tenant.drive_entries(drive.number)
        touched = self.w.store.touched_in(self.coll(drive))
        out = []
        parsed = ids.parse(self.w.seed, "01", parent_id, b32=True)
        if parsed and parsed[0] == K_BASE:
            pidx = parsed[1][1]
            for e in entries:
                if e.parent == pidx:
                    iid = self.item_id(drive, e.index)
                    if iid not in touched:
                        out.append((iid, self._base_state(drive, e)))
        return out + self.w.store.children(self.coll(drive), parent_id)

    def child_named(self, drive: Drive, parent_id: str, name: str) -> tuple[str, dict[str, Any]] | None:
        for iid, state in self.children(drive, parent_id):
            if state["name"].lower() == name.lower():
                return iid, state
        return None

    def resolve(self, drive: Drive, req: Req) -> tuple[str, dict[str, Any]]:
        """The item a request addresses, by id or by path (`root:/a/b.txt:`)."""
        start = req.params.get("item", "root")
        iid = self.root_id(drive) if start.lower() == "root" else start
        state = self.item(drive, iid)
        for part in (req.item_path or "").split("/"):
            if not part:
                continue
            found = self.child_named(drive, iid, part)
            if found is None:
                raise not_found_drive()
            iid, state = found
        return iid, state

    def resolve_parent(self, drive: Drive, req: Req) -> tuple[str, str]:
        """(parent id, new name) for path-addressed creates; intermediate folders are created."""
        start = req.params.get("item", "root")
        iid = self.root_id(drive) if start.lower() == "root" else start
        self.item(drive, iid)
        parts = [p for p in (req.item_path or "").split("/") if p]
        if not parts:
            raise GraphError(400, "invalidRequest", "A file name is required.")
        for part in parts[:-1]:
            found = self.child_named(drive, iid, part)
            if found is None:
                iid = self.create(drive, iid, part, folder=True, conflict="fail")[0]
            elif not found[1]["folder"]:
                raise GraphError(400, "invalidRequest", f"'{part}' is not a folder.")
            else:
                iid = found[0]
        return iid, parts[-1]

    # ------------------------------------------------------------------ writes
    def _write(
        self, drive: Drive, iid: str, state: dict[str, Any] | None, extra: list[Any] | None = None
    ) -> None:
        ops = [(self.coll(drive), iid, state, state["parentId"] if state else None)]
        self.w.store.write(self.w.now(), ops + (extra or []))

    def _free_name(self, drive: Drive, parent: str, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        n = 1
        while self.child_named(drive, parent, name):
            name = f"{stem} {n}" + (f".{ext}" if ext else "")
            n += 1
        return name

    def create(
        self,
        drive: Drive,
        parent: str,
        name: str,
        *,
        folder: bool,
        conflict: str = "fail",
        data: bytes | None = None,
        fs_info: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any], bool]:
        """(id, state, created?) for a new file or folder; `replace` turns into a new version of a file."""
        if not name or any(c in name for c in '"*:<>?/\\|'):
            raise GraphError(
                400, "invalidRequest", f"The name '{name}' is not valid.", inner_code="invalidPath"
            )
        existing = self.child_named(drive, parent, name)
        if existing is not None:
            if conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if conflict == "replace" and not folder and not existing[1]["folder"]:
                return (*self.new_version(drive, existing[0], existing[1], data or b"", fs_info), False)
            if conflict == "replace" and folder and existing[1]["folder"]:
                return existing[0], existing[1], False
            name = self._free_name(drive, parent, name)
        iid = ids.make(self.w.seed, "01", K_NEW, drive.number, self.w.store.counter("driveitem"), b32=True)
        now = self.w.now()
        fs = _fs_info(fs_info, now)
        state: dict[str, Any] = {
            "name": name,
            "parentId": parent,
            "folder": folder,
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "fileSystemInfo": fs,
            "etagN": 1,
            "_drive": drive.number,
        }
        if not folder:
            blob = self.w.store.put_blob(data or b"")
            state["versions"] = [
                {
                    "id": "1.0",
                    "size": len(data or b""),
                    "_content": {"blob": blob, "size": len(data or b"")},
                    "lastModifiedDateTime": now,
                }
            ]
        self._write(drive, iid, state)
        return iid, state, True

    def new_version(
        self,
        drive: Drive,
        iid: str,
        state: dict[str, Any],
        data: bytes,
        fs_info: dict[str, Any] | None = None,
        ref: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        now = self.w.now()
        versions = list(state.get("versions", []))
        number = int(float(versions[-1]["id"])) + 1 if versions else 1
        if ref is None:
            ref = {"blob": self.w.store.put_blob(data), "size": len(data)}
        versions.append(
            {"id": f"{number}.0", "size": int(ref["size"]), "_content": ref, "lastModifiedDateTime": now}
        )
        state = {
            **state,
            "versions": versions,
            "lastModifiedDateTime": now,
            "etagN": int(state["etagN"]) + 1,
            "fileSystemInfo": _fs_info(fs_info, now, state.get("fileSystemInfo")),
        }
        self._write(drive, iid, state)
        return iid, state

    def delete(self, drive: Drive, iid: str, state: dict[str, Any]) -> None:
        ops: list[Any] = []
        stack = [iid] if state["folder"] else []
        while stack:  # a folder's descendants go with it
            for cid, cstate in self.children(drive, stack.pop()):
                ops.append((self.coll(drive), cid, None, None))
                if cstate["folder"]:
                    stack.append(cid)
        self.w.store.write(self.w.now(), [(self.coll(drive), iid, None, None), *ops])

    def _commit_upload(self, req: Req, target: dict[str, Any], data: bytes) -> Resp:
        drive = self.w.drive(target["drive"])
        if target.get("item"):
            state = self.item(drive, target["item"])
            iid, state = self.new_version(drive, target["item"], state, data, target.get("fs"))
            return Resp(200, self.item_json(req, drive, iid, state))
        iid, state, created = self.create(
            drive,
            target["parent"],
            target["name"],
            folder=False,
            conflict=target.get("conflict") or "replace",
            data=data,
            fs_info=target.get("fs"),
        )
        return Resp(201 if created else 200, self.item_json(req, drive, iid, state))

    # ------------------------------------------------------------------ content
    def content_ref(self, state: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        versions = state.get("versions") or []
        if not versions:
            raise GraphError(400, "invalidRequest", "Folders have no content.")
        if version is None:
            return dict(versions[-1]["_content"])
        for v in versions:
            if v["id"] == version:
                return dict(v["_content"])
        raise not_found_drive()

    def ref_stream(self, ref: dict[str, Any], start: int = 0, end: int | None = None) -> Iterator[bytes]:
        size = int(ref["size"])
        stop = size if end is None else min(end, size)
        if "gen" in ref:
            yield from content.stream(self.w.seed, str(ref["gen"]), size, start, stop)
            return
        with open(self.w.store.blob_path(ref["blob"]), "rb") as f:
            f.seek(start)
            remaining = stop - start
            while remaining > 0:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def quick_xor(self, ref: dict[str, Any]) -> str:
        key = f"blob:{ref['blob']}" if "blob" in ref else f"gen2:{ref['gen']}:{ref['size']}"
        cached = self.w.store.hash_get(key)
        if cached:
            return cached
        h = QuickXorHash()
        for chunk in self.ref_stream(ref):
            h.update(chunk)
        value = h.digest_b64()
        self.w.store.hash_put(key, value)
        return value

    def download_url(self, req: Req, ref: dict[str, Any], name: str) -> str:
        token = self.w.signer.mint(
            "download", {"r": ref, "n": name, "e": self.w.now() + self.w.config.download_url_lifetime_seconds}
        )
        return f"{req.base_url}/_download/{token}"

    # ------------------------------------------------------------------ JSON
    def drive_json(self, req: Req, drive: Drive) -> dict[str, Any]:
        t = self.w.tenant
        site = t.sites[drive.site_index]
        owner: dict[str, Any]
        if drive.owner_user is not None:
            u = t.users[drive.owner_user]
            owner = {"user": {"id": u.id, "displayName": u.display_name, "email": u.mail}}
        elif drive.owner_group is not None:
            g = t.groups[drive.owner_group]
            owner = {"group": {"id": g.id, "displayName": g.display_name}}
        else:
            owner = {"user": {"displayName": "System Account"}}
        library = "Documents" if drive.drive_type == "business" else drive.name.replace(" ", "%20")
        url = f"{site.web_url}/{library}"
        return {
            "id": drive.id,
            "driveType": drive.drive_type,
            "name": drive.name,
            "createdDateTime": "2024-03-01T09:00:00Z",
            "lastModifiedDateTime": self.w.now_iso(),
            "description": "",
            "webUrl": url,
            "owner": owner,
            "quota": {
                "deleted": 0,
                "remaining": 1099511627776,
                "state": "normal",
                "total": 1099511627776,
                "used": 0,
            },
        }

    def item_json(
        self,
        req: Req,
        drive: Drive,
        iid: str,
        state: dict[str, Any],
        *,
        in_delta: bool = False,
        download: bool = True,
    ) -> dict[str, Any]:
        t = self.w.tenant
        guid = _etag_guid(iid)
        site = t.sites[drive.site_index]
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.driveItem",
            "createdDateTime": iso(state["createdDateTime"]),
            "eTag": f'"{{{guid}}},{state["etagN"]}"',
            "id": iid,
            "lastModifiedDateTime": iso(state["lastModifiedDateTime"]),
            "name": state["name"],
            "webUrl": f"{site.web_url}/{drive.name}/{state['name']}",
            "createdBy": {"user": {"displayName": "System Account"}},
            "lastModifiedBy": {"user": {"displayName": "System Account"}},
            "parentReference": {"driveType": drive.drive_type, "driveId": drive.id, "siteId": site.id},
            "fileSystemInfo": {
                "createdDateTime": iso(state["fileSystemInfo"]["createdDateTime"]),
                "lastModifiedDateTime": iso(state["fileSystemInfo"]["lastModifiedDateTime"]),
            },
        }
        if state.get("parentId"):
            out["parentReference"]["id"] = state["parentId"]
            if not in_delta:
                out["parentReference"]["path"] = f"/drives/{drive.id}/root:" + self.path_of(
                    drive, state["parentId"]
                )
        else:
            out["root"] = {}
            out["name"] = "root"
        if state["folder"]:
            out["size"] = 0
            out["folder"] = {"childCount": len(self.children(drive, iid))}
        else:
            ref = self.content_ref(state)
            out["size"] = int(ref["size"])
            mime = mimetypes.guess_type(state["name"])[0] or "application/octet-stream"
            out["file"] = {"mimeType": mime, "hashes": {"quickXorHash": self.quick_xor(ref)}}
            if not in_delta:
                out["cTag"] = f'"c:{{{guid}}},{len(state["versions"])}"'
            if download:
                out["@microsoft.graph.downloadUrl"] = self.download_url(req, ref, state["name"])
        return out

    def path_of(self, drive: Drive, iid: str) -> str:
        parts = []
        state = self.item(drive, iid)
        while state.get("parentId"):
            parts.append(state["name"])
            state = self.item(drive, state["parentId"])
        return "/" + "/".join(reversed(parts)) if parts else ""


def _fs_info(given: dict[str, Any] | None, now: float, old: dict[str, Any] | None = None) -> dict[str, float]:
    out = {"createdDateTime": (old or {}).get("createdDateTime", now), "lastModifiedDateTime": now}
    for key in ("createdDateTime", "lastModifiedDateTime"):
        if given and isinstance(given.get(key), str):
            try:
                out[key] = parse_iso(given[key])
            except ValueError as exc:
                raise GraphError(400, "invalidRequest", f"fileSystemInfo.{key} is not a date.") from exc
    return out


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def download(world: World, files: Files, req: Req, token: str) -> Resp:
    """The pre-authenticated download host: Range → 206, unsatisfiable → 416, stale If-Range → 200."""
    try:
        payload = world.signer.read("download", token)
    except InvalidToken as exc:
        raise GraphError(401, "unauthenticated", "The download URL is not valid.") from exc
    if float(payload["e"]) <= world.now():
        raise GraphError(401, "unauthenticated", "The download URL has expired.")
    ref = payload["r"]
    size = int(ref["size"])
    etag = '"' + hashlib.sha1(str(sorted(ref.items())).encode()).hexdigest()[:16] + '"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": f"attachment; filename*=UTF-8''{payload['n']}",
    }
    rng = req.headers.get("range")
    # If-Range (RFC 9110 §13.1.5): Range applies only while the strong ETag still matches; a
    # changed file (or a date validator, which this host never hands out) gets the whole body.
    if_range = req.headers.get("if-range")
    if rng and (if_range is None or if_range == etag):
        m = _RANGE.match(rng.strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or end < start:
                return Resp(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["Content-Length"] = str(end - start + 1)
            return Resp(206, files.ref_stream(ref, start, end + 1), headers, "application/octet-stream")
    headers["Content-Length"] = str(size)
    return Resp(200, files.ref_stream(ref), headers, "application/octet-stream")


def register(router: Router, world: World, files: Files) -> None:  # noqa: C901, PLR0915 (one route table)
    w = world

    def drive_of(req: Req) -> Drive:
        return w.drive(req.params["drive"])

    @router.route("GET", "drives/{drive}")
    def get_drive(req: Req) -> Resp:
        return Resp(200, w.pick(files.drive_json(req, drive_of(req)), req.select()))

    @router.route("GET", "drives/{drive}/items/{item}")
    def get_item(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        return Resp(200, w.pick(files.item_json(req, drive, iid, state), req.select()))

    @router.route("GET", "drives/{drive}/items/{item}/children")
    def children(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        if not state["folder"]:
            return Resp(200, {"value": []})
        rows = files.children(drive, iid)
        size, _ = w.page_size(req, 200, 1000, prefer=False)
        offset = 0
        if "$skiptoken" in req.query:
            try:
                offset = int(w.signer.read("skip", req.query["$skiptoken"])["o"])
            except (InvalidToken, KeyError) as exc:
                raise GraphError(400, "invalidRequest", "The skip token is invalid.") from exc
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#drives('{drive.id}')/items('{iid}')/children",
            "value": [
                w.pick(files.item_json(req, drive, i, s), req.select())
                for i, s in rows[offset : offset + size]
            ],
        }
        if offset + size < len(rows):
            body["@odata.nextLink"] = w.link(
                req,
                f"/drives/{drive.id}/items/{iid}/children",
                **{**req.query, "$skiptoken": w.signer.mint("skip", {"o": offset + size})},
            )
        return Resp(200, body)

    @router.route("GET", "drives/{drive}/items/{item}/delta")
    def delta(req: Req) -> Resp:
        drive = drive_of(req)
        iid, _ = files.resolve(drive, req)
        if iid != files.root_id(drive):
            raise GraphError(
                400,
                "invalidRequest",
                "Delta is only supported on the root of this drive.",
                inner_code="notSupported",
            )
        view = files.view(drive)
        link_path = f"/drives/{drive.id}/root/delta"
        token = req.query.get("token")
        options = {"select": req.query.get("$select"), "top": req.query.get("$top")}
        size, _ = w.delta_size(req, options, 200, prefer=False)
        if token == "latest":
            page = w.delta.latest(view, options)
        elif token and re.match(r"^\d{4}-\d\d-\d\dT", token):
            try:
                page = w.delta.since_seq(view, w.store.seq_at(parse_iso(token)), size, options)
            except ValueError as exc:
                raise GraphError(400, "invalidRequest", "The timestamp token is not valid.") from exc
        else:
            payload = None
            if token:
                try:
                    payload = w.delta.read_token(view, token)
                except Expired as exc:
                    raise GraphError(
                        410,
                        "resyncRequired",
                        "Resync required. Replace any local items with the "
                        "server's version (including deletes) if you're sure that the service was "
                        "up to date with your local changes when you last sync'd. Upload any local "
                        "changes that the server doesn't know about.",
                        headers={"Location": w.link(req, link_path)},
                        inner_code="resyncChangesApplyDifferences",
                    ) from exc
                options = payload.get("q") or options
            size, _ = w.delta_size(req, options, 200, prefer=False)
            page = w.delta.page(view, payload, size, options)
        select = [s for s in (options.get("select") or "").split(",") if s] or None
        want_download = bool(select and any(s.lower() == "@microsoft.graph.downloadurl" for s in select))
        exclude_parent = "deltaexcludeparent" in req.headers
        value: list[dict[str, Any]] = []
        emitted: set[str] = set()
        for item_id, state in page.items:
            if state is None:
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.driveItem",
                        "id": item_id,
                        "deleted": {"state": "deleted"},
                        "parentReference": {"driveId": drive.id, "driveType": drive.drive_type},
                    }
                )
                continue
            if not exclude_parent:  # ancestors of a changed item come along, once per page
                chain, pid = [], state.get("parentId")
                while pid and pid not in emitted:
                    try:
                        pstate = files.item(drive, pid)
                    except GraphError:
                        break
                    chain.append((pid, pstate))
                    emitted.add(pid)
                    pid = pstate.get("parentId")
                for pid2, pstate in reversed(chain):
                    value.append(
                        w.pick(
                            files.item_json(req, drive, pid2, pstate, in_delta=True, download=False), select
                        )
                    )
            emitted.add(item_id)
            value.append(
                w.pick(
                    files.item_json(req, drive, item_id, state, in_delta=True, download=want_download), select
                )
            )
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#Collection(driveItem)"}
        if page.next_token:
            body["@odata.nextLink"] = w.link(req, link_path, token=page.next_token)
        else:
            body["@odata.deltaLink"] = w.link(req, link_path, token=page.delta_token or "")
        body["value"] = value
        return Resp(200, body)

    @router.route("GET", "drives/{drive}/items/{item}/content")
    def get_content(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        if state["folder"]:
            raise GraphError(400, "invalidRequest", "Folders have no content.")
        guid = _etag_guid(iid)
        tags = {f'"{{{guid}}},{state["etagN"]}"', f'"c:{{{guid}}},{len(state["versions"])}"'}
        if req.headers.get("if-none-match") in tags:
            return Resp(304)
        return Resp(302, b"", {"Location": files.download_url(req, files.content_ref(state), state["name"])})

    @router.route("PUT", "drives/{drive}/items/{item}/content")
    def put_content(req: Req) -> Resp:
        drive = drive_of(req)
        if len(req.body) > SIMPLE_UPLOAD_MAX:
            raise GraphError(413, "maxFileSizeExceeded", "Use an upload session for files over 250 MB.")
        conflict = req.query.get("@microsoft.graph.conflictBehavior", "replace").lower()
        if conflict not in ("fail", "replace", "rename"):
            raise GraphError(400, "invalidRequest", f"Invalid conflictBehavior '{conflict}'.")
        if req.item_path:
            parent, name = files.resolve_parent(drive, req)
            iid, state, created = files.create(
                drive, parent, name, folder=False, conflict=conflict, data=req.body
            )
            return Resp(201 if created else 200, files.item_json(req, drive, iid, state))
        iid, state = files.resolve(drive, req)
        if state["folder"]:
            raise GraphError(400, "invalidRequest", "Cannot write content to a folder.")
        iid, state = files.new_version(drive, iid, state, req.body)
        return Resp(200, files.item_json(req, drive, iid, state))

    @router.route("POST", "drives/{drive}/items/{item}/children")
    def create_child(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        data = req.json_object()
        if not state["folder"] or "folder" not in data or not isinstance(data.get("name"), str):
            raise GraphError(
                400, "invalidRequest", "POST children creates folders: name and folder are required."
            )
        conflict = str(data.get("@microsoft.graph.conflictBehavior", "fail")).lower()
        cid, cstate, _ = files.create(
            drive, iid, data["name"], folder=True, conflict=conflict, fs_info=data.get("fileSystemInfo")
        )
        return Resp(201, files.item_json(req, drive, cid, cstate))

    @router.route("PATCH", "drives/{drive}/items/{item}")
    def patch_item(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        data = req.json_object()
        if not state.get("parentId"):
            raise GraphError(403, "accessDenied", "The root cannot be renamed or moved.")
        if set(data) - {
            "name",
            "parentReference",
            "fileSystemInfo",
            "description",
            "@microsoft.graph.conflictBehavior",
        }:
            raise GraphError(
                400,
                "invalidRequest",
                "Only name, parentReference and fileSystemInfo can be updated.",
                inner_code="propertyNotUpdateable",
            )
        parent = str((data.get("parentReference") or {}).get("id") or state.get("parentId"))
        if parent != state.get("parentId") and not files.item(drive, parent)["folder"]:
            raise GraphError(400, "invalidRequest", "The new parent is not a folder.")
        name = data.get("name", state["name"])
        clash = files.child_named(drive, parent, name) if parent else None
        if clash and clash[0] != iid:
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        new = {
            **state,
            "name": name,
            "parentId": parent,
            "etagN": int(state["etagN"]) + 1,
            "lastModifiedDateTime": w.now(),
        }
        if "fileSystemInfo" in data:  # PATCH keeps what it is not given
            old = state["fileSystemInfo"]
            new["fileSystemInfo"] = _fs_info(data["fileSystemInfo"], old["lastModifiedDateTime"], old)
        files._write(drive, iid, new)
        return Resp(200, files.item_json(req, drive, iid, new))

    @router.route("DELETE", "drives/{drive}/items/{item}")
    def delete_item(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        if not state.get("parentId"):
            raise GraphError(403, "accessDenied", "The root cannot be deleted.")
        files.delete(drive, iid, state)
        return Resp(204)

    @router.route("POST", "drives/{drive}/items/{item}/createUploadSession")
    def create_session(req: Req) -> Resp:
        drive = drive_of(req)
        data = req.json_object() if req.body else {}
        item = data.get("item") or {}
        conflict = str(item.get("@microsoft.graph.conflictBehavior", "replace")).lower()
        target: dict[str, Any] = {"drive": drive.id, "conflict": conflict, "fs": item.get("fileSystemInfo")}
        if req.item_path:
            parent, name = files.resolve_parent(drive, req)
            existing = files.child_named(drive, parent, name)
            if existing and conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            target.update(parent=parent, name=name)
        else:
            iid, state = files.resolve(drive, req)
            if state["folder"]:
                raise GraphError(
                    400, "invalidRequest", "Address the new file by path: items/{parent-id}:/{name}:."
                )
            target["item"] = iid
        match = req.headers.get("if-match")
        if match and "item" in target:
            guid = _etag_guid(target["item"])
            st = files.item(drive, target["item"])
            if match not in (f'"{{{guid}}},{st["etagN"]}"', f'"c:{{{guid}}},{len(st["versions"])}"'):
                raise GraphError(
                    412, "resourceModified", "The resource has changed since the caller last read it."
                )
        session = files.uploads.create(req, "drive", None, target, defer=bool(data.get("deferCommit")))
        return Resp(200, session)

    @router.route("GET", "drives/{drive}/items/{item}/versions")
    def versions(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        rows = [_version_json(v) for v in reversed(state.get("versions") or [])]
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#drives('{drive.id}')/items('{iid}')/versions",
                "value": rows,
            },
        )

    @router.route("GET", "drives/{drive}/items/{item}/versions/{version}")
    def version(req: Req) -> Resp:
        drive = drive_of(req)
        _, state = files.resolve(drive, req)
        for v in state.get("versions") or []:
            if v["id"] == req.params["version"]:
                return Resp(200, _version_json(v))
        raise not_found_drive()

    @router.route("GET", "drives/{drive}/items/{item}/versions/{version}/content")
    def version_content(req: Req) -> Resp:
        drive = drive_of(req)
        _, state = files.resolve(drive, req)
        if (state.get("versions") or [{}])[-1].get("id") == req.params["version"]:
            raise GraphError(400, "invalidRequest", "Download the current version through /content.")
        ref = files.content_ref(state, req.params["version"])
        return Resp(302, b"", {"Location": files.download_url(req, ref, state["name"])})

    @router.route("POST", "drives/{drive}/items/{item}/versions/{version}/restoreVersion")
    def restore_version(req: Req) -> Resp:
        drive = drive_of(req)
        iid, state = files.resolve(drive, req)
        ref = files.content_ref(state, req.params["version"])
        files.new_version(drive, iid, state, b"", ref=ref)
        return Resp(204)


def _version_json(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.driveItemVersion",
        "id": v["id"],
        "lastModifiedDateTime": iso(v["lastModifiedDateTime"]),
        "size": v["size"],
        "lastModifiedBy": {"user": {"displayName": "System Account"}},
    }
