"""The OneDrive (Veod, v3 §9) and SharePoint (Vesp, v3 §10) explore trees and their actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.v3.explore_actions import (
    BULK_ONEDRIVE_ACTIONS,
    DOCUMENT_ACTIONS,
    ParsedAction,
    body_schema,
    parse,
)
from m365vault.api.v3.explore_common import (
    Acting,
    ActingDep,
    ParentId,
    download_response,
    need,
    parent_filter,
    stats_response,
)
from m365vault.api.v3.explore_present import (
    TreeLinks,
    drive_document,
    drive_folder,
    onedrive,
    site,
    site_container,
    site_folder,
    site_item,
)
from m365vault.api.v3.explore_routes import (
    Check,
    ExploreTree,
    Ids,
    P,
    Present,
    container,
    everything,
    listed,
    one_element,
    one_folder,
    whole_object,
)
from m365vault.api.v3.models import ERROR_RESPONSES
from m365vault.api.wire import BadInput, empty_response, json_response
from m365vault.catalog import EntryKind, ObjectInfo, VersionInfo
from m365vault.control.enums import RestoreSessionType
from m365vault.control.explore import SessionTree
from m365vault.control.restore_actions import (
    DocumentRestoreRequest,
    OneDriveOutcome,
    Selection,
    SendRequest,
)
from m365vault.restore.writeback import FileOptions, RestoreStats

router = APIRouter(responses=ERROR_RESPONSES)
VEOD, VESP = RestoreSessionType.Veod, RestoreSessionType.Vesp
VEOD_ACTIONS = ("save", "send", "restoretoOriginallocation", "copyTo")
VESP_ACTIONS = ("save", "send", "restoreTo")
VESP_RESTORE_ONLY = ("restoreTo",)


# ---------------------------------------------------------------------------------------------- shared
def _drive_top(tree: SessionTree, obj: ObjectInfo) -> Callable[[VersionInfo], VersionInfo]:
    """Elements directly in a OneDrive's drive are at the top of the tree: the library entry the
    engine records for the drive itself is not a folder to link to as their parent."""
    root = tree.drive_root(obj)
    if root is None:
        return lambda v: v
    return lambda v: replace(v, parent_external_id=None) if v.parent_external_id == root else v


def _options(parsed: ParsedAction) -> FileOptions:
    version = parsed.choice("documentversion", ("all", "last"), "last")
    action = parsed.choice("documentaction", ("overwrite", "keep"), "overwrite")
    last = parsed.choice("documentlastversionaction", ("overwrite", "merge"), "overwrite")
    return FileOptions(
        all_versions=version == "all",
        overwrite=action == "overwrite" and last in ("overwrite", "merge"),
        changed_items=parsed.flag("changeditems", True),
        deleted_items=parsed.flag("deleteditems", True),
    )


async def _document_action(
    session: Acting,
    parsed: ParsedAction,
    selection: Selection,
    what: str,
    check: Check | None = None,
    *,
    kind: RestoreSessionType,
) -> Response:
    tree = await session.tree(kind)
    actions = session.actions
    await run_in_threadpool(tree.object, str(selection.object_id))
    if check is not None:
        await run_in_threadpool(check, tree)
    title = f"{parsed.name} of {what}"
    if parsed.name == "save":
        download = await run_in_threadpool(
            actions.save_documents, tree, selection, parsed.flag("aszip", False), title
        )
        return download_response(download)
    if parsed.name == "send":
        send = SendRequest(
            to=need(parsed.text("to"), "to", "send"),
            sender=parsed.text("from"),
            subject=parsed.text("subject"),
            text=parsed.text("text"),
        )
        await actions.send_documents(tree, selection, send, title)
        return empty_response()
    options = _options(parsed)
    if parsed.name == "restoretoOriginallocation":
        request = DocumentRestoreRequest(in_place=True, options=options)
    elif parsed.name == "copyTo":
        target = parsed.options.get("onedrive")
        target_id = (
            {str(k).casefold(): v for k, v in target.items()}.get("id")
            if isinstance(target, dict)
            else target
        )
        if not isinstance(target_id, str) or not target_id.strip():
            raise BadInput("'copyTo' needs 'onedrive': {\"id\": <user id>} naming the target OneDrive.")
        request = DocumentRestoreRequest(
            in_place=False,
            target_object=target_id.strip(),
            folder=parsed.text("folder") or "Restored",
            options=options,
        )
    else:  # Vesp restoreTo: back into their own site and library/list, or those `alias` / `list` name
        alias = (parsed.text("alias") or "").strip() or None
        library = (parsed.text("list") or "").strip() or None
        request = DocumentRestoreRequest(
            in_place=True, options=options, library=library, site_alias=alias, folder=parsed.text("folder")
        )
    return stats_response(await actions.restore_documents(tree, selection, request, title))


# ---------------------------------------------------------------------------------------------- Veod
ONEDRIVE = "/OneDrives/{oneDriveId}"
veod = ExploreTree(
    router, VEOD, partial(_document_action, kind=VEOD), DOCUMENT_ACTIONS, ["Explore: OneDrive"], _drive_top
)
veod.object_page("/OneDrives", onedrive, name="onedrives", summary="Backed-up OneDrives (page object)")


# Registered between the page of OneDrives and one OneDrive: the OpenAPI document keeps its order.
@router.post(
    P + "/OneDrives/Action",
    tags=["Explore: OneDrive"],
    summary="Bulk restore of whole OneDrives to their owners (per-OneDrive statistics)",
    openapi_extra=body_schema(tuple(BULK_ONEDRIVE_ACTIONS)),
)
async def onedrives_bulk_action(request: Request, session: ActingDep) -> Response:
    parsed = parse(
        await request.body(),
        BULK_ONEDRIVE_ACTIONS,
        tuple(BULK_ONEDRIVE_ACTIONS),
        lists=("onedrives",),
        list_required=True,
    )
    assert parsed.ids is not None
    tree = await session.tree(VEOD)
    options = _options(parsed)
    skip = parsed.flag("skipunresolved", False)
    title = f"{parsed.name} of {len(parsed.ids)} OneDrive(s)"
    outcomes = await session.actions.restore_onedrives(tree, parsed.ids, options, skip, title)
    return json_response(bulk_body(outcomes))


def bulk_body(outcomes: list[OneDriveOutcome]) -> dict[str, Any]:
    """Totals as the statistics body, and `oneDrives`: each OneDrive's own, or why it was skipped."""
    total = RestoreStats()
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        row: dict[str, Any] = {"id": o.id, "name": o.name}
        if o.stats is None:
            row.update(status="Unresolved", message=o.problem)
        else:
            row.update(status="Success" if not o.stats.failed else "Warning", **o.stats.as_v3())
            total.created += o.stats.created
            total.merged += o.stats.merged
            total.failed += o.stats.failed
            total.skipped += o.stats.skipped
        rows.append(row)
    return {**total.as_v3(), "oneDrives": rows}


