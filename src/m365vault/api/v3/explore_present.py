"""Output shapes of the explore trees (v3 §8 to §10) and their page objects.

Links are absolute with lower-case literal segments; element ids keep their case (Exchange ids are
case-sensitive base64), so these links are built here rather than with `Links.href`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request

from m365vault.api.wire import Links
from m365vault.catalog import ObjectInfo, VersionInfo
from m365vault.restore.explore import Listing, object_wire_id


class TreeLinks:
    def __init__(self, links: Links, session_id: object) -> None:
        self.root = f"{links.base}/restoresessions/{str(session_id).lower()}/organization"

    def href(self, *parts: str | tuple[str]) -> str:
        """Literal parts are lower-cased; ids (given as 1-tuples) are kept and quoted."""
        out = [self.root]
        for part in parts:
            out.append(quote(part[0], safe="") if isinstance(part, tuple) else part.lower())
        return "/".join(out)

    def link(self, *parts: str | tuple[str], query: str = "") -> dict[str, str]:
        return {"href": self.href(*parts) + query}


def explore_page(
    request: Request, listing: Listing[Any], results: Sequence[Any], offset: int, limit: int
) -> dict[str, Any]:
    """The page object, with first/prev/self/next links (query values keep their case)."""

    def at(off: int) -> dict[str, str]:
        url = request.url.include_query_params(offset=off, limit=limit)
        return {
            "href": f"{url.scheme}://{url.netloc}{url.path}".lower() + (f"?{url.query}" if url.query else "")
        }

    links: dict[str, Any] = {"first": at(0)}
    if offset > 0:
        links["prev"] = at(max(0, offset - limit))
    links["self"] = at(offset)
    if listing.has_more:
        links["next"] = at(offset + limit)
    return {"offset": offset, "limit": limit, "results": list(results), "_links": links}


def _join(values: Sequence[str] | None) -> str | None:
    return "; ".join(values) if values else None


def _extra(version: VersionInfo, *names: str) -> Any:
    extras = version.metadata.extras or {}
    for name in names:
        if extras.get(name) is not None:
            return extras[name]
    return None


# ---------------------------------------------------------------------------------------------- Vex
def mailbox(obj: ObjectInfo, t: TreeLinks) -> dict[str, Any]:
    mid = (object_wire_id(obj),)
    return {
        "id": mid[0],
        "name": obj.name,
        "email": obj.email,
        "isArchive": obj.kind.value == "archive",
        "isDeleted": True if obj.gone_at is not None else None,
        "_links": {
            "self": t.link("mailboxes", mid),
            "folders": t.link("mailboxes", mid, "folders", query="?parentId=null"),
            "allfolders": t.link("mailboxes", mid, "folders"),
            "items": t.link("mailboxes", mid, "items"),
        },
    }


def mail_folder(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    mid, fid = (object_wire_id(obj),), (wire_id,)
    parent = t.link("mailboxes", mid, "folders", (v.parent_external_id,)) if v.parent_external_id else None
    return {
        "id": wire_id,
        "name": v.metadata.name,
        "type": v.metadata.item_class or _extra(v, "type") or "Mail",
        "category": _extra(v, "category", "wellKnownName"),
        "description": _extra(v, "description"),
        "isDeleted": True if v.is_deleted and v.gone_at is not None else None,
        "_links": {
            "self": t.link("mailboxes", mid, "folders", fid),
            "mailbox": t.link("mailboxes", mid),
            "parent": parent,
            "folders": t.link("mailboxes", mid, "folders", query=f"?parentId={quote(wire_id, safe='')}"),
            "items": t.link("mailboxes", mid, "items", query=f"?folderId={quote(wire_id, safe='')}"),
        },
    }


MAIL_ITEM_ACTIONS = (
    "savetoMsg",
    "saveToEml",
    "exportToMbox",
    "sendtoDefaultAddress",
    "sendtoDifferentAddress",
    "restoretoOriginallocation",
    "restoreTo",
    "exporttoPst",
)


def mail_item(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    mid, iid = (object_wire_id(obj),), (wire_id,)
    meta = v.metadata
    item_class = meta.item_class or "IPM.Note"
    out: dict[str, Any] = {"id": wire_id, "itemClass": item_class, "subject": meta.subject}
    family = item_class.split(".")[1].casefold() if "." in item_class else "note"
    if family == "appointment" or family == "schedule":
        out.update(
            organizer=_extra(v, "organizer") or meta.sender,
            attendees=_extra(v, "attendees") or _join(meta.to),
            location=_extra(v, "location"),
            startTime=_extra(v, "startTime", "start"),
            endTime=_extra(v, "endTime", "end"),
            recurring=bool(_extra(v, "recurring", "isRecurring")),
            recurrencePatternFormat=_extra(v, "recurrencePatternFormat"),
        )
    elif family == "contact" or family == "distlist":
        for name in (
            "fullName",
            "company",
            "jobTitle",
            "email",
            "businessPhone",
            "mobilePhone",
            "homePhone",
            "businessAddress",
            "homeAddress",
            "webPage",
            "birthday",
            "fileAs",
            "notes",
        ):
            out[name] = _extra(v, name)
        out["fullName"] = out["fullName"] or meta.name or meta.subject
    else:
        out.update(
            {
                "from": meta.sender,
                "to": _join(meta.to),
                "cc": _join(meta.cc),
                "bcc": _join(_extra(v, "bcc")),
                "sent": meta.sent_at,
                "received": meta.received_at,
                "reminder": _extra(v, "reminder"),
                "importance": _extra(v, "importance") or "Normal",
                "attachments": _extra(v, "attachments") or [],
            }
        )
    out["isDeleted"] = True if v.is_deleted and v.gone_at is not None else None
    parent = t.link("mailboxes", mid, "folders", (v.parent_external_id,)) if v.parent_external_id else None
    out["_links"] = {
        "self": t.link("mailboxes", mid, "items", iid),
        "parent": parent,
        "mailbox": t.link("mailboxes", mid),
    }
    out["_actions"] = {
        name: {"uri": t.href("mailboxes", mid, "items", iid, "action"), "method": "POST"}
        for name in MAIL_ITEM_ACTIONS
    }
    return out


# ---------------------------------------------------------------------------------------------- Veod / Vesp
def onedrive(obj: ObjectInfo, t: TreeLinks) -> dict[str, Any]:
    oid = (obj.external_id,)
    return {
        "id": obj.external_id,
        "name": obj.name,
        "url": obj.url,
        "isDeleted": True if obj.gone_at is not None else None,
        "_links": {
            "self": t.link("onedrives", oid),
            "folders": t.link("onedrives", oid, "folders", query="?parentId=null"),
            "allfolders": t.link("onedrives", oid, "folders"),
            "documents": t.link("onedrives", oid, "documents"),
        },
    }


def _file_fields(wire_id: str, v: VersionInfo) -> dict[str, Any]:
    meta = v.metadata
    return {
        "id": wire_id,
        "name": meta.name,
        "createdBy": _extra(v, "createdBy"),
        "creationTime": _extra(v, "creationTime", "createdDateTime"),
        "modifiedBy": _extra(v, "modifiedBy"),
        "modificationTime": meta.modified_at,
        "isDeleted": True if v.is_deleted and v.gone_at is not None else None,
    }


def drive_folder(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    oid = (obj.external_id,)
    q = f"?parentId={quote(wire_id, safe='')}"
    parent = t.link("onedrives", oid, "folders", (v.parent_external_id,)) if v.parent_external_id else None
    return {
        **_file_fields(wire_id, v),
        "_links": {
            "self": t.link("onedrives", oid, "folders", (wire_id,)),
            "onedrive": t.link("onedrives", oid),
            "parent": parent,
            "folders": t.link("onedrives", oid, "folders", query=q),
            "documents": t.link("onedrives", oid, "documents", query=q),
        },
    }


def drive_document(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    oid = (obj.external_id,)
    parent = t.link("onedrives", oid, "folders", (v.parent_external_id,)) if v.parent_external_id else None
    return {
        **_file_fields(wire_id, v),
        "sizeBytes": v.metadata.size,
        "version": _extra(v, "version"),
        "_links": {
            "self": t.link("onedrives", oid, "documents", (wire_id,)),
            "onedrive": t.link("onedrives", oid),
            "parent": parent,
        },
    }


def site(obj: ObjectInfo, t: TreeLinks) -> dict[str, Any]:
    sid = (obj.external_id,)
    return {
        "id": obj.external_id,
        "name": obj.name,
        "url": obj.url,
        "isDeleted": True if obj.gone_at is not None else None,
        "_links": {
            "self": t.link("sites", sid),
            "sites": t.link("sites", query=f"?parentId={quote(obj.external_id, safe='')}"),
            "libraries": t.link("sites", sid, "libraries"),
            "lists": t.link("sites", sid, "lists"),
        },
    }


def site_container(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks, kind: str) -> dict[str, Any]:
    sid = (obj.external_id,)
    q = f"?parentId={quote(wire_id, safe='')}"
    children = "documents" if kind == "libraries" else "items"
    return {
        "id": wire_id,
        "name": v.metadata.name,
        "url": _extra(v, "url", "webUrl"),
        "description": _extra(v, "description"),
        "creationTime": _extra(v, "creationTime", "createdDateTime"),
        "isDeleted": True if v.is_deleted and v.gone_at is not None else None,
        "_links": {
            "self": t.link("sites", sid, kind, (wire_id,)),
            "parent": t.link("sites", sid),
            "folders": t.link("sites", sid, "folders", query=q),
            children: t.link("sites", sid, children, query=q),
        },
    }


def site_folder(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    sid = (obj.external_id,)
    q = f"?parentId={quote(wire_id, safe='')}"
    folder_type = (
        v.metadata.item_class if v.metadata.item_class in ("ListFolder", "LibraryFolder") else "LibraryFolder"
    )
    children = "documents" if folder_type == "LibraryFolder" else "items"
    return {
        "type": folder_type,
        **_file_fields(wire_id, v),
        "_links": {
            "self": t.link("sites", sid, "folders", (wire_id,)),
            "folders": t.link("sites", sid, "folders", query=q),
            children: t.link("sites", sid, children, query=q),
            "parent": t.link("sites", sid, "folders", (v.parent_external_id,))
            if v.parent_external_id
            else None,
        },
    }


def site_item(obj: ObjectInfo, wire_id: str, v: VersionInfo, t: TreeLinks, kind: str) -> dict[str, Any]:
    sid = (obj.external_id,)
    out = {
        **_file_fields(wire_id, v),
        "title": v.metadata.subject or v.metadata.name,
        "version": _extra(v, "version"),
    }
    if kind == "documents":
        out["sizeBytes"] = v.metadata.size
    out["_links"] = {
        "self": t.link("sites", sid, kind, (wire_id,)),
        "parent": t.link("sites", sid, "folders", (v.parent_external_id,)) if v.parent_external_id else None,
        "list" if kind == "items" else "library": t.link("sites", sid),
    }
    return out
