"""In-place archive mailboxes through Graph beta's mailbox import/export API.

Routes (answered under /beta only, as in Graph):
    GET    users/{user}/settings/exchange                         primaryMailboxId, inPlaceArchiveMailboxId
    GET    admin/exchange/mailboxes/{mbx}/folders/delta           the archive's folder tree
    GET    admin/exchange/mailboxes/{mbx}/folders/{f}/items/delta mailboxItems of one folder
    DELETE admin/exchange/mailboxes/{mbx}/folders/{f}/items/{i}
    POST   admin/exchange/mailboxes/{mbx}/exportItems             up to 20 items as opaque streams
    POST   admin/exchange/mailboxes/{mbx}/createImportSession     a pre-authenticated importUrl
    POST   /_import/{mbx}?authtoken=...                           (no bearer) create or update one item

Which users have an archive is a pure function of the tenant (`has_archive`). One archive folder is
"expanded" (its items live in an auxiliary archive mailbox, as with auto-expanding archiving): item
reads through the main archive answer 308 with the auxiliary mailbox's URL, as Microsoft documents.

The export stream is the emulator's own opaque format (Microsoft's is FastTransfer): a magic line,
a JSON header and the item's MIME. Clients must treat it as opaque; imports accept only it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from m365vault.emulator import generate, ids
from m365vault.emulator.clock import iso
from m365vault.emulator.delta import View
from m365vault.emulator.errors import GraphError, not_found_mail
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.mail import Mail
from m365vault.emulator.outlook import item_head
from m365vault.emulator.tenant import MAIL_FOLDERS, User
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.world import World

K_FOLDER, K_ITEM, K_NEW_ITEM = 31, 32, 33
ROOT_NUMBER = 99  # the archive's hidden root folder: parent of the top-level folders, never listed
MAGIC = b"M365VAULT-EMULATOR-ITEM\x01"
MAX_EXPORT = 20
IMPORT_LIFETIME = 3600
ARCHIVE_SHARE = 0.3  # archive items per folder, as a share of the primary mailbox's message count

# (display name, parent number or None, share of the archive's items, expanded into an auxiliary)
FOLDERS: tuple[tuple[str, int | None, float, bool], ...] = (
    ("Inbox", None, 0.4, False),
    ("Sent Items", None, 0.2, False),
    ("2023", 0, 0.2, False),
    ("2024", 0, 0.2, True),
)
# Extended property ids a client may $expand, and the item field each one reads.
PROPERTIES = {
    "string0x0037": "subject",
    "string0x0c1a": "senderName",
    "string0x5d01": "senderAddress",
}
KEPT = ("id", "parentMailboxUrl", "singleValueExtendedProperties")  # returned whatever $select says
_PROPERTY_ID = re.compile(r"id\s+eq\s+'([^']+)'", re.IGNORECASE)


def has_archive(user: User) -> bool:
    """About a third of the people with a mailbox (shared mailboxes have none): deterministic."""
    return user.has_mailbox and user.purpose == "user" and user.index % 3 == 0


@dataclass(frozen=True)
class Mailbox:
    id: str
    user: User
    role: str  # primary | archive | auxiliary


def pack(header: dict[str, Any], mime: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + mime


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, MIME) of an exported stream; ValueError if it is not one of ours."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise ValueError("not an exported item")
    (size,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + size])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header, data[start + size :]


class Archives:
    def __init__(self, world: World, mail: Mail) -> None:
        self.w = world
        self.mail = mail
        self._mailboxes: dict[str, Mailbox] | None = None

    # ------------------------------------------------------------------ mailboxes
    def mailbox_id(self, user: User, role: str) -> str:
        digest = hashlib.sha1(f"{self.w.seed}:{role}:{user.index}".encode()).hexdigest()[:8]
        tenant = hashlib.sha1(self.w.tenant.domain.encode()).hexdigest()[:8]
        return f"MBX:{digest}@{tenant}"

    def mailbox(self, key: str) -> Mailbox:
        if self._mailboxes is None:
            found: dict[str, Mailbox] = {}
            for user in self.w.tenant.users:
                if not user.has_mailbox:
                    continue
                roles = ("primary", "archive", "auxiliary") if has_archive(user) else ("primary",)
                for role in roles:
                    mbx = self.mailbox_id(user, role)
                    found[mbx.lower()] = Mailbox(mbx, user, role)
            self._mailboxes = found
        box = self._mailboxes.get(key.lower())
        if box is None:
            raise GraphError(404, "ErrorMailboxNotFound", f"The mailbox '{key}' was not found.")
        return box

    # ------------------------------------------------------------------ folders
    def folder_id(self, user: User, number: int) -> str:
        return ids.make(self.w.seed, "AAMk", K_FOLDER, user.index, number)

    def folder_number(self, user: User, fid: str) -> int:
        parsed = ids.parse(self.w.seed, "AAMk", fid)
        if not parsed or parsed[0] != K_FOLDER or parsed[1][0] != user.index or parsed[1][1] >= len(FOLDERS):
            raise not_found_mail()
        return parsed[1][1]

    def _folder_state(self, user: User, number: int) -> dict[str, Any]:
        _name, parent, _share, _expanded = FOLDERS[number]
        return {
            "_num": number,
            "parentFolderId": self.folder_id(user, ROOT_NUMBER if parent is None else parent),
        }

    def folder_view(self, user: User) -> View:
        return View(
            f"af:{user.index}",
            len(FOLDERS),
            lambda i: self.folder_id(user, i),
            lambda i: self._folder_state(user, i),
        )

    def item_count(self, user: User, number: int) -> int:
        total = self.w.tenant.spec.messages_per_mailbox * ARCHIVE_SHARE
        return int(total * FOLDERS[number][2])

    def folder_json(self, req: Req, box: Mailbox, fid: str, number: int) -> dict[str, Any]:
        name, _parent, _share, expanded = FOLDERS[number]
        view = self.item_view(box.user, number)
        live, touched_base = self.w.store.count_live_and_touched_base(
            view.key, self._own_base(box.user, number)
        )
        home = self.mailbox_id(box.user, "auxiliary" if expanded else "archive")
        return {
            "@odata.type": "#microsoft.graph.mailboxFolder",
            "id": fid,
            "displayName": name,
            "parentFolderId": self._folder_state(box.user, number)["parentFolderId"],
            "parentMailboxUrl": f"{req.graph_base}/admin/exchange/mailboxes/{home}",
            "childFolderCount": sum(1 for f in FOLDERS if f[1] == number),
            "totalItemCount": view.base_count - touched_base + live,
            "type": "IPF.Note",
            "wellKnownName": "inbox" if number == 0 else ("sentitems" if number == 1 else None),
        }

    # ------------------------------------------------------------------ items
    def item_view(self, user: User, number: int) -> View:
        fid = self.folder_id(user, number)

        def base_state(i: int) -> dict[str, Any]:
            msg = generate.message(self.w.tenant, user, 100 + number, fid, i)
            return {**msg, "_user": user.index, "type": "IPM.Note"}

        return View(
            f"ai:{fid}",
            self.item_count(user, number),
            lambda i: ids.make(self.w.seed, "AAMk", K_ITEM, user.index, number, i),
            base_state,
        )

    def _own_base(self, user: User, number: int) -> Any:
        count = self.item_count(user, number)

        def check(item_id: str) -> bool:
            parsed = ids.parse(self.w.seed, "AAMk", item_id)
            return (
                parsed is not None
                and parsed[0] == K_ITEM
                and parsed[1][:2] == (user.index, number)
                and parsed[1][2] < count
            )

        return check

    def item(self, user: User, item_id: str) -> tuple[str, dict[str, Any]]:
        """(collection, state) of a live archive item of this user, or 404."""
        found = self.w.store.item(item_id)
        if found is not None:
            coll, state = found
            if state is None or state.get("_user") != user.index or not coll.startswith("ai:"):
                raise not_found_mail()
            return coll, state
        parsed = ids.parse(self.w.seed, "AAMk", item_id)
        if parsed and parsed[0] == K_ITEM and parsed[1][0] == user.index and parsed[1][1] < len(FOLDERS):
            _, number, index = parsed[1]
            if index < self.item_count(user, number):
                view = self.item_view(user, number)
                return view.key, view.base_state(index)
        raise not_found_mail()

    def stream(self, state: dict[str, Any]) -> bytes:
        if state.get("_fts"):
            return self.w.store.blob_path(state["_fts"]).read_bytes()
        sender = state.get("from") or {}
        header = {
            "type": state.get("type", "IPM.Note"),
            "subject": state.get("subject", ""),
            "senderName": sender.get("name", ""),
            "senderAddress": sender.get("address", ""),
        }
        return pack(header, self.mail.mime(state))

    def size(self, state: dict[str, Any]) -> int:
        """Imported items: their stream's length; generated ones: an estimate (no MIME is built)."""
        if state.get("_size"):
            return int(state["_size"])
        paragraphs = int((state.get("_paragraphs") or {}).get("n", 2))
        attachments = sum(int(a.get("size", 0)) for a in state.get("attachments", []))
        return 2_000 + 900 * paragraphs + attachments * 4 // 3

    def item_json(self, item_id: str, state: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            **item_head("#microsoft.graph.mailboxItem", item_id, state),
            "categories": state.get("categories", []),
            "type": state.get("type", "IPM.Note"),
            "size": self.size(state),
        }
        if expand:
            sender = state.get("from") or {}
            values = {
                "subject": state.get("subject", ""),
                "senderName": sender.get("name", ""),
                "senderAddress": sender.get("address", ""),
            }
            props = []
            for prop in expand:
                field = PROPERTIES.get(prop.lower().replace(" ", ""))
                if field and values[field]:
                    props.append({"id": prop, "value": values[field]})
            out["singleValueExtendedProperties"] = props
        return out

    def add_item(self, user: User, number: int, state: dict[str, Any]) -> str:
        """Write a new archive item (simulated activity and imports); returns its id."""
        fid = self.folder_id(user, number)
        item_id = ids.make(self.w.seed, "AAMk", K_NEW_ITEM, user.index, self.w.store.counter("archive-item"))
        now = self.w.now()
        state = {
            **state,
            "_user": user.index,
            "parentFolderId": fid,
            "createdDateTime": state.get("createdDateTime", now),
            "lastModifiedDateTime": now,
            "changeKey": generate.change_key(item_id, now),
        }
        self.w.store.write(now, [(f"ai:{fid}", item_id, state, fid)])
        return item_id

    # ------------------------------------------------------------------ import
    def import_url(self, req: Req, box: Mailbox) -> tuple[str, float]:
        expires = self.w.now() + IMPORT_LIFETIME
        token = self.w.signer.mint("import", {"m": box.id, "x": expires})
        return f"{req.base_url}/_import/{box.id}?{urlencode({'authtoken': token})}", expires

    def import_item(self, req: Req) -> Resp:
        """POST to an importUrl: pre-authenticated by its authtoken, no bearer token."""
        try:
            grant = self.w.signer.read("import", req.query.get("authtoken", ""))
        except InvalidToken as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "The import URL is not valid.") from exc
        box = self.mailbox(req.path.strip("/").split("/", 1)[1])
        if grant.get("m") != box.id:
            raise GraphError(401, "InvalidAuthenticationToken", "The import URL is for another mailbox.")
        if float(grant.get("x", 0)) < self.w.now():
            raise GraphError(401, "InvalidAuthenticationToken", "The import session has expired.")
        body = req.json_object()
        mode, folder = body.get("Mode"), body.get("FolderId")
        if mode not in ("create", "update") or not isinstance(folder, str):
            raise GraphError(400, "ErrorInvalidRequest", "FolderId and Mode (create or update) are required.")
        if mode == "create" and (body.get("ItemId") or body.get("ChangeKey")):
            raise GraphError(400, "ErrorInvalidRequest", "ItemId and ChangeKey are not allowed with create.")
        try:
            data = base64.b64decode(str(body.get("Data", "")), validate=True)
            header, mime = unpack(data)
        except (binascii.Error, ValueError) as exc:
            raise GraphError(400, "ErrorInvalidRequest", "Data is not an exported item stream.") from exc
        if box.role == "primary":
            return self._import_primary(box.user, folder, mode, mime)
        number = self.folder_number(box.user, folder)
        state = {
            "_fts": self.w.store.put_blob(data),
            "_size": len(data),
            "type": str(header.get("type") or "IPM.Note"),
            "subject": str(header.get("subject") or ""),
            "from": {
                "name": str(header.get("senderName") or ""),
                "address": str(header.get("senderAddress") or ""),
            },
        }
        if mode == "create":
            item_id = self.add_item(box.user, number, state)
        else:
            item_id = str(body.get("ItemId") or "")
            coll, old = self.item(box.user, item_id)
            if coll != f"ai:{folder}" or old["changeKey"] != body.get("ChangeKey"):
                raise GraphError(
                    409, "ErrorIrresolvableConflict", "The item was changed or is not in the folder."
                )
            now = self.w.now()
            state = {
                **state,
                "_user": box.user.index,
                "parentFolderId": folder,
                "createdDateTime": old["createdDateTime"],
                "lastModifiedDateTime": now,
                "changeKey": generate.change_key(old["changeKey"], now),
            }
            self.w.store.write(now, [(coll, item_id, state, folder)])
        _, saved = self.item(box.user, item_id)
        return Resp(200, {"itemId": item_id, "changeKey": saved["changeKey"]})

    def _import_primary(self, user: User, folder: str, mode: str, mime: bytes) -> Resp:
        """Into the primary mailbox: the item becomes an ordinary message of that folder."""
        if mode != "create":
            raise GraphError(400, "ErrorInvalidRequest", "Only create is supported into this mailbox.")
        fid, _ = self.mail.folder(user, folder)
        now = self.w.now()
        state = self.mail._from_mime(mime, now)  # the mail model's MIME parser
        mid = self.mail.new_message_id(user)
        state.update(
            {
                "parentFolderId": fid,
                "_user": user.index,
                "isDraft": False,
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "changeKey": generate.change_key(mid, now),
            }
        )
        self.mail.write_message(user, f"m:{fid}", mid, state)
        return Resp(200, {"itemId": mid, "changeKey": state["changeKey"]})