veod.one_object(ONEDRIVE, "oneDriveId", onedrive, name="get_onedrive", summary="One OneDrive")
veod.action(
    ONEDRIVE + "/Action",
    ("oneDriveId", None),
    VEOD_ACTIONS,
    whole_object,
    "a OneDrive",
    name="onedrive_action",
    summary="Action on a whole OneDrive",
)


def _onedrive_elements(
    plural: str,
    singular: str,
    kind: EntryKind,
    present: Present,
    lists: tuple[str, ...],
    select_one: Callable[[Ids, ParsedAction], Selection],
) -> None:
    """A page of folders or documents, an action on several, one of them, an action on one."""
    segment = f"{ONEDRIVE}/{plural.capitalize()}"
    element = f"{singular}Id"
    veod.entry_page(
        segment,
        "oneDriveId",
        kind,
        present,
        name=f"drive_{plural}",
        summary=f"{plural.capitalize()}; ?parentId=",
    )
    veod.action(
        segment + "/Action",
        ("oneDriveId", None),
        VEOD_ACTIONS,
        listed,
        plural,
        name=f"drive_{plural}_action",
        summary=f"Action on several {plural}",
        lists=lists,
    )
    veod.one_entry(
        f"{segment}/{{{element}}}",
        ("oneDriveId", element),
        kind,
        present,
        name=f"drive_{singular}_one",
        summary=f"One {singular}",
    )
    veod.action(
        f"{segment}/{{{element}}}/Action",
        ("oneDriveId", element),
        VEOD_ACTIONS,
        select_one,
        f"a {singular}",
        name=f"drive_{singular}_action",
        summary=f"Action on a {singular}",
    )


