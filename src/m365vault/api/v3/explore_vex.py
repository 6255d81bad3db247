"""The Exchange explore tree: /v3/RestoreSessions/{id}/Organization (+ Mailboxes, Folders, Items)
and its actions (v3 §8)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import LinksDep
from m365vault.api.v3.explore_actions import MAIL_ACTIONS, ParsedAction, body_schema, parse
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
    pst_response,
    session_tree,
    session_tree_async,
    stats_response,
)
from m365vault.api.v3.explore_present import TreeLinks, explore_page, mail_folder, mail_item, mailbox
from m365vault.api.v3.models import ERROR_RESPONSES
from m365vault.api.wire import empty_response, json_response, timestamp
from m365vault.catalog import EntryKind
from m365vault.control.enums import RestoreSessionType
from m365vault.control.explore import SessionTree
from m365vault.control.restore_actions import MailRestoreRequest, RestoreActions, Selection, SendRequest
from m365vault.restore.writeback import MailOptions

router = APIRouter(tags=["Explore: Exchange"], responses=ERROR_RESPONSES)
P = "/v3/RestoreSessions/{restoreSessionId}/Organization"
VEX = RestoreSessionType.Vex
ALL_MAIL_ACTIONS = tuple(MAIL_ACTIONS)


@router.get(P, tags=["Explore"], summary="The organization as backed up at the session's point in time")
def organization(
    restoreSessionId: uuid.UUID, explorer: ExplorerDep, links: LinksDep, principal: CurrentPrincipal
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, None)
    t = TreeLinks(links, restoreSessionId)
    child = {
        RestoreSessionType.Vex: "mailboxes",
        RestoreSessionType.Veod: "onedrives",
        RestoreSessionType.Vesp: "sites",
    }
    body = {
        "id": str(tree.organization_id),
        "name": f"{tree.organization_name} ({timestamp(tree.explorer.scope.at)})",
        "_links": {"self": t.link(), child[tree.type]: t.link(child[tree.type])},
    }
    if tree.type is VEX:
        body["_actions"] = {
            name: {"uri": t.href("action"), "method": "POST"}
            for name in ("exporttoPst", "exportToMbox", "savetoMsg")
        }
    return json_response(body)


def _title(action: ParsedAction, what: str) -> str:
    return f"{action.name} of {what}"


async def _run(
    request: Request,
    explorer: ExplorerDep,
    actions: RestoreActions,
    principal: CurrentPrincipal,
    session_id: uuid.UUID,
    parsed: ParsedAction,
    selection: Selection,
    what: str,
) -> Response:
    tree = await session_tree_async(explorer, principal, session_id, VEX)
    if selection.object_id is not None:
        await run_in_threadpool(tree.object, selection.object_id)
    title = _title(parsed, what)
    name = parsed.name
    if name == "exporttoPst":
        return pst_response()
    if name in ("exportToMbox", "saveToEml") or (name == "savetoMsg" and not _single(selection)):
        fmt = {"exportToMbox": "mbox", "saveToEml": "eml", "savetoMsg": "msg"}[name]
        return download_response(await actions.save_mail(tree, selection, fmt, title))
    if name == "savetoMsg":
        return download_response(await actions.save_one_msg(tree, selection, title))
    if name == "sendtoDefaultAddress":
        await actions.send_mail(tree, selection, SendRequest(), title)
        return empty_response()
    if name == "sendtoDifferentAddress":
        send = SendRequest(
            to=need(parsed.text("to"), "to", name),
            sender=parsed.text("from"),
            subject=parsed.text("subject"),
            text=parsed.text("text"),
        )
        await actions.send_mail(tree, selection, send, title)
        return empty_response()
    options = MailOptions(
        changed_items=parsed.flag("changeditems", True),
        deleted_items=parsed.flag("deleteditems", True),
        mark_unread=parsed.flag("markrestoredasunread", False),
    )
    if name == "restoretoOriginallocation":
        # The hold exclusions are read (a bad value is a 400) but exclude nothing: Recoverable
        # Items, where holds keep items, is not backed up.
        parsed.flag("excludeinplaceholditems", False)
        parsed.flag("excludelitigationholditems", False)
        options = replace(
            options,
            exclude_drafts=parsed.flag("excludedrafts", False),
            exclude_deleted_items=parsed.flag("excludedeleteditems", False),
        )
        request_ = MailRestoreRequest(in_place=True, options=options)
    else:
        request_ = MailRestoreRequest(
            in_place=False,
            mailbox=need(parsed.text("mailbox"), "mailbox", name),
            folder=parsed.text("folder"),
            options=options,
        )
    return stats_response(await actions.restore_mail(tree, selection, request_, title))


def _single(selection: Selection) -> bool:
    return selection.ids is not None and len(selection.ids) == 1


@router.post(P + "/Action", summary="Organization-wide action", openapi_extra=body_schema(ALL_MAIL_ACTIONS))
async def organization_action(
    restoreSessionId: uuid.UUID,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    allowed = ("exporttoPst", "exportToMbox", "savetoMsg", "saveToEml", "restoretoOriginallocation")
    parsed = parse(await request.body(), MAIL_ACTIONS, allowed)
    return await _run(
        request, explorer, actions, principal, restoreSessionId, parsed, Selection(), "the organization"
    )


@router.get(P + "/Mailboxes", summary="Backed-up mailboxes (page object)")
def mailboxes(
    restoreSessionId: uuid.UUID,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEX)
    listing = tree.objects(offset, limit)
    t = TreeLinks(links, restoreSessionId)
    return json_response(
        explore_page(request, listing, [mailbox(o, t) for o in listing.items], offset, limit)
    )


@router.get(P + "/Mailboxes/{mailboxId}", summary="One mailbox")
def get_mailbox(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEX)
    obj = tree.object(mailboxId)
    explorer.viewed(tree, obj)
    return json_response(mailbox(obj, TreeLinks(links, restoreSessionId)))


@router.post(
    P + "/Mailboxes/{mailboxId}/Action",
    summary="Action on a mailbox",
    openapi_extra=body_schema(ALL_MAIL_ACTIONS),
)
async def mailbox_action(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), MAIL_ACTIONS, ALL_MAIL_ACTIONS)
    selection = Selection(object_id=mailboxId)
    return await _run(request, explorer, actions, principal, restoreSessionId, parsed, selection, "a mailbox")


@router.get(P + "/Mailboxes/{mailboxId}/Folders", summary="Folders (page object); ?parentId=<id|null>")
def folders(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    parentid: ParentId = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEX)
    obj = tree.object(mailboxId)
    explorer.viewed(tree, obj)
    listing = tree.entries(obj, EntryKind.FOLDER, offset, limit, parent_filter(parentid))
    t = TreeLinks(links, restoreSessionId)
    results = [mail_folder(obj, wire, v, t) for wire, v in listing.items]
    return json_response(explore_page(request, listing, results, offset, limit))


@router.get(P + "/Mailboxes/{mailboxId}/Folders/{folderId}", summary="One folder")
def get_folder(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    folderId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEX)
    obj = tree.object(mailboxId)
    v = tree.entry(obj, (EntryKind.FOLDER,), folderId)
    return json_response(mail_folder(obj, folderId, v, TreeLinks(links, restoreSessionId)))


@router.post(
    P + "/Mailboxes/{mailboxId}/Folders/{folderId}/Action",
    summary="Action on a folder",
    openapi_extra=body_schema(ALL_MAIL_ACTIONS),
)
async def folder_action(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    folderId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), MAIL_ACTIONS, ALL_MAIL_ACTIONS)
    tree = await session_tree_async(explorer, principal, restoreSessionId, VEX)
    obj = await run_in_threadpool(tree.object, mailboxId)
    await run_in_threadpool(tree.entry, obj, (EntryKind.FOLDER,), folderId)
    selection = Selection(object_id=mailboxId, container_id=folderId)
    return await _run(request, explorer, actions, principal, restoreSessionId, parsed, selection, "a folder")


@router.get(P + "/Mailboxes/{mailboxId}/Items", summary="Items (page object); ?folderId=")
def items(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    request: Request,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    folderid: str | None = Query(None, description="Only the items of this folder"),
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_LIMIT,
) -> Response:
    tree: SessionTree = session_tree(explorer, principal, restoreSessionId, VEX)
    obj = tree.object(mailboxId)
    explorer.viewed(tree, obj)
    listing = tree.entries(obj, EntryKind.ITEM, offset, limit, parent_filter(folderid))
    t = TreeLinks(links, restoreSessionId)
    results = [mail_item(obj, wire, v, t) for wire, v in listing.items]
    return json_response(explore_page(request, listing, results, offset, limit))


@router.post(
    P + "/Mailboxes/{mailboxId}/Items/Action",
    summary="Action on several items",
    openapi_extra=body_schema(ALL_MAIL_ACTIONS),
)
async def items_action(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), MAIL_ACTIONS, ALL_MAIL_ACTIONS, lists=("items",), list_required=True)
    selection = Selection(object_id=mailboxId, ids=parsed.ids)
    what = f"{len(parsed.ids or ())} item(s)"
    return await _run(request, explorer, actions, principal, restoreSessionId, parsed, selection, what)


@router.get(P + "/Mailboxes/{mailboxId}/Items/{itemId}", summary="One item")
def get_item(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    itemId: str,
    explorer: ExplorerDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    tree = session_tree(explorer, principal, restoreSessionId, VEX)
    obj = tree.object(mailboxId)
    v = tree.entry(obj, (EntryKind.ITEM,), itemId)
    return json_response(mail_item(obj, itemId, v, TreeLinks(links, restoreSessionId)))


@router.post(
    P + "/Mailboxes/{mailboxId}/Items/{itemId}/Action",
    summary="Action on one item",
    openapi_extra=body_schema(ALL_MAIL_ACTIONS),
)
async def item_action(
    restoreSessionId: uuid.UUID,
    mailboxId: str,
    itemId: str,
    request: Request,
    explorer: ExplorerDep,
    actions: ActionsDep,
    principal: CurrentPrincipal,
) -> Response:
    parsed = parse(await request.body(), MAIL_ACTIONS, ALL_MAIL_ACTIONS)
    selection = Selection(object_id=mailboxId, ids=(itemId,))
    return await _run(request, explorer, actions, principal, restoreSessionId, parsed, selection, "an item")