def _require_beta(req: Req) -> None:
    if req.version != "beta":
        raise GraphError(400, "BadRequest", "Resource not found for the segment: use the beta endpoint.")


def _expand_ids(req: Req) -> list[str]:
    expand = req.query.get("$expand")
    if not expand:
        return []
    if not expand.lower().startswith("singlevalueextendedproperties"):
        raise GraphError(400, "BadRequest", f"Expanding '{expand}' is not supported.")
    return _PROPERTY_ID.findall(expand)


def register(router: Router, world: World, archives: Archives) -> None:  # noqa: C901, PLR0915 (routes)
    w = world

    def delta(req: Req, view: View, link_path: str, render: Any, tomb_type: str) -> Resp:
        options: dict[str, Any] = {
            "select": req.query.get("$select"),
            "top": req.query.get("$top"),
            "expand": _expand_ids(req),
        }
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        payload, options = w.delta.resume_outlook(view, token, options)
        size, applied = w.delta_size(req, options, 10, prefer=True)
        page = w.delta.page(view, payload, size, options)
        select = [s for s in (options.get("select") or "").split(",") if s] or None
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#Collection({tomb_type})"}
        if page.next_token:
            body["@odata.nextLink"] = w.link(req, link_path, **{"$skiptoken": page.next_token})
        else:
            body["@odata.deltaLink"] = w.link(req, link_path, **{"$deltatoken": page.delta_token or ""})
        body["value"] = [
            w.pick(render(i, s, options), select, always=KEPT)
            if s is not None
            else {"@odata.type": f"#microsoft.graph.{tomb_type}", "id": i, "@removed": {"reason": "deleted"}}
            for i, s in page.items
        ]
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if applied else {}
        return Resp(200, body, headers)

    def archive_box(req: Req) -> Any:
        _require_beta(req)
        box = archives.mailbox(req.params["mbx"])
        if box.role == "primary":
            raise GraphError(400, "ErrorInvalidRequest", "Only archive mailboxes have emulated items.")
        return box

    def primary_folders(req: Req, box: Mailbox) -> Resp:
        """A primary mailbox's folders (ids as the v1.0 mail API's: the emulator has one id form)."""
        view = archives.mail.folder_view(box.user)
        known = {f.number: f.well_known for f in MAIL_FOLDERS}

        def render(fid: str, state: dict[str, Any], _options: Any) -> dict[str, Any]:
            return {
                "@odata.type": "#microsoft.graph.mailboxFolder",
                "id": fid,
                "displayName": state["displayName"],
                "parentFolderId": state.get("parentFolderId"),
                "parentMailboxUrl": f"{req.graph_base}/admin/exchange/mailboxes/{box.id}",
                "type": "IPF.Note",
                "wellKnownName": known.get(state.get("_num", -1)),
            }

        return delta(req, view, f"/admin/exchange/mailboxes/{box.id}/folders/delta", render, "mailboxFolder")

    @router.route("GET", "users/{user}/settings/exchange")
    def exchange_settings(req: Req) -> Resp:
        _require_beta(req)
        user = w.mailbox_user(req.params["user"])
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#users('{user.id}')/settings/exchange/$entity",
            "primaryMailboxId": archives.mailbox_id(user, "primary"),
        }
        if has_archive(user):
            body["inPlaceArchiveMailboxId"] = archives.mailbox_id(user, "archive")
        return Resp(200, body)

    @router.route("GET", "admin/exchange/mailboxes/{mbx}/folders/delta")
    def folder_delta(req: Req) -> Resp:
        _require_beta(req)
        box = archives.mailbox(req.params["mbx"])
        if box.role == "primary":
            return primary_folders(req, box)
        view = archives.folder_view(box.user)

        def render(fid: str, state: dict[str, Any], _options: Any) -> dict[str, Any]:
            return archives.folder_json(req, box, fid, int(state["_num"]))

        return delta(req, view, f"/admin/exchange/mailboxes/{box.id}/folders/delta", render, "mailboxFolder")

    @router.route("GET", "admin/exchange/mailboxes/{mbx}/folders/{folder}/items/delta")
    def item_delta(req: Req) -> Resp:
        box = archive_box(req)
        number = archives.folder_number(box.user, req.params["folder"])
        expanded = FOLDERS[number][3]
        if expanded and box.role == "archive":
            # The folder's content lives in the auxiliary archive: say where (HTTP 308, same query).
            aux = archives.mailbox_id(box.user, "auxiliary")
            query = f"?{urlencode(req.query)}" if req.query else ""
            where = (
                f"{req.graph_base}/admin/exchange/mailboxes/{aux}/folders/{req.params['folder']}/items/delta"
            )
            return Resp(308, None, {"Location": where + query})
        if box.role == "auxiliary" and not expanded:
            raise not_found_mail()
        view = archives.item_view(box.user, number)
        fid = req.params["folder"]

        def render(item_id: str, state: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
            return archives.item_json(item_id, state, list(options.get("expand") or []))

        path = f"/admin/exchange/mailboxes/{box.id}/folders/{fid}/items/delta"
        return delta(req, view, path, render, "mailboxItem")

    @router.route("DELETE", "admin/exchange/mailboxes/{mbx}/folders/{folder}/items/{item}")
    def delete_item(req: Req) -> Resp:
        box = archive_box(req)
        archives.folder_number(box.user, req.params["folder"])
        coll, _ = archives.item(box.user, req.params["item"])
        if coll != f"ai:{req.params['folder']}":
            raise not_found_mail()
        w.store.write(w.now(), [(coll, req.params["item"], None, None)])
        return Resp(204)

    @router.route("POST", "admin/exchange/mailboxes/{mbx}/exportItems")
    def export_items(req: Req) -> Resp:
        box = archive_box(req)
        wanted = req.json_object().get("itemIds")
        if not isinstance(wanted, list) or not wanted or not all(isinstance(i, str) for i in wanted):
            raise GraphError(400, "ErrorInvalidRequest", "itemIds must be a non-empty list of item ids.")
        if len(wanted) > MAX_EXPORT:
            raise GraphError(
                400, "ErrorInvalidRequest", f"At most {MAX_EXPORT} items can be exported at once."
            )
        out = []
        for item_id in wanted:
            try:
                _, state = archives.item(box.user, item_id)
            except GraphError as exc:
                out.append({"itemId": item_id, "error": {"code": exc.code, "message": exc.message}})
                continue
            data = base64.b64encode(archives.stream(state)).decode()
            out.append({"itemId": item_id, "changeKey": state["changeKey"], "data": data})
        context = f"{req.graph_base}/$metadata#Collection(microsoft.graph.exportItemResponse)"
        return Resp(200, {"@odata.context": context, "value": out})

    @router.route("POST", "admin/exchange/mailboxes/{mbx}/createImportSession")
    def create_import_session(req: Req) -> Resp:
        _require_beta(req)
        box = archives.mailbox(req.params["mbx"])
        url, expires = archives.import_url(req, box)
        context = f"{req.graph_base}/$metadata#microsoft.graph.mailboxItemImportSession"
        return Resp(201, {"@odata.context": context, "importUrl": url, "expirationDateTime": iso(expires)})
