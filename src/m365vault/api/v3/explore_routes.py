"""The route shapes every explore tree repeats (v3 §8-10), written once.

Under /v3/RestoreSessions/{restoreSessionId}/Organization, Exchange, OneDrive and SharePoint each
have pages of objects (mailboxes, OneDrives, sites), one object, pages of entries (folders, items,
documents, lists, libraries), one entry, and actions on any of them. An `ExploreTree` adds such
routes to a router; the path parameter names stay the API's own (`oneDriveId`, `siteId`, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from m365vault.api.v3.explore_actions import ParsedAction, body_schema, parse
from m365vault.api.v3.explore_common import (
    DEFAULT_PAGE_LIMIT,
    Acting,
    ActingDep,
    BrowsingDep,
    Limit,
    Offset,
    ParentId,
    parent_filter,
)
from m365vault.api.v3.explore_present import TreeLinks, explore_page
from m365vault.api.wire import json_response
from m365vault.catalog import ANY_PARENT, EntryKind, ObjectInfo, VersionInfo
from m365vault.control.enums import RestoreSessionType
from m365vault.control.explore import SessionTree
from m365vault.control.restore_actions import Selection

P = "/v3/RestoreSessions/{restoreSessionId}/Organization"
PresentObject = Callable[[ObjectInfo, TreeLinks], dict[str, Any]]
Present = Callable[[ObjectInfo, str, VersionInfo, TreeLinks], dict[str, Any]]
Check = Callable[[SessionTree], object]
# (session, parsed action, selection, what it acts on, check) → the action's answer
Runner = Callable[[Acting, ParsedAction, Selection, str, Check | None], Awaitable[Response]]
# How an entry is shown: the version as stored, or adjusted for the tree (see explore_files).
View = Callable[[SessionTree, ObjectInfo], Callable[[VersionInfo], VersionInfo]]


@dataclass(frozen=True)
class Ids:
    """The ids a route's path names: the object (mailbox, OneDrive, site) and maybe one element."""

    object: str
    element: str = ""  # routes on the object itself name no element


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int


def paging(offset: Offset = 0, limit: Limit = DEFAULT_PAGE_LIMIT) -> Page:
    return Page(offset, limit)


def everything() -> object:
    """No parent filter on this listing: all of it, flat."""
    return ANY_PARENT


def by_parent(parentid: ParentId = None) -> object:
    return parent_filter(parentid)


def by_folder(folderid: str | None = Query(None, description="Only the items of this folder")) -> object:
    return parent_filter(folderid)


def _path_ids(object_param: str, element_param: str | None) -> Callable[..., Ids]:
    if element_param is None:

        def object_only(object_id: str = Path(alias=object_param)) -> Ids:
            return Ids(object_id)

        return object_only

    def object_and_element(
        object_id: str = Path(alias=object_param), element_id: str = Path(alias=element_param)
    ) -> Ids:
        return Ids(object_id, element_id)

    return object_and_element


# What an action applies to, from the path and the body.
def whole_object(ids: Ids, parsed: ParsedAction) -> Selection:
    return Selection(object_id=ids.object)


def listed(ids: Ids, parsed: ParsedAction) -> Selection:
    return Selection(object_id=ids.object, ids=parsed.ids, folder_ids=parsed.folder_ids)


def one_element(ids: Ids, parsed: ParsedAction) -> Selection:
    return Selection(object_id=ids.object, ids=(ids.element,))


def one_folder(ids: Ids, parsed: ParsedAction) -> Selection:
    return Selection(object_id=ids.object, folder_ids=(ids.element,))


def container(ids: Ids, parsed: ParsedAction) -> Selection:
    return Selection(object_id=ids.object, container_id=ids.element)


def as_stored(tree: SessionTree, obj: ObjectInfo) -> Callable[[VersionInfo], VersionInfo]:
    return lambda v: v