_onedrive_elements("folders", "folder", EntryKind.FOLDER, drive_folder, ("folders",), one_folder)
_onedrive_elements(
    "documents", "document", EntryKind.DOCUMENT, drive_document, ("documents", "folders"), one_element
)


# ---------------------------------------------------------------------------------------------- Vesp
SITE = "/Sites/{siteId}"
vesp = ExploreTree(
    router, VESP, partial(_document_action, kind=VESP), DOCUMENT_ACTIONS, ["Explore: SharePoint"]
)


def _top_sites_or(parentid: ParentId = None) -> object:
    """Without parentId (or with `null`): the top-level sites; subsites are reached through their parent."""
    parent = parent_filter(parentid)
    return parent if isinstance(parent, str) else None


vesp.object_page(
    "/Sites",
    site,
    name="sites",
    summary="Backed-up sites (page object); ?parentId= for subsites",
    parent=_top_sites_or,
)
vesp.one_object(SITE, "siteId", site, name="get_site", summary="One site")
vesp.action(
    SITE + "/Action",
    ("siteId", None),
    VESP_RESTORE_ONLY,
    whole_object,
    "a site",
    name="site_action",
    summary="Restore a site's content",
)


def _container_routes(segment: str, kind: EntryKind) -> None:
    """Lists and libraries: a page of them, one of them, and restoring one."""

    def present(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
        return site_container(obj, wire, v, t, segment.lower())

    path = f"{SITE}/{segment}"
    ids = ("siteId", "elementId")
    vesp.entry_page(
        path,
        "siteId",
        kind,
        present,
        name=f"vesp_{segment}",
        summary=f"{segment} (page object)",
        parent=everything,
    )
    vesp.one_entry(
        path + "/{elementId}", ids, kind, present, name=f"vesp_{segment}_one", summary=f"One of {segment}"
    )
    vesp.action(
        path + "/{elementId}/Action",
        ids,
        VESP_ACTIONS if kind is EntryKind.LIBRARY else VESP_RESTORE_ONLY,
        container,
        segment[:-1].lower(),
        name=f"vesp_{segment}_action",
        summary=f"Action on one of {segment}",
        exists=kind,
    )


_container_routes("Lists", EntryKind.LIST)
_container_routes("Libraries", EntryKind.LIBRARY)


def _element_routes(
    segment: str, kind: EntryKind, present: Present, allowed: tuple[str, ...], lists: tuple[str, ...]
) -> None:
    """Folders, items and documents: a page of them, an action on several, one, an action on one."""
    path = f"{SITE}/{segment}"
    ids = ("siteId", "elementId")
    vesp.entry_page(path, "siteId", kind, present, name=f"vesp_{segment}", summary=f"{segment}; ?parentId=")
    vesp.action(
        path + "/Action",
        ("siteId", None),
        allowed,
        listed,
        segment.lower(),
        name=f"vesp_{segment}_many",
        summary=f"Action on several {segment}",
        lists=lists,
    )
    vesp.one_entry(
        path + "/{elementId}", ids, kind, present, name=f"vesp_{segment}_one", summary=f"One of {segment}"
    )
    vesp.action(
        path + "/{elementId}/Action",
        ids,
        allowed,
        one_folder if kind is EntryKind.FOLDER else one_element,
        segment[:-1].lower(),
        name=f"vesp_{segment}_action",
        summary=f"Action on one of {segment}",
    )


def _sp_item(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    return site_item(obj, wire, v, t, "items")


def _sp_document(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    return site_item(obj, wire, v, t, "documents")


_element_routes("Folders", EntryKind.FOLDER, site_folder, VESP_ACTIONS, ("folders",))
_element_routes("Items", EntryKind.ITEM, _sp_item, VESP_RESTORE_ONLY, ("items",))
_element_routes("Documents", EntryKind.DOCUMENT, _sp_document, VESP_ACTIONS, ("documents", "folders"))
