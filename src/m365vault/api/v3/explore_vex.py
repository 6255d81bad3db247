"""The Exchange explore tree: /v3/RestoreSessions/{id}/Organization (+ Mailboxes, Folders, Items)
and its actions (v3 §8)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.v3.explore_actions import MAIL_ACTIONS, ParsedAction, body_schema, parse
from m365vault.api.v3.explore_common import (
    Acting,
    ActingDep,
    BrowsingDep,
    download_response,
    need,
    pst_response,
    stats_response,
)
from m365vault.api.v3.explore_present import mail_folder, mail_item, mailbox
from m365vault.api.v3.explore_routes import (
    Check,
    ExploreTree,
    P,
    by_folder,
    container,
    listed,
    one_element,
    whole_object,
)
from m365vault.api.v3.models import ERROR_RESPONSES
from m365vault.api.wire import empty_response, json_response, timestamp
from m365vault.catalog import EntryKind
from m365vault.control.enums import RestoreSessionType
from m365vault.control.restore_actions import MailRestoreRequest, Selection, SendRequest
from m365vault.restore.writeback import MailOptions

router = APIRouter(tags=["Explore: Exchange"], responses=ERROR_RESPONSES)
VEX = RestoreSessionType.Vex
ALL_MAIL_ACTIONS = tuple(MAIL_ACTIONS)
READABLE_OUTPUTS = frozenset(
    {
        "exporttoPst",
        "exportToMbox",
        "saveToEml",
        "savetoMsg",
        "sendtoDefaultAddress",
        "sendtoDifferentAddress",
    }
)


@router.get(P, tags=["Explore"], summary="The organization as backed up at the session's point in time")
def organization(session: BrowsingDep) -> Response:
    tree = session.tree(None)
    t = session.tree_links()
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
    session: Acting, parsed: ParsedAction, selection: Selection, what: str, check: Check | None = None
) -> Response:
    tree = await session.tree(VEX)
    actions = session.actions
    if selection.object_id is not None:
        await run_in_threadpool(tree.object, selection.object_id)
    if check is not None:
        await run_in_threadpool(check, tree)
    title = _title(parsed, what)
    name = parsed.name
    if name in READABLE_OUTPUTS:
        await run_in_threadpool(actions.refuse_archive_output, tree, selection)
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
async def organization_action(request: Request, session: ActingDep) -> Response:
    allowed = ("exporttoPst", "exportToMbox", "savetoMsg", "saveToEml", "restoretoOriginallocation")
    parsed = parse(await request.body(), MAIL_ACTIONS, allowed)
    return await _run(session, parsed, Selection(), "the organization")


MAILBOX = "/Mailboxes/{mailboxId}"
exchange = ExploreTree(router, VEX, _run, MAIL_ACTIONS)
exchange.object_page("/Mailboxes", mailbox, name="mailboxes", summary="Backed-up mailboxes (page object)")
exchange.one_object(MAILBOX, "mailboxId", mailbox, name="get_mailbox", summary="One mailbox")
exchange.action(
    MAILBOX + "/Action",
    ("mailboxId", None),
    ALL_MAIL_ACTIONS,
    whole_object,
    "a mailbox",
    name="mailbox_action",
    summary="Action on a mailbox",
)
exchange.entry_page(
    MAILBOX + "/Folders",
    "mailboxId",
    EntryKind.FOLDER,
    mail_folder,
    name="folders",
    summary="Folders (page object); ?parentId=<id|null>",
)
exchange.one_entry(
    MAILBOX + "/Folders/{folderId}",
    ("mailboxId", "folderId"),
    EntryKind.FOLDER,
    mail_folder,
    name="get_folder",
    summary="One folder",
)
exchange.action(
    MAILBOX + "/Folders/{folderId}/Action",
    ("mailboxId", "folderId"),
    ALL_MAIL_ACTIONS,
    container,
    "a folder",
    name="folder_action",
    summary="Action on a folder",
    exists=EntryKind.FOLDER,
)
exchange.entry_page(
    MAILBOX + "/Items",
    "mailboxId",
    EntryKind.ITEM,
    mail_item,
    name="items",
    summary="Items (page object); ?folderId=",
    parent=by_folder,
)
exchange.action(
    MAILBOX + "/Items/Action",
    ("mailboxId", None),
    ALL_MAIL_ACTIONS,
    listed,
    lambda parsed: f"{len(parsed.ids or ())} item(s)",
    name="items_action",
    summary="Action on several items",
    lists=("items",),
)
exchange.one_entry(
    MAILBOX + "/Items/{itemId}",
    ("mailboxId", "itemId"),
    EntryKind.ITEM,
    mail_item,
    name="get_item",
    summary="One item",
)
exchange.action(
    MAILBOX + "/Items/{itemId}/Action",
    ("mailboxId", "itemId"),
    ALL_MAIL_ACTIONS,
    one_element,
    "an item",
    name="item_action",
    summary="Action on one item",
)