@dataclass(frozen=True)
class ExploreTree:
    """Adds one explore tree's routes (of one restore session type) to `router`."""

    router: APIRouter
    kind: RestoreSessionType
    run: Runner
    catalogue: dict[str, tuple[str, ...]]  # every action's options (explore_actions)
    tags: list[str | Enum] | None = None  # None: the router's own
    view: View = as_stored

    def object_page(
        self,
        segment: str,
        present: PresentObject,
        *,
        name: str,
        summary: str,
        parent: Callable[..., object] = everything,
    ) -> None:
        @self.router.get(P + segment, tags=self.tags, summary=summary, name=name)
        def endpoint(
            request: Request,
            session: BrowsingDep,
            within: object = Depends(parent),
            page: Page = Depends(paging),
        ) -> Response:
            listing = session.tree(self.kind).objects(page.offset, page.limit, within)
            t = session.tree_links()
            shown = [present(o, t) for o in listing.items]
            return json_response(explore_page(request, listing, shown, page.offset, page.limit))

    def one_object(
        self, segment: str, object_param: str, present: PresentObject, *, name: str, summary: str
    ) -> None:
        @self.router.get(P + segment, tags=self.tags, summary=summary, name=name)
        def endpoint(session: BrowsingDep, ids: Ids = Depends(_path_ids(object_param, None))) -> Response:
            tree = session.tree(self.kind)
            obj = tree.object(ids.object)
            session.explorer.viewed(tree, obj)
            return json_response(present(obj, session.tree_links()))

    def entry_page(
        self,
        segment: str,
        object_param: str,
        kind: EntryKind,
        present: Present,
        *,
        name: str,
        summary: str,
        parent: Callable[..., object] = by_parent,
    ) -> None:
        @self.router.get(P + segment, tags=self.tags, summary=summary, name=name)
        def endpoint(
            request: Request,
            session: BrowsingDep,
            ids: Ids = Depends(_path_ids(object_param, None)),
            within: object = Depends(parent),
            page: Page = Depends(paging),
        ) -> Response:
            tree = session.tree(self.kind)
            obj = tree.object(ids.object)
            session.explorer.viewed(tree, obj)
            listing = tree.entries(obj, kind, page.offset, page.limit, within)
            t = session.tree_links()
            view = self.view(tree, obj)
            shown = [present(obj, wire, view(v), t) for wire, v in listing.items]
            return json_response(explore_page(request, listing, shown, page.offset, page.limit))

    def one_entry(
        self,
        segment: str,
        params: tuple[str, str],
        kind: EntryKind,
        present: Present,
        *,
        name: str,
        summary: str,
    ) -> None:
        @self.router.get(P + segment, tags=self.tags, summary=summary, name=name)
        def endpoint(session: BrowsingDep, ids: Ids = Depends(_path_ids(*params))) -> Response:
            tree = session.tree(self.kind)
            obj = tree.object(ids.object)
            v = self.view(tree, obj)(tree.entry(obj, (kind,), ids.element))
            return json_response(present(obj, ids.element, v, session.tree_links()))

    def action(
        self,
        segment: str,
        params: tuple[str, str | None],
        allowed: tuple[str, ...],
        select: Callable[[Ids, ParsedAction], Selection],
        what: str | Callable[[ParsedAction], str],
        *,
        name: str,
        summary: str,
        lists: tuple[str, ...] = (),
        exists: EntryKind | None = None,
    ) -> None:
        """POST `segment` (an .../Action path). `lists`: the body must name elements (collections);
        `exists`: the path's element must be an entry of that kind before anything runs."""

        @self.router.post(
            P + segment, tags=self.tags, summary=summary, name=name, openapi_extra=body_schema(allowed)
        )
        async def endpoint(
            request: Request, session: ActingDep, ids: Ids = Depends(_path_ids(*params))
        ) -> Response:
            parsed = parse(
                await request.body(), self.catalogue, allowed, lists=lists, list_required=bool(lists)
            )
            check = None if exists is None else _entry_exists(ids, exists)
            title = what if isinstance(what, str) else what(parsed)
            return await self.run(session, parsed, select(ids, parsed), title, check)


def _entry_exists(ids: Ids, kind: EntryKind) -> Check:
    return lambda tree: tree.entry(tree.object(ids.object), (kind,), ids.element)
