"""What the explore-tree routes share: dependencies, the session tree, paging and the answers of
actions (statistics JSON, streamed downloads, 501 for PST)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import LinksDep
from m365vault.api.v3.explore_present import TreeLinks
from m365vault.api.wire import (
    DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
    BadInput,
    Links,
    json_response,
    message_response,
)
from m365vault.catalog import ANY_PARENT
from m365vault.control.enums import RestoreSessionType
from m365vault.control.errors import NotAvailable
from m365vault.control.explore import RestoreExplorer, SessionTree
from m365vault.control.restore_actions import RestoreActions
from m365vault.restore.formats.download import Download
from m365vault.restore.formats.pst import PST_EXPORT_STATUS, PST_EXPORT_UNAVAILABLE
from m365vault.restore.writeback import RestoreStats

OCTET_STREAM = "application/octet-stream"


def _explorer(request: Request) -> RestoreExplorer:
    explorer = getattr(request.app.state, "restore", None)
    if explorer is None:
        raise NotAvailable("Restore sessions cannot be browsed: the catalog and repositories are not wired.")
    return cast(RestoreExplorer, explorer)


def _actions(request: Request) -> RestoreActions:
    _explorer(request)
    return cast(RestoreActions, request.app.state.restore_actions)


ExplorerDep = Annotated[RestoreExplorer, Depends(_explorer)]
ActionsDep = Annotated[RestoreActions, Depends(_actions)]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Skip this many elements")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="Page size (default 30)")]
ParentId = Annotated[str | None, Query(alias="parentid", description="Parent id; `null` = the root")]
__all__ = ["DEFAULT_PAGE_LIMIT", "CurrentPrincipal", "Links"]


def parent_filter(value: str | None) -> str | object | None:
    """No parameter: everything (flat); `null` (any case) or empty: the root; else that container."""
    if value is None:
        return ANY_PARENT
    if not value.strip() or value.strip().casefold() == "null":
        return None
    return value.strip()


@dataclass(frozen=True)
class Browsing:
    """What a GET in an explore tree works with: the restore session, who asks, how to link."""

    session_id: uuid.UUID
    explorer: RestoreExplorer
    links: Links
    principal: Any

    def tree(self, kind: RestoreSessionType | None) -> SessionTree:
        return self.explorer.tree(self.principal, self.session_id, kind)

    def tree_links(self) -> TreeLinks:
        return TreeLinks(self.links, self.session_id)


@dataclass(frozen=True)
class Acting:
    """What an action in an explore tree works with (it runs on the event loop: trees load in a thread)."""

    session_id: uuid.UUID
    explorer: RestoreExplorer
    actions: RestoreActions
    principal: Any

    async def tree(self, kind: RestoreSessionType | None) -> SessionTree:
        return await run_in_threadpool(self.explorer.tree, self.principal, self.session_id, kind)


# Dependencies run in the order of their parameters: the explorer's availability (501) and the
# principal (401) are checked before the session id's form, as the routes always did.
def _browsing(
    restoreSessionId: uuid.UUID, explorer: ExplorerDep, links: LinksDep, principal: CurrentPrincipal
) -> Browsing:
    return Browsing(restoreSessionId, explorer, links, principal)


def _acting(
    restoreSessionId: uuid.UUID, explorer: ExplorerDep, actions: ActionsDep, principal: CurrentPrincipal
) -> Acting:
    return Acting(restoreSessionId, explorer, actions, principal)


BrowsingDep = Annotated[Browsing, Depends(_browsing)]
ActingDep = Annotated[Acting, Depends(_acting)]


def stats_response(stats: RestoreStats) -> Response:
    return json_response(stats.as_v3())


def download_response(download: Download) -> Response:
    headers = {"Content-Disposition": download.content_disposition}
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    return StreamingResponse(download.chunks, media_type=OCTET_STREAM, headers=headers)


def pst_response() -> Response:
    return message_response(PST_EXPORT_STATUS, PST_EXPORT_UNAVAILABLE)


def need(value: str | None, name: str, action: str) -> str:
    if not value or not value.strip():
        raise BadInput(f"'{name}' is required for '{action}'.")
    return value.strip()
