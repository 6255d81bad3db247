"""The OneDrive (Veod, v3 §9) and SharePoint (Vesp, v3 §10) explore trees and their actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import LinksDep
from m365vault.api.v3.explore_actions import (
    BULK_ONEDRIVE_ACTIONS,
    DOCUMENT_ACTIONS,
    ParsedAction,
    body_schema,
    parse,
)
from m365vault.api.v3.explore_common import (
    DEFAULT_PAGE_LIMIT,
    ActionsDep,
    ExplorerDep,
    Limit,
    Offset,
    ParentId,
    download_response,
    need,
    parent_filter,
    session_tree,
    session_tree_async,
    stats_response,
)
from m365vault.api.v3.explore_present import (
    TreeLinks,
    drive_document,
    drive_folder,
    explore_page,
    onedrive,
    site,
    site_container,
    site_folder,
    site_item,
)
from m365vault.api.v3.models import ERROR_RESPONSES
from m365vault.api.wire import BadInput, empty_response, json_response
from m365vault.catalog import EntryKind, ObjectInfo, VersionInfo
from m365vault.control.enums import RestoreSessionType
from m365vault.control.explore import RestoreExplorer, SessionTree
from m365vault.control.restore_actions import (
    DocumentRestoreRequest,
    OneDriveOutcome,
    RestoreActions,
    Selection,
    SendRequest,
)
from m365vault.restore.writeback import FileOptions, RestoreStats

router = APIRouter(responses=ERROR_RESPONSES)
P = "/v3/RestoreSessions/{restoreSessionId}/Organization"
VEOD, VESP = RestoreSessionType.Veod, RestoreSessionType.Vesp
VEOD_ACTIONS = ("save", "send", "restoretoOriginallocation", "copyTo")
VESP_ACTIONS = ("save", "send", "restoreTo")
VESP_RESTORE_ONLY = ("restoreTo",)
Present = Callable[[ObjectInfo, str, VersionInfo, TreeLinks], dict[str, Any]]


# ---------------------------------------------------------------------------------------------- shared
def _listing(
    request: Request,
    explorer: RestoreExplorer,
    principal: Any,
    session_id: uuid.UUID,
    kind: RestoreSessionType,
    object_id: str,
    entry: EntryKind,
    parent: str | None,
    offset: int,
    limit: int,
    present: Present,
    links: Any,
) -> Response:
    tree = session_tree(explorer, principal, session_id, kind)
    obj = tree.object(object_id)
    explorer.viewed(tree, obj)
    listing = tree.entries(obj, entry, offset, limit, parent_filter(parent))
    t = TreeLinks(links, session_id)
    top = _drive_top(tree, obj, kind)
    shown = [present(obj, w, top(v), t) for w, v in listing.items]
    return json_response(explore_page(request, listing, shown, offset, limit))


def _drive_top(
    tree: SessionTree, obj: ObjectInfo, kind: RestoreSessionType
) -> Callable[[VersionInfo], VersionInfo]:
    """Elements directly in a OneDrive's drive are at the top of the tree: the library entry the
    engine records for the drive itself is not a folder to link to as their parent."""
    root = tree.drive_root(obj) if kind is VEOD else None
    if root is None:
        return lambda v: v
    return lambda v: replace(v, parent_external_id=None) if v.parent_external_id == root else v


def _element(
    explorer: RestoreExplorer,
    principal: Any,
    session_id: uuid.UUID,
    kind: RestoreSessionType,
    object_id: str,
    kinds: tuple[EntryKind, ...],
    element_id: str,
    present: Present,
    links: Any,
) -> Response:
    tree = session_tree(explorer, principal, session_id, kind)
    obj = tree.object(object_id)
    v = _drive_top(tree, obj, kind)(tree.entry(obj, kinds, element_id))
    return json_response(present(obj, element_id, v, TreeLinks(links, session_id)))


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
    explorer: RestoreExplorer,
    actions: RestoreActions,
    principal: Any,
    session_id: uuid.UUID,
    kind: RestoreSessionType,
    parsed: ParsedAction,
    selection: Selection,
    what: str,
    check: Callable[[Any], object] | None = None,
) -> Response:
    tree = await session_tree_async(explorer, principal, session_id, kind)
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
@router.get(P + "/OneDrives", tags=["Explore: OneDrive"], summary="Backed-up OneDrives (page object)")
def onedrives(
    restoreSessionId: uuid.UUID,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEOD)
    listing = tree.objects(offset, limit)
    t = TreeLinks(links, restoreSessionId)
    return json_response(
        explore_page(request, listing, [onedrive(o, t) for o in listing.items], offset, limit)
    )


@router.post(
    P + "/OneDrives/Action",
    tags=["Explore: OneDrive"],
    summary="Bulk restore of whole OneDrives to their owners (per-OneDrive statistics)",
    openapi_extra=body_schema(tuple(BULK_ONEDRIVE_ACTIONS)),
)
async def onedrives_bulk_action(
    restoreSessionId: uuid.UUID,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(
        await request.body(),
        BULK_ONEDRIVE_ACTIONS,
        tuple(BULK_ONEDRIVE_ACTIONS),
        lists=("onedrives",),
        list_required=True,
    )
    assert parsed.ids is not None
    tree = await session_tree_async(explorer, principal, restoreSessionId, VEOD)
    options = _options(parsed)
    skip = parsed.flag("skipunresolved", False)
    title = f"{parsed.name} of {len(parsed.ids)} OneDrive(s)"
    outcomes = await actions.restore_onedrives(tree, parsed.ids, options, skip, title)
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


@router.get(P + "/OneDrives/{oneDriveId}", tags=["Explore: OneDrive"], summary="One OneDrive")
def get_onedrive(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEOD)
    obj = tree.object(oneDriveId)
    explorer.viewed(tree, obj)
    return json_response(onedrive(obj, TreeLinks(links, restoreSessionId)))


def _veod_lists(name: str) -> dict[str, Any]:
    return {"tags": ["Explore: OneDrive"], "summary": name, "openapi_extra": body_schema(VEOD_ACTIONS)}


@router.post(P + "/OneDrives/{oneDriveId}/Action", **_veod_lists("Action on a whole OneDrive"))
async def onedrive_action(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), DOCUMENT_ACTIONS, VEOD_ACTIONS)
    selection = Selection(object_id=oneDriveId)
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VEOD, parsed, selection, "a OneDrive"
    )


@router.get(P + "/OneDrives/{oneDriveId}/Folders", tags=["Explore: OneDrive"], summary="Folders; ?parentId=")
def drive_folders(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    parentid: ParentId = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    return _listing(
        request,
        explorer,
        principal,
        restoreSessionId,
        VEOD,
        oneDriveId,
        EntryKind.FOLDER,
        parentid,
        offset,
        limit,
        drive_folder,
        links,
    )


@router.post(P + "/OneDrives/{oneDriveId}/Folders/Action", **_veod_lists("Action on several folders"))
async def drive_folders_action(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(
        await request.body(), DOCUMENT_ACTIONS, VEOD_ACTIONS, lists=("folders",), list_required=True
    )
    selection = Selection(object_id=oneDriveId, folder_ids=parsed.folder_ids)
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VEOD, parsed, selection, "folders"
    )


@router.get(
    P + "/OneDrives/{oneDriveId}/Folders/{folderId}", tags=["Explore: OneDrive"], summary="One folder"
)
def drive_folder_one(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    folderId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    return _element(
        explorer,
        principal,
        restoreSessionId,
        VEOD,
        oneDriveId,
        (EntryKind.FOLDER,),
        folderId,
        drive_folder,
        links,
    )


@router.post(P + "/OneDrives/{oneDriveId}/Folders/{folderId}/Action", **_veod_lists("Action on a folder"))
async def drive_folder_action(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    folderId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), DOCUMENT_ACTIONS, VEOD_ACTIONS)
    selection = Selection(object_id=oneDriveId, folder_ids=(folderId,))
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VEOD, parsed, selection, "a folder"
    )


@router.get(
    P + "/OneDrives/{oneDriveId}/Documents", tags=["Explore: OneDrive"], summary="Documents; ?parentId="
)
def drive_documents(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    parentid: ParentId = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    return _listing(
        request,
        explorer,
        principal,
        restoreSessionId,
        VEOD,
        oneDriveId,
        EntryKind.DOCUMENT,
        parentid,
        offset,
        limit,
        drive_document,
        links,
    )


@router.post(P + "/OneDrives/{oneDriveId}/Documents/Action", **_veod_lists("Action on several documents"))
async def drive_documents_action(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(
        await request.body(),
        DOCUMENT_ACTIONS,
        VEOD_ACTIONS,
        lists=("documents", "folders"),
        list_required=True,
    )
    selection = Selection(object_id=oneDriveId, ids=parsed.ids, folder_ids=parsed.folder_ids)
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VEOD, parsed, selection, "documents"
    )


@router.get(
    P + "/OneDrives/{oneDriveId}/Documents/{documentId}", tags=["Explore: OneDrive"], summary="One document"
)
def drive_document_one(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    documentId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    return _element(
        explorer,
        principal,
        restoreSessionId,
        VEOD,
        oneDriveId,
        (EntryKind.DOCUMENT,),
        documentId,
        drive_document,
        links,
    )


@router.post(
    P + "/OneDrives/{oneDriveId}/Documents/{documentId}/Action", **_veod_lists("Action on a document")
)
async def drive_document_action(
    restoreSessionId: uuid.UUID,
    oneDriveId: str,
    documentId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), DOCUMENT_ACTIONS, VEOD_ACTIONS)
    selection = Selection(object_id=oneDriveId, ids=(documentId,))
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VEOD, parsed, selection, "a document"
    )


# ---------------------------------------------------------------------------------------------- Vesp
VESP_TAGS: list[str | Enum] = ["Explore: SharePoint"]


@router.get(P + "/Sites", tags=VESP_TAGS, summary="Backed-up sites (page object); ?parentId= for subsites")
def sites(
    restoreSessionId: uuid.UUID,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    parentid: ParentId = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VESP)
    # Without parentId: the top-level sites (subsites are reached through their parent).
    parent = parent_filter(parentid)
    listing = tree.objects(offset, limit, None if not isinstance(parent, str) else parent)
    t = TreeLinks(links, restoreSessionId)
    return json_response(explore_page(request, listing, [site(o, t) for o in listing.items], offset, limit))


@router.get(P + "/Sites/{siteId}", tags=VESP_TAGS, summary="One site")
def get_site(
    restoreSessionId: uuid.UUID,
    siteId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VESP)
    obj = tree.object(siteId)
    explorer.viewed(tree, obj)
    return json_response(site(obj, TreeLinks(links, restoreSessionId)))


def _vesp(name: str, allowed: tuple[str, ...] = VESP_ACTIONS) -> dict[str, Any]:
    return {"tags": VESP_TAGS, "summary": name, "openapi_extra": body_schema(allowed)}


@router.post(P + "/Sites/{siteId}/Action", **_vesp("Restore a site's content", VESP_RESTORE_ONLY))
async def site_action(
    restoreSessionId: uuid.UUID,
    siteId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), DOCUMENT_ACTIONS, VESP_RESTORE_ONLY)
    selection = Selection(object_id=siteId)
    return await _document_action(
        explorer, actions, principal, restoreSessionId, VESP, parsed, selection, "a site"
    )


def _container_routes(segment: str, kind: EntryKind) -> None:
    def present(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
        return site_container(obj, wire, v, t, segment.lower())

    @router.get(
        P + f"/Sites/{{siteId}}/{segment}",
        tags=VESP_TAGS,
        summary=f"{segment} (page object)",
        name=f"vesp_{segment}",
    )
    def listing(
        restoreSessionId: uuid.UUID,
        siteId: str,
        request: Request,
        explorer: ExplorerDep,
        links: LinksDep,
        principal: CurrentPrincipal,
        offset: Offset = 0,
        limit: Limit = DEFAULT_PAGE_LIMIT,
    ) -> Response:
        return _listing(
            request,
            explorer,
            principal,
            restoreSessionId,
            VESP,
            siteId,
            kind,
            None,
            offset,
            limit,
            present,
            links,
        )

    @router.get(
        P + f"/Sites/{{siteId}}/{segment}/{{elementId}}",
        tags=VESP_TAGS,
        summary=f"One of {segment}",
        name=f"vesp_{segment}_one",
    )
    def one(
        restoreSessionId: uuid.UUID,
        siteId: str,
        elementId: str,
        explorer: ExplorerDep,
        links: LinksDep,
        principal: CurrentPrincipal,
    ) -> Response:
        return _element(
            explorer, principal, restoreSessionId, VESP, siteId, (kind,), elementId, present, links
        )

    allowed = VESP_ACTIONS if kind is EntryKind.LIBRARY else VESP_RESTORE_ONLY

    @router.post(
        P + f"/Sites/{{siteId}}/{segment}/{{elementId}}/Action",
        **_vesp(f"Action on one of {segment}", allowed),
        name=f"vesp_{segment}_action",
    )
    async def action(
        restoreSessionId: uuid.UUID,
        siteId: str,
        elementId: str,
        request: Request,
        explorer: ExplorerDep,
        actions: ActionsDep,
        principal: CurrentPrincipal,
    ) -> Response:
        parsed = parse(await request.body(), DOCUMENT_ACTIONS, allowed)
        selection = Selection(object_id=siteId, container_id=elementId)

        def check(tree: Any) -> object:
            return tree.entry(tree.object(siteId), (kind,), elementId)

        return await _document_action(
            explorer,
            actions,
            principal,
            restoreSessionId,
            VESP,
            parsed,
            selection,
            segment[:-1].lower(),
            check,
        )


_container_routes("Lists", EntryKind.LIST)
_container_routes("Libraries", EntryKind.LIBRARY)


def _element_routes(
    segment: str, kind: EntryKind, present: Present, allowed: tuple[str, ...], lists: tuple[str, ...]
) -> None:
    @router.get(
        P + f"/Sites/{{siteId}}/{segment}",
        tags=VESP_TAGS,
        summary=f"{segment}; ?parentId=",
        name=f"vesp_{segment}",
    )
    def listing(
        restoreSessionId: uuid.UUID,
        siteId: str,
        request: Request,
        explorer: ExplorerDep,
        links: LinksDep,
        principal: CurrentPrincipal,
        parentid: ParentId = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_PAGE_LIMIT,
    ) -> Response:
        return _listing(
            request,
            explorer,
            principal,
            restoreSessionId,
            VESP,
            siteId,
            kind,
            parentid,
            offset,
            limit,
            present,
            links,
        )

    @router.post(
        P + f"/Sites/{{siteId}}/{segment}/Action",
        **_vesp(f"Action on several {segment}", allowed),
        name=f"vesp_{segment}_many",
    )
    async def many(
        restoreSessionId: uuid.UUID,
        siteId: str,
        request: Request,
        explorer: ExplorerDep,
        actions: ActionsDep,
        principal: CurrentPrincipal,
    ) -> Response:
        parsed = parse(await request.body(), DOCUMENT_ACTIONS, allowed, lists=lists, list_required=True)
        selection = Selection(object_id=siteId, ids=parsed.ids, folder_ids=parsed.folder_ids)
        return await _document_action(
            explorer, actions, principal, restoreSessionId, VESP, parsed, selection, segment.lower()
        )

    @router.get(
        P + f"/Sites/{{siteId}}/{segment}/{{elementId}}",
        tags=VESP_TAGS,
        summary=f"One of {segment}",
        name=f"vesp_{segment}_one",
    )
    def one(
        restoreSessionId: uuid.UUID,
        siteId: str,
        elementId: str,
        explorer: ExplorerDep,
        links: LinksDep,
        principal: CurrentPrincipal,
    ) -> Response:
        return _element(
            explorer, principal, restoreSessionId, VESP, siteId, (kind,), elementId, present, links
        )

    @router.post(
        P + f"/Sites/{{siteId}}/{segment}/{{elementId}}/Action",
        **_vesp(f"Action on one of {segment}", allowed),
        name=f"vesp_{segment}_action",
    )
    async def action(
        restoreSessionId: uuid.UUID,
        siteId: str,
        elementId: str,
        request: Request,
        explorer: ExplorerDep,
        actions: ActionsDep,
        principal: CurrentPrincipal,
    ) -> Response:
        parsed = parse(await request.body(), DOCUMENT_ACTIONS, allowed)
        if kind is EntryKind.FOLDER:
            selection = Selection(object_id=siteId, folder_ids=(elementId,))
        else:
            selection = Selection(object_id=siteId, ids=(elementId,))
        return await _document_action(
            explorer, actions, principal, restoreSessionId, VESP, parsed, selection, segment[:-1].lower()
        )


def _sp_item(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    return site_item(obj, wire, v, t, "items")


def _sp_document(obj: ObjectInfo, wire: str, v: VersionInfo, t: TreeLinks) -> dict[str, Any]:
    return site_item(obj, wire, v, t, "documents")


_element_routes("Folders", EntryKind.FOLDER, site_folder, VESP_ACTIONS, ("folders",))
_element_routes("Items", EntryKind.ITEM, _sp_item, VESP_RESTORE_ONLY, ("items",))
_element_routes("Documents", EntryKind.DOCUMENT, _sp_document, VESP_ACTIONS, ("documents", "folders"))
