"""Outlook mail: folders, messages, delta, MIME, attachments and the writes restore needs (§2.6, §3.2,
§3.3, §4.1, §4.2, §5.1, §5.2)."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import re
from collections.abc import Callable
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from m365vault.emulator import generate, ids
from m365vault.emulator.clock import iso, parse_iso
from m365vault.emulator.delta import View
from m365vault.emulator.errors import GraphError, not_found_mail
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.outlook import item_head
from m365vault.emulator.tenant import MAIL_FOLDERS, WELL_KNOWN, User
from m365vault.emulator.uploads import Uploads
from m365vault.emulator.world import World

MAX_BODY = 4 * 1024 * 1024
K_FOLDER, K_MESSAGE, K_NEW_FOLDER, K_NEW_MESSAGE, K_ATTACHMENT = 2, 1, 12, 11, 21
PATCHABLE = {
    "subject",
    "isRead",
    "categories",
    "flag",
    "importance",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "inferenceClassification",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "from",
    "sender",
}


def _addr_in(value: Any) -> dict[str, str]:
    inner = value.get("emailAddress", value) if isinstance(value, dict) else {}
    return {"name": str(inner.get("name") or ""), "address": str(inner.get("address") or "")}


def _addr_out(value: dict[str, Any]) -> dict[str, Any]:
    return {"emailAddress": {"name": value.get("name", ""), "address": value.get("address", "")}}


class Mail:
    def __init__(self, world: World, uploads: Uploads) -> None:
        self.w = world
        self.uploads = uploads
        uploads.committers["attachment"] = self._commit_attachment

    # ------------------------------------------------------------------ folders
    def folder_id(self, user: User, number: int) -> str:
        return ids.make(self.w.seed, "AQMk", K_FOLDER, user.index, number)

    def _base_folder_state(self, user: User, number: int) -> dict[str, Any]:
        f = MAIL_FOLDERS[number]
        return {
            "displayName": f.display_name,
            "isHidden": f.hidden,
            "_num": number,
            "parentFolderId": self.folder_id(user, f.parent) if f.parent is not None else None,
        }

    def folder(self, user: User, key: str) -> tuple[str, dict[str, Any]]:
        number = WELL_KNOWN.get(key.lower())
        fid = self.folder_id(user, number) if number is not None else key
        found = self.w.store.item(fid)
        if found is not None:
            coll, state = found
            if state is None or coll != f"mf:{user.index}":
                raise not_found_mail()
            return fid, state
        parsed = ids.parse(self.w.seed, "AQMk", fid)
        if (
            parsed
            and parsed[0] == K_FOLDER
            and parsed[1][0] == user.index
            and parsed[1][1] < len(MAIL_FOLDERS)
        ):
            return fid, self._base_folder_state(user, parsed[1][1])
        raise not_found_mail()

    def folders(self, user: User) -> list[tuple[str, dict[str, Any]]]:
        coll = f"mf:{user.index}"
        touched = self.w.store.touched_in(coll)
        out = [
            (self.folder_id(user, f.number), self._base_folder_state(user, f.number))
            for f in MAIL_FOLDERS[1:]
        ]
        out = [(i, s) for i, s in out if i not in touched]
        return out + list(self.w.store.live_in(coll))

    def folder_view(self, user: User) -> View:
        return View(
            f"mf:{user.index}",
            len(MAIL_FOLDERS) - 1,
            lambda i: self.folder_id(user, i + 1),
            lambda i: self._base_folder_state(user, i + 1),
        )

    def folder_json(
        self, user: User, fid: str, state: dict[str, Any], all_folders: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, Any]:
        view = self.message_view(user, fid, state)
        live, touched_base = self.w.store.count_live_and_touched_base(
            view.key, self.own_base(user, state, view)
        )
        total = view.base_count - touched_base + live
        return {
            "id": fid,
            "displayName": state["displayName"],
            "parentFolderId": state.get("parentFolderId"),
            "childFolderCount": sum(1 for _, s in all_folders if s.get("parentFolderId") == fid),
            "unreadItemCount": total // 3,
            "totalItemCount": total,
            "sizeInBytes": total * 12_000,
            "isHidden": bool(state.get("isHidden")),
        }

    # ------------------------------------------------------------------ messages
    def own_base(self, user: User, folder_state: dict[str, Any], view: View) -> Callable[[str], bool]:
        """Whether an id is one of the generated messages of this very folder."""
        number = folder_state.get("_num")

        def check(item_id: str) -> bool:
            parsed = ids.parse(self.w.seed, "AAMk", item_id)
            return (
                parsed is not None
                and parsed[0] == K_MESSAGE
                and parsed[1][:2] == (user.index, number)
                and parsed[1][2] < view.base_count
            )

        return check

    def message_view(self, user: User, fid: str, folder_state: dict[str, Any]) -> View:
        # Created folders have no generated messages (count 0, so number is never used for them).
        number = int(folder_state.get("_num", 0))
        count = self.w.tenant.folder_message_count(user, number) if "_num" in folder_state else 0

        def base_state(i: int) -> dict[str, Any]:
            return {**generate.message(self.w.tenant, user, number, fid, i), "_user": user.index}

        return View(
            f"m:{fid}",
            count,
            lambda i: ids.make(self.w.seed, "AAMk", K_MESSAGE, user.index, number, i),
            base_state,
        )

    def message(self, user: User, mid: str) -> tuple[str, dict[str, Any]]:
        """(collection, state) of a live message of this mailbox, or 404."""
        found = self.w.store.item(mid)
        if found is not None:
            coll, state = found
            if state is None or state.get("_user") != user.index:
                raise not_found_mail()
            return coll, state
        parsed = ids.parse(self.w.seed, "AAMk", mid)
        if parsed and parsed[0] == K_MESSAGE and parsed[1][0] == user.index:
            _, number, index = parsed[1]
            if number < len(MAIL_FOLDERS) and index < self.w.tenant.folder_message_count(user, number):
                fid = self.folder_id(user, number)
                return f"m:{fid}", {
                    **generate.message(self.w.tenant, user, number, fid, index),
                    "_user": user.index,
                }
        raise not_found_mail()

    def message_json(
        self, req: Req, mid: str, state: dict[str, Any], select: list[str] | None = None
    ) -> dict[str, Any]:
        wanted = {s.lower() for s in select or ()}
        if select and not wanted & {"body", "bodypreview"}:
            kind, content = "text", ""  # not asked for: skip generating the body
        else:
            kind, content = generate.body_of(state)
        if req.prefer("outlook.body-content-type") == "text" and kind == "html":
            kind, content = "text", _strip_html(content)
        preview = _strip_html(content)[:255] if kind == "html" else content[:255]
        return {
            **item_head("#microsoft.graph.message", mid, state),
            "categories": state.get("categories", []),
            "receivedDateTime": iso(state["receivedDateTime"]),
            "sentDateTime": iso(state["sentDateTime"]),
            "hasAttachments": bool(state.get("attachments")),
            "internetMessageId": state.get("internetMessageId"),
            "subject": state.get("subject", ""),
            "bodyPreview": preview.replace("\r\n", " "),
            "importance": state.get("importance", "normal"),
            "parentFolderId": state["parentFolderId"],
            "conversationId": state.get("conversationId"),
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": bool(state.get("isRead")),
            "isDraft": bool(state.get("isDraft")),
            "webLink": f"https://outlook.office365.com/owa/?ItemID={mid}&exvsurl=1&viewmodel=ReadMessageItem",
            "inferenceClassification": state.get("inferenceClassification", "focused"),
            "body": {"contentType": kind, "content": content},
            "sender": _addr_out(state["sender"]),
            "from": _addr_out(state["from"]),
            "toRecipients": [_addr_out(r) for r in state.get("toRecipients", [])],
            "ccRecipients": [_addr_out(r) for r in state.get("ccRecipients", [])],
            "bccRecipients": [_addr_out(r) for r in state.get("bccRecipients", [])],
            "replyTo": [_addr_out(r) for r in state.get("replyTo", [])],
            "flag": state.get("flag", {"flagStatus": "notFlagged"}),
        }

    def mime(self, state: dict[str, Any]) -> bytes:
        if state.get("_mime"):
            return self.w.store.blob_path(state["_mime"]).read_bytes()
        if state.get("_corpus"):
            return generate.corpus_bytes(state["_corpus"])
        return generate.build_mime(
            self.w.seed, state, [self.attachment_bytes(a) for a in state.get("attachments", [])]
        )

    def attachment_bytes(self, att: dict[str, Any]) -> bytes:
        ref = att["_content"]
        if "blob" in ref:
            return self.w.store.blob_path(ref["blob"]).read_bytes()
        return generate.content_bytes(self.w.seed, ref)

    def attachment_json(self, index: int, att: dict[str, Any], with_bytes: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": ids.make(self.w.seed, "AAMk", K_ATTACHMENT, index),
            "lastModifiedDateTime": "2025-12-01T00:00:00Z",
            "name": att["name"],
            "contentType": att["contentType"],
            "size": att["size"],
            "isInline": bool(att.get("isInline")),
            "contentId": att.get("contentId"),
        }
        if with_bytes:
            out["contentBytes"] = base64.b64encode(self.attachment_bytes(att)).decode()
        return out

    def write_message(self, user: User, coll: str, mid: str, state: dict[str, Any]) -> None:
        self.w.store.write(self.w.now(), [(coll, mid, state, state["parentFolderId"])])

    def new_message_id(self, user: User) -> str:
        return ids.make(self.w.seed, "AAMk", K_NEW_MESSAGE, user.index, self.w.store.counter("message"))

    def touch(self, state: dict[str, Any]) -> dict[str, Any]:
        now = self.w.now()
        version = hashlib.sha1(f"{state['changeKey']}:{now}".encode()).hexdigest()[:8]
        return {
            **state,
            "lastModifiedDateTime": now,
            "changeKey": generate.change_key(state["changeKey"], version),
        }

    def move(self, req: Req, user: User, mid: str, dest_key: str) -> tuple[str, dict[str, Any]]:
        coll, state = self.message(user, mid)
        dest_id, _dest_state = self.folder(user, dest_key)
        immutable = (req.prefer("IdType") or "").lower() == "immutableid"
        new_id = mid if immutable else self.new_message_id(user)
        new_state = self.touch({**state, "parentFolderId": dest_id})
        dest_coll = f"m:{dest_id}"
        if dest_coll == coll:
            return mid, state
        self.w.store.write(self.w.now(), [(coll, mid, None, None), (dest_coll, new_id, new_state, dest_id)])
        return new_id, new_state

    def create_message(self, req: Req, user: User, fid: str) -> tuple[str, dict[str, Any]]:
        if len(req.body) > MAX_BODY:
            raise GraphError(413, "RequestEntityTooLarge", "The maximum request length supported is 4MB.")
        ctype = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        now = self.w.now()
        if ctype == "text/plain":
            try:
                raw = base64.b64decode(req.body.strip(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise GraphError(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                    with_inner=False,
                ) from exc
            state = self._from_mime(raw, now)
        else:
            state = self._from_json(req.json_object(), now)
        mid = self.new_message_id(user)
        state.update(
            {
                "parentFolderId": fid,
                "_user": user.index,
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "changeKey": generate.change_key(mid, now),
            }
        )
        self.write_message(user, f"m:{fid}", mid, state)
        return mid, state

    def _from_mime(self, raw: bytes, now: float) -> dict[str, Any]:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if not msg.keys():
            raise GraphError(400, "ErrorMimeContentInvalid", "The MIME content is not a valid message.")

        def addrs(header: str) -> list[dict[str, str]]:
            return [
                {"name": n, "address": a} for n, a in getaddresses([str(v) for v in msg.get_all(header, [])])
            ]

        try:
            sent = parsedate_to_datetime(str(msg["Date"])).timestamp() if msg["Date"] else now
        except (TypeError, ValueError):
            sent = now
        body_part = msg.get_body(preferencelist=("html", "plain"))
        body = {"contentType": "text", "content": ""}
        if body_part is not None:
            body = {
                "contentType": "html" if body_part.get_content_type() == "text/html" else "text",
                "content": str(body_part.get_content()),
            }
        attachments = []
        for part in msg.iter_attachments():
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            attachments.append(
                {
                    "name": part.get_filename() or "attachment",
                    "contentType": part.get_content_type(),
                    "size": len(data),
                    "isInline": part.get_content_disposition() == "inline",
                    "contentId": part.get("Content-ID"),
                    "_content": {"blob": self.w.store.put_blob(data)},
                }
            )
        frm = addrs("From") or [{"name": "", "address": ""}]
        return {
            "subject": str(msg["Subject"] or ""),
            "from": frm[0],
            "sender": (addrs("Sender") or frm)[0],
            "toRecipients": addrs("To"),
            "ccRecipients": addrs("Cc"),
            "bccRecipients": addrs("Bcc"),
            "replyTo": addrs("Reply-To"),
            "receivedDateTime": sent,
            "sentDateTime": sent,
            "isRead": True,
            "isDraft": True,
            "importance": str(msg.get("Importance", "normal")).lower(),
            "categories": [],
            "flag": {"flagStatus": "notFlagged"},
            "body": body,
            "internetMessageId": str(msg["Message-ID"] or "") or None,
            "conversationId": None,
            "attachments": attachments,
            "_mime": self.w.store.put_blob(raw),
        }

    def _from_json(self, data: dict[str, Any], now: float) -> dict[str, Any]:
        _check_message_shape(data)
        props = {
            p.get("id", "").lower().replace(" ", ""): p.get("value")
            for p in data.get("singleValueExtendedProperties", [])
            if isinstance(p, dict)
        }
        is_draft = True
        if "integer0x0e07" in props:
            try:
                is_draft = bool(int(str(props["integer0x0e07"])) & 0x8)
            except ValueError as exc:
                raise GraphError(
                    400, "ErrorInvalidProperty", "PidTagMessageFlags must be an integer."
                ) from exc
        sent = parse_iso(str(props["systemtime0x0039"])) if "systemtime0x0039" in props else now
        received = parse_iso(str(props["systemtime0x0e06"])) if "systemtime0x0e06" in props else now
        frm = _addr_in(data.get("from") or {})
        body = data.get("body") or {"contentType": "text", "content": ""}
        return {
            "subject": str(data.get("subject") or ""),
            "from": frm,
            "sender": _addr_in(data.get("sender") or frm),
            **{
                k: [_addr_in(r) for r in data.get(k, [])]
                for k in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo")
            },
            "receivedDateTime": received,
            "sentDateTime": sent,
            "isRead": bool(data.get("isRead", False)),
            "isDraft": is_draft,
            "importance": data.get("importance", "normal"),
            "categories": list(data.get("categories", [])),
            "flag": data.get("flag") or {"flagStatus": "notFlagged"},
            "body": {
                "contentType": str(body.get("contentType", "text")).lower(),
                "content": body.get("content", ""),
            },
            "internetMessageId": data.get("internetMessageId")
            or f"<{hashlib.sha1(str(now).encode()).hexdigest()[:20]}@{self.w.tenant.domain}>",
            "conversationId": None,
            "attachments": [],
        }

    def _commit_attachment(self, req: Req, target: dict[str, Any], data: bytes) -> Resp:
        user = self.w.mailbox_user(target["user"])
        coll, state = self.message(user, target["message"])
        att = {
            "name": target["name"],
            "contentType": target.get("contentType") or "application/octet-stream",
            "size": len(data),
            "isInline": bool(target.get("isInline")),
            "contentId": target.get("contentId"),
            "_content": {"blob": self.w.store.put_blob(data)},
        }
        state = self.touch(
            {**state, "attachments": [*state.get("attachments", []), att], "_mime": None, "_corpus": None}
        )
        self.write_message(user, coll, target["message"], state)
        aid = ids.make(self.w.seed, "AAMk", K_ATTACHMENT, len(state["attachments"]) - 1)
        return Resp(
            201,
            headers={
                "Location": f"{req.graph_base}/users/{user.id}/messages/{target['message']}/attachments/{aid}"
            },
        )


_SHAPES: dict[str, type | tuple[type, ...]] = {
    "subject": str,
    "isRead": bool,
    "categories": list,
    "flag": dict,
    "importance": str,
    "body": dict,
    "toRecipients": list,
    "ccRecipients": list,
    "bccRecipients": list,
    "replyTo": list,
    "inferenceClassification": str,
    "isDeliveryReceiptRequested": bool,
    "isReadReceiptRequested": bool,
    "from": dict,
    "sender": dict,
    "singleValueExtendedProperties": list,
    "internetMessageId": str,
}


def _check_message_shape(data: dict[str, Any]) -> None:
    """400 ErrorInvalidProperty for a property of the wrong JSON type (nothing is written)."""
    for key, value in data.items():
        want = _SHAPES.get(key)
        if want is not None and value is not None and not isinstance(value, want):
            raise GraphError(
                400, "ErrorInvalidProperty", f"The value of property '{key}' has the wrong type."
            )
        if (
            isinstance(value, list)
            and key.endswith(("Recipients", "replyTo"))
            and not all(isinstance(r, dict) for r in value)
        ):
            raise GraphError(400, "ErrorInvalidProperty", f"'{key}' must be a list of recipients.")
    if data.get("importance") not in (None, "low", "normal", "high"):
        raise GraphError(400, "ErrorInvalidProperty", "importance must be low, normal or high.")


_RECEIVED_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$", re.IGNORECASE)


def _delta_options(req: Req, kind: str) -> dict[str, Any]:
    """Query options of a first delta request; they are baked into every later token (§3.1)."""
    options: dict[str, Any] = {"select": req.query.get("$select"), "top": req.query.get("$top")}
    change_type = req.query.get("changeType")
    if change_type is not None:
        if change_type not in ("created", "updated", "deleted"):
            raise GraphError(400, "ErrorInvalidParameter", "changeType must be created, updated or deleted.")
        options["changeType"] = change_type
    flt = req.query.get("$filter")
    if flt is not None:
        match = _RECEIVED_FILTER.match(flt)
        if kind != "message" or not match:
            raise GraphError(
                400, "ErrorInvalidUrlQueryFilter", "Only receivedDateTime ge|gt is supported in delta."
            )
        try:
            options["after"] = parse_iso(match.group(2).strip("'"))
        except ValueError as exc:
            raise GraphError(
                400, "ErrorInvalidUrlQueryFilter", "The receivedDateTime value is not a date."
            ) from exc
        options["inclusive"] = match.group(1).lower() == "ge"
    return options


def _strip_html(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def _tombstone(mid: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.message", "id": mid, "@removed": {"reason": "deleted"}}


def register(router: Router, world: World, mail: Mail) -> None:  # noqa: C901, PLR0915 (one route table)
    w = world

    def folders_page(req: Req, user: User, parent: str, path: str) -> Resp:
        all_folders = mail.folders(user)
        hidden = req.query.get("includeHiddenFolders", "").lower() == "true"
        rows = [
            (i, s)
            for i, s in all_folders
            if s.get("parentFolderId") == parent and (hidden or not s.get("isHidden"))
        ]
        size, _ = w.page_size(req, 10, 1000, prefer=False)
        skip = int(req.query.get("$skip", "0") or 0)
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#users('{user.id}')/mailFolders",
            "value": [
                w.pick(mail.folder_json(user, i, s, all_folders), req.select())
                for i, s in rows[skip : skip + size]
            ],
        }
        if skip + size < len(rows):
            body["@odata.nextLink"] = w.link(req, path, **{**req.query, "$skip": str(skip + size)})
        return Resp(200, body)

    @router.route("GET", "users/{user}/mailFolders")
    def list_folders(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return folders_page(req, user, mail.folder_id(user, 0), f"/users/{user.id}/mailFolders")

    @router.route("GET", "users/{user}/mailFolders/{folder}/childFolders")
    def child_folders(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, _ = mail.folder(user, req.params["folder"])
        return folders_page(req, user, fid, f"/users/{user.id}/mailFolders/{fid}/childFolders")

    @router.route("GET", "users/{user}/mailFolders/{folder}")
    def get_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, state = mail.folder(user, req.params["folder"])
        return Resp(200, w.pick(mail.folder_json(user, fid, state, mail.folders(user)), req.select()))

    def create_folder(req: Req, user: User, parent: str) -> Resp:
        data = req.json_object()
        name = data.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise GraphError(400, "ErrorInvalidRequest", "displayName is required.")
        if any(
            s.get("parentFolderId") == parent and s["displayName"].lower() == name.lower()
            for _, s in mail.folders(user)
        ):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        fid = ids.make(w.seed, "AQMk", K_NEW_FOLDER, user.index, w.store.counter("folder"))
        state = {"displayName": name, "parentFolderId": parent, "isHidden": bool(data.get("isHidden", False))}
        w.store.write(w.now(), [(f"mf:{user.index}", fid, state, parent)])
        return Resp(201, mail.folder_json(user, fid, state, mail.folders(user)))

    @router.route("POST", "users/{user}/mailFolders")
    def post_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return create_folder(req, user, mail.folder_id(user, 0))

    @router.route("POST", "users/{user}/mailFolders/{folder}/childFolders")
    def post_child_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, _ = mail.folder(user, req.params["folder"])
        return create_folder(req, user, fid)

    @router.route("PATCH", "users/{user}/mailFolders/{folder}")
    def patch_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, state = mail.folder(user, req.params["folder"])
        data = req.json_object()
        if not isinstance(data.get("displayName"), str):
            raise GraphError(400, "ErrorInvalidRequest", "Only displayName can be updated.")
        state = {**state, "displayName": data["displayName"]}
        w.store.write(w.now(), [(f"mf:{user.index}", fid, state, state.get("parentFolderId"))])
        return Resp(200, mail.folder_json(user, fid, state, mail.folders(user)))

    @router.route("POST", "users/{user}/mailFolders/{folder}/move")
    def move_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, state = mail.folder(user, req.params["folder"])
        dest = req.json_object().get("destinationId")
        if not isinstance(dest, str):
            raise GraphError(400, "ErrorInvalidIdMalformed", "destinationId is required.")
        dest_id, _ = mail.folder(user, dest)
        if state.get("_num") is not None and MAIL_FOLDERS[state["_num"]].well_known:
            raise GraphError(403, "ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved.")
        ancestor: str | None = dest_id
        while ancestor:  # a folder cannot move under itself
            if ancestor == fid:
                raise GraphError(400, "ErrorMoveCopyFailed", "A folder cannot be moved into its own subtree.")
            ancestor = mail.folder(user, ancestor)[1].get("parentFolderId")
        if any(
            s.get("parentFolderId") == dest_id and s["displayName"].lower() == state["displayName"].lower()
            for i, s in mail.folders(user)
            if i != fid
        ):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        state = {**state, "parentFolderId": dest_id}
        w.store.write(w.now(), [(f"mf:{user.index}", fid, state, dest_id)])
        return Resp(201, mail.folder_json(user, fid, state, mail.folders(user)))

    @router.route("DELETE", "users/{user}/mailFolders/{folder}")
    def delete_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, state = mail.folder(user, req.params["folder"])
        if state.get("_num") is not None and MAIL_FOLDERS[state["_num"]].well_known:
            raise GraphError(
                403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
            )
        w.store.write(w.now(), [(f"mf:{user.index}", fid, None, None)])
        return Resp(204)

    def delta_response(
        req: Req, view: View, link_path: str, render: Any, tomb: Any, kind: str, is_base: Any = None
    ) -> Resp:
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        if req.query.get("$deltatoken", "").lower() == "latest":
            raise GraphError(400, "BadRequest", "Parameter 'DeltaToken' not supported for this request.")
        options = _delta_options(req, kind)
        payload, options = w.delta.resume_outlook(view, token, options)
        size, applied = w.delta_size(req, options, 10, prefer=True)
        page = w.delta.page(view, payload, size, options)
        items = page.items
        if options.get("after") is not None:  # $filter=receivedDateTime ge|gt (baked into the tokens)
            after, inclusive = float(options["after"]), bool(options.get("inclusive"))
            items = [
                (i, s)
                for i, s in items
                if s is None
                or s["receivedDateTime"] > after
                or (inclusive and s["receivedDateTime"] == after)
            ]
        change_type = options.get("changeType")
        if change_type and payload is not None and payload["m"] in ("d", "s"):
            since = int(payload["s"])

            def existed(item_id: str) -> bool:
                found, alive = w.store.state_at(view.key, item_id, since)
                return alive if found else bool(is_base and is_base(item_id))

            if change_type == "deleted":
                items = [(i, s) for i, s in items if s is None]
            else:
                want_new = change_type == "created"
                items = [(i, s) for i, s in items if s is not None and existed(i) != want_new]
        select = [s for s in (options.get("select") or "").split(",") if s] or None
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#Collection({kind})"}
        if page.next_token:
            body["@odata.nextLink"] = w.link(req, link_path, **{"$skiptoken": page.next_token})
        else:
            body["@odata.deltaLink"] = w.link(req, link_path, **{"$deltatoken": page.delta_token or ""})
        body["value"] = [w.pick(render(i, s, select), select) if s is not None else tomb(i) for i, s in items]
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if applied else {}
        return Resp(200, body, headers)

    @router.route("GET", "users/{user}/mailFolders/delta")
    def folder_delta(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])

        def render(fid: str, state: dict[str, Any], _select: Any) -> dict[str, Any]:
            return {
                "@odata.type": "#microsoft.graph.mailFolder",
                **mail.folder_json(user, fid, state, all_folders),
            }

        all_folders = mail.folders(user)
        return delta_response(
            req,
            mail.folder_view(user),
            f"/users/{user.id}/mailFolders/delta",
            render,
            lambda i: {
                "@odata.type": "#microsoft.graph.mailFolder",
                "id": i,
                "@removed": {"reason": "deleted"},
            },
            "mailFolder",
        )

    @router.route("GET", "users/{user}/mailFolders/{folder}/messages/delta")
    def message_delta(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, fstate = mail.folder(user, req.params["folder"])
        view = mail.message_view(user, fid, fstate)
        return delta_response(
            req,
            view,
            f"/users/{user.id}/mailFolders('{fid}')/messages/delta",
            lambda i, s, sel: mail.message_json(req, i, s, sel),
            _tombstone,
            "message",
            mail.own_base(user, fstate, view),
        )

    @router.route("GET", "users/{user}/mailFolders/{folder}/messages")
    def list_messages(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, fstate = mail.folder(user, req.params["folder"])
        view = mail.message_view(user, fid, fstate)
        size, _ = w.page_size(req, 10, 1000, prefer=True)
        skip = int(req.query.get("$skip", "0") or 0)
        touched = w.store.touched_in(view.key)
        items: list[tuple[str, dict[str, Any]]] = []
        index, seen = 0, 0
        while index < view.base_count and len(items) < size:  # base items first, then added ones
            item_id = view.base_id(index)
            if item_id not in touched:
                if seen >= skip:
                    items.append((item_id, view.base_state(index)))
                seen += 1
            index += 1
        more = index < view.base_count
        if len(items) < size:
            added = list(w.store.live_in(view.key))
            start = max(0, skip - seen)
            items.extend(added[start : start + size - len(items)])
            more = start + size - len(items) < len(added) or more
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#users('{user.id}')/mailFolders('{fid}')/messages",
            "value": [w.pick(mail.message_json(req, i, s, req.select()), req.select()) for i, s in items],
        }
        if more and items:
            body["@odata.nextLink"] = w.link(
                req,
                f"/users/{user.id}/mailFolders/{fid}/messages",
                **{**req.query, "$skip": str(skip + len(items))},
            )
        return Resp(200, body)

    @router.route("GET", "users/{user}/messages")
    def list_mailbox_messages(req: Req) -> Resp:
        """Every message of the mailbox, folder after folder (ids first; states only for the page)."""
        user = w.mailbox_user(req.params["user"])
        size, _ = w.page_size(req, 10, 1000, prefer=True)
        skip = int(req.query.get("$skip", "0") or 0)
        page: list[tuple[str, dict[str, Any]]] = []
        position = 0
        more = False
        for fid, fstate in mail.folders(user):
            view = mail.message_view(user, fid, fstate)
            touched = w.store.touched_in(view.key)
            live_base = [i for i in range(view.base_count) if view.base_id(i) not in touched]
            added = list(w.store.live_in(view.key))
            count = len(live_base) + len(added)
            if position + count <= skip:
                position += count
                continue
            for n in range(max(0, skip - position), count):
                if len(page) == size:
                    more = True
                    break
                if n < len(live_base):
                    page.append((view.base_id(live_base[n]), view.base_state(live_base[n])))
                else:
                    page.append(added[n - len(live_base)])
            position += count
            if more:
                break
        select = req.select()
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#users('{user.id}')/messages",
            "value": [w.pick(mail.message_json(req, i, s, select), select) for i, s in page],
        }
        if more:
            body["@odata.nextLink"] = w.link(
                req, f"/users/{user.id}/messages", **{**req.query, "$skip": str(skip + len(page))}
            )
        return Resp(200, body)

    @router.route("POST", "users/{user}/mailFolders/{folder}/messages")
    def create_in_folder(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        fid, _ = mail.folder(user, req.params["folder"])
        mid, state = mail.create_message(req, user, fid)
        return Resp(201, mail.message_json(req, mid, state))

    @router.route("POST", "users/{user}/messages")
    def create_draft(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        mid, state = mail.create_message(req, user, mail.folder_id(user, 2))
        return Resp(201, mail.message_json(req, mid, state))

    def one(req: Req) -> tuple[User, str, str, dict[str, Any]]:
        user = w.mailbox_user(req.params["user"])
        if "folder" in req.params:
            mail.folder(user, req.params["folder"])
        coll, state = mail.message(user, req.params["message"])
        return user, req.params["message"], coll, state

    def get_message(req: Req) -> Resp:
        _, mid, _, state = one(req)
        headers = {}
        if req.prefer("outlook.body-content-type"):
            headers["Preference-Applied"] = (
                f'outlook.body-content-type="{req.prefer("outlook.body-content-type")}"'
            )
        body = w.pick(mail.message_json(req, mid, state, req.select()), req.select())
        expand = req.query.get("$expand", "").lower()
        if expand == "attachments":
            body["attachments"] = [
                mail.attachment_json(i, a, True) for i, a in enumerate(state.get("attachments", []))
            ]
        elif expand:
            raise GraphError(400, "BadRequest", f"Expanding '{expand}' is not supported.")
        return Resp(200, body, headers)

    def get_mime(req: Req) -> Resp:
        _, _, _, state = one(req)
        return Resp(200, mail.mime(state), content_type="text/plain")

    def patch_message(req: Req) -> Resp:
        user, mid, coll, state = one(req)
        data = req.json_object()
        bad = set(data) - PATCHABLE
        if bad:
            raise GraphError(
                400, "ErrorInvalidPropertyRequest", f"Properties cannot be updated: {sorted(bad)}"
            )
        _check_message_shape(data)
        update = dict(data)
        if set(data) - {"isRead", "categories", "flag", "inferenceClassification"}:
            # MIME-visible properties changed: $value is generated from the item from now on.
            update["_mime"] = update["_corpus"] = None
        for key in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
            if key in update:
                update[key] = [_addr_in(r) for r in update[key]]
        for key in ("from", "sender"):
            if key in update:
                update[key] = _addr_in(update[key])
        if "body" in update:
            update["body"] = {
                "contentType": str(update["body"].get("contentType", "text")).lower(),
                "content": update["body"].get("content", ""),
            }
            state = {k: v for k, v in state.items() if k not in ("_paragraphs", "_bodyKind")}
            update["_mime"] = update["_corpus"] = None
        state = mail.touch({**state, **update})
        mail.write_message(user, coll, mid, state)
        return Resp(200, mail.message_json(req, mid, state))

    def delete_message(req: Req) -> Resp:
        _, mid, coll, _ = one(req)
        w.store.write(w.now(), [(coll, mid, None, None)])
        return Resp(204)

    def move_message(req: Req) -> Resp:
        user, mid, _, _ = one(req)
        dest = req.json_object().get("destinationId")
        if not isinstance(dest, str):
            raise GraphError(400, "ErrorInvalidIdMalformed", "destinationId is required.")
        new_id, state = mail.move(req, user, mid, dest)
        return Resp(201, mail.message_json(req, new_id, state))

    def list_attachments(req: Req) -> Resp:
        _, _, _, state = one(req)
        atts = [mail.attachment_json(i, a, True) for i, a in enumerate(state.get("attachments", []))]
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#Collection(attachment)",
                "value": [w.pick(a, req.select()) for a in atts],
            },
        )

    def attachment(req: Req) -> tuple[int, dict[str, Any]]:
        _, _, _, state = one(req)
        parsed = ids.parse(w.seed, "AAMk", req.params["attachment"])
        atts = state.get("attachments", [])
        if not parsed or parsed[0] != K_ATTACHMENT or parsed[1][0] >= len(atts):
            raise not_found_mail()
        return parsed[1][0], atts[parsed[1][0]]

    def get_attachment(req: Req) -> Resp:
        index, att = attachment(req)
        return Resp(200, w.pick(mail.attachment_json(index, att, True), req.select()))

    def get_attachment_value(req: Req) -> Resp:
        _, att = attachment(req)
        return Resp(200, mail.attachment_bytes(att), content_type=att["contentType"])

    def add_attachment(req: Req) -> Resp:
        user, mid, coll, state = one(req)
        if len(req.body) > MAX_BODY:
            raise GraphError(413, "RequestEntityTooLarge", "The maximum request length supported is 4MB.")
        data = req.json_object()
        if data.get("@odata.type") != "#microsoft.graph.fileAttachment":
            raise GraphError(400, "ErrorInvalidRequest", "Only #microsoft.graph.fileAttachment is supported.")
        try:
            raw = base64.b64decode(str(data.get("contentBytes", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GraphError(400, "ErrorInvalidRequest", "contentBytes is not valid base64.") from exc
        att = {
            "name": str(data.get("name") or "attachment"),
            "contentType": data.get("contentType") or "application/octet-stream",
            "size": len(raw),
            "isInline": bool(data.get("isInline")),
            "contentId": data.get("contentId"),
            "_content": {"blob": w.store.put_blob(raw)},
        }
        state = mail.touch(
            {**state, "attachments": [*state.get("attachments", []), att], "_mime": None, "_corpus": None}
        )
        mail.write_message(user, coll, mid, state)
        return Resp(201, mail.attachment_json(len(state["attachments"]) - 1, att, False))

    def attachment_session(req: Req) -> Resp:
        user, mid, _, _ = one(req)
        item = req.json_object().get("AttachmentItem") or {}
        if item.get("attachmentType", "file") != "file" or not isinstance(item.get("size"), int):
            raise GraphError(
                400, "ErrorInvalidRequest", "AttachmentItem with attachmentType file and size is required."
            )
        if item["size"] > 150 * 1024 * 1024:
            raise GraphError(400, "ErrorAttachmentSizeLimitExceeded", "Attachments are limited to 150 MB.")
        target = {
            "user": user.id,
            "message": mid,
            "name": item.get("name") or "attachment",
            "contentType": item.get("contentType"),
            "isInline": item.get("isInline"),
            "contentId": item.get("contentId"),
        }
        return Resp(201, mail.uploads.create(req, "attachment", int(item["size"]), target))

    for prefix in ("users/{user}/messages/{message}", "users/{user}/mailFolders/{folder}/messages/{message}"):
        router.add("GET", prefix, get_message)
        router.add("GET", prefix + "/$value", get_mime)
        router.add("PATCH", prefix, patch_message)
        router.add("DELETE", prefix, delete_message)
        router.add("POST", prefix + "/move", move_message)
        router.add("GET", prefix + "/attachments", list_attachments)
        router.add("POST", prefix + "/attachments", add_attachment)
        router.add("POST", prefix + "/attachments/createUploadSession", attachment_session)
        router.add("GET", prefix + "/attachments/{attachment}", get_attachment)
        router.add("GET", prefix + "/attachments/{attachment}/$value", get_attachment_value)
