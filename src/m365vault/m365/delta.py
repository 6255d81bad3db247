"""Incremental readers over Graph delta queries (graph-protocol.md §3).

Every reader yields `DeltaPage`s. A page's `token` is what the caller saves once it has made the
page durable; giving that token back resumes exactly after that page (a next link mid-round, the
delta link at the end of a round). Changes are in arrival order; the same id may occur more than
once and the last occurrence wins (Graph replays entities).

When the service says the state is gone (410, syncStateNotFound, resyncRequired - mid-round or on
the saved token), the reader runs a full round instead and reports it as a resync: every live item
arrives as an upsert, and at the end every id the caller knew (`known_ids`) that the full round did
not return arrives as a synthesized removal (reason "resync"), because a full round carries no
tombstones for what was deleted while the state was lost. Pages of a resync round carry no token
until its last page: resuming half-way would lose the removal diff, so a crash restarts the resync.
Memory: a resync keeps the set of ids it has seen for that one collection (ids only).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from m365vault.m365.batch import BatchGet, Outcome
from m365vault.m365.client import GraphClient, segment
from m365vault.m365.errors import DeltaResyncRequired, GraphError, GraphPermanent
from m365vault.m365.paging import page_items
from m365vault.m365.throttle import Scope

KnownIds = Callable[[], Iterable[str] | AsyncIterable[str]]
Flavor = Literal["outlook", "drive"]

MAIL_FOLDER_SELECT = "id,displayName,parentFolderId,childFolderCount,totalItemCount,unreadItemCount"
MESSAGE_SELECT = (
    "id,subject,receivedDateTime,sentDateTime,createdDateTime,lastModifiedDateTime,parentFolderId,"
    "changeKey,isRead,isDraft,internetMessageId,conversationId,hasAttachments,importance,flag,categories,"
    "from,sender,toRecipients,ccRecipients,bccRecipients,replyTo,bodyPreview"
)
CONTACT_FOLDER_SELECT = "id,displayName,parentFolderId"
MAX_CONSECUTIVE_RESYNCS = 3
SYNTHESIZED_BATCH = 500


@dataclass(frozen=True)
class DeltaChange:
    """One change. `item` is the raw Graph object (a tombstone, or {"id": ...} when synthesized)."""

    id: str
    removed: bool
    item: dict[str, Any]
    reason: str | None = None  # removals: Graph's "deleted" / "changed", or "resync" when synthesized


@dataclass(frozen=True)
class DeltaPage:
    changes: list[DeltaChange]
    token: str | None  # save after this page is durable; None: nothing to save yet
    complete: bool  # last page of a round: `token` is the delta link for the next round
    resync: bool  # part of a full re-enumeration after the previous state expired


@dataclass
class _RoundState:
    resync: bool
    seen: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    def note(self, changes: list[DeltaChange]) -> None:
        if not self.resync:
            return  # only a resync needs the ids (for its removal diff): keep normal rounds small
        for change in changes:
            if change.removed:
                self.seen.discard(change.id)
                self.removed.add(change.id)
            else:
                self.removed.discard(change.id)
                self.seen.add(change.id)


def _change(item: dict[str, Any], flavor: Flavor) -> DeltaChange:
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise GraphPermanent("delta item without an id")
    removed = item.get("@removed")
    if isinstance(removed, Mapping):
        return DeltaChange(item_id, True, item, str(removed.get("reason") or "deleted"))
    if flavor == "drive" and "deleted" in item:
        deleted = item.get("deleted")
        state = deleted.get("state") if isinstance(deleted, Mapping) else None
        return DeltaChange(item_id, True, item, str(state or "deleted"))
    return DeltaChange(item_id, False, item)


async def _iterate_known(known_ids: KnownIds) -> AsyncIterator[str]:
    source = known_ids()
    if inspect.isawaitable(source):  # tolerate an async function returning an iterable
        source = await source
    if isinstance(source, AsyncIterable):
        async for item_id in source:
            yield item_id
    else:
        for item_id in source:
            yield item_id


@dataclass(frozen=True)
class DeltaQuery:
    """Where a collection's delta rounds start and how their requests are made.

    Query options go on the initial request only (Graph bakes them into its links); a round
    without a token (a first round, a resync) is charged `initial_cost`, one from a link `token_cost`.
    """

    initial: str
    scope: Scope
    flavor: Flavor
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    initial_cost: float = 1.0
    token_cost: float = 1.0

    def first_request(self, token: str | None) -> BatchGet:
        """The first GET of a round from `token` (None: a first, full round), e.g. for `$batch`."""
        if token:
            return BatchGet(token, headers=self.headers, cost=self.token_cost)
        return BatchGet(self.initial, params=self.params, headers=self.headers, cost=self.initial_cost)


async def read_delta(
    client: GraphClient,
    query: DeltaQuery,
    *,
    token: str | None,
    known_ids: KnownIds,
    first: Outcome | None = None,
) -> AsyncIterator[DeltaPage]:
    """One delta round from `token` (or a first full round), resyncing if needed.

    `first` is the answer to `query.first_request(token)` when it was already fetched (a `$batch`
    sub-response, or its error): the round then starts from it instead of sending that GET again.
    """
    url = token or query.initial
    state = _RoundState(resync=False)
    resyncs = 0
    while True:
        pages = _round(client, query, url, state, known_ids, first)
        first = None  # the round drops it once read: not held here for the whole round
        try:
            async for page in pages:
                yield page
            return
        except DeltaResyncRequired as exc:
            resyncs += 1
            if resyncs > MAX_CONSECUTIVE_RESYNCS:
                raise
            location = exc.location
            url = location if location and location.startswith(("https://", "http://")) else query.initial
            state = _RoundState(resync=True)


async def _round(
    client: GraphClient,
    query: DeltaQuery,
    url: str,
    state: _RoundState,
    known_ids: KnownIds,
    first: Outcome | None,
) -> AsyncIterator[DeltaPage]:
    # A round without a token (first round, or a resync from `initial` or a 410's Location) costs more.
    tokenless = url == query.initial or state.resync
    while True:
        if first is not None:
            body, first = first, None
            if isinstance(body, GraphError):
                raise body
        else:
            body = await client.get_json(
                url,
                scope=query.scope,
                cost=query.initial_cost if tokenless else query.token_cost,
                params=query.params if url == query.initial else None,
                headers=query.headers,
            )
        tokenless = False
        changes = [_change(item, query.flavor) for item in page_items(body)]
        state.note(changes)
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        # The frame holds no raw item while the page is out (no body, no loop variable): a caller
        # that has converted the page's changes can clear them and let the items go.
        del body
        if isinstance(next_link, str) and next_link:
            yield DeltaPage(changes, None if state.resync else next_link, complete=False, resync=state.resync)
            url = next_link
            continue
        if not (isinstance(delta_link, str) and delta_link):
            raise GraphPermanent("delta page has neither @odata.nextLink nor @odata.deltaLink")
        if not state.resync:
            yield DeltaPage(changes, delta_link, complete=True, resync=False)
            return
        # End of a resync round: report what vanished while the old state was lost.
        yield DeltaPage(changes, None, complete=False, resync=True)
        batch: list[DeltaChange] = []
        async for known in _iterate_known(known_ids):
            if known in state.seen or known in state.removed:
                continue
            batch.append(DeltaChange(known, True, {"id": known}, "resync"))
            if len(batch) >= SYNTHESIZED_BATCH:
                yield DeltaPage(batch, None, complete=False, resync=True)
                batch = []
        yield DeltaPage(batch, delta_link, complete=True, resync=True)
        return


def _outlook_headers(page_size: int) -> dict[str, str]:
    # Immutable ids survive moves between folders (§2.7); page size is a preference, not a promise.
    return {"Prefer": f'IdType="ImmutableId", odata.maxpagesize={page_size}'}


def mail_folders_query(
    client: GraphClient, user_id: str, *, page_size: int = 100, select: str = MAIL_FOLDER_SELECT
) -> DeltaQuery:
    """The whole mail folder tree (every level, with parentFolderId), then its changes."""
    return DeltaQuery(
        client.url(f"/users/{segment(user_id)}/mailFolders/delta"),
        Scope.mailbox(user_id),
        "outlook",
        params={"$select": select},
        headers=_outlook_headers(page_size),
    )


def messages_query(
    client: GraphClient, user_id: str, folder_id: str, *, page_size: int = 100, select: str = MESSAGE_SELECT
) -> DeltaQuery:
    """Messages of one folder (there is no mailbox-wide message delta)."""
    return DeltaQuery(
        client.url(f"/users/{segment(user_id)}/mailFolders/{segment(folder_id)}/messages/delta"),
        Scope.mailbox(user_id),
        "outlook",
        params={"$select": select},
        headers=_outlook_headers(page_size),
    )


def calendar_query(
    client: GraphClient, user_id: str, *, start: datetime, end: datetime, page_size: int = 100
) -> DeltaQuery:
    """Events of the primary calendar in [start, end) as expanded instances (v1.0 calendarView delta).

    Graph fixes the window in the token; removals may also name events outside it.
    """
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ValueError("calendar window needs aware datetimes with start < end")
    return DeltaQuery(
        client.url(f"/users/{segment(user_id)}/calendarView/delta"),
        Scope.mailbox(user_id),
        "outlook",
        params={"startDateTime": _iso(start), "endDateTime": _iso(end)},
        headers=_outlook_headers(page_size),
    )


def contact_folders_query(client: GraphClient, user_id: str, *, page_size: int = 100) -> DeltaQuery:
    return DeltaQuery(
        client.url(f"/users/{segment(user_id)}/contactFolders/delta"),
        Scope.mailbox(user_id),
        "outlook",
        params={"$select": CONTACT_FOLDER_SELECT},
        headers=_outlook_headers(page_size),
    )


def contacts_query(client: GraphClient, user_id: str, folder_id: str, *, page_size: int = 100) -> DeltaQuery:
    return DeltaQuery(
        client.url(f"/users/{segment(user_id)}/contactFolders/{segment(folder_id)}/contacts/delta"),
        Scope.mailbox(user_id),
        "outlook",
        headers=_outlook_headers(page_size),
    )


def drive_query(
    client: GraphClient, drive_id: str, *, page_size: int | None = None, select: str | None = None
) -> DeltaQuery:
    """Every driveItem of a drive, then changes; deletions carry the `deleted` facet.

    The drive root appears as an item (`root` facet); parentReference has no path in delta, so
    callers rebuild paths from parent ids. SharePoint charges 2 RU without a token, 1 with one.
    A `select` naming `@microsoft.graph.downloadUrl` gets each file's pre-authenticated download
    URL (§3.5), which Graph returns only when selected.
    """
    params = {"$top": str(page_size)} if page_size else {}
    if select:
        params["$select"] = select
    return DeltaQuery(
        client.url(f"/drives/{segment(drive_id)}/root/delta"),
        Scope.sharepoint(),
        "drive",
        params=params or None,
        initial_cost=2,
        token_cost=1,
    )


def list_items_query(
    client: GraphClient, site_id: str, list_id: str, *, expand_fields: bool = True
) -> DeltaQuery:
    """Items of a SharePoint list (with their `fields` by default), then changes."""
    return DeltaQuery(
        client.url(f"/sites/{segment(site_id)}/lists/{segment(list_id)}/items/delta"),
        Scope.sharepoint(),
        "drive",
        params={"$expand": "fields"} if expand_fields else None,
        initial_cost=2,
        token_cost=1,
    )


# One round of each kind, for callers that do not batch first requests.


def mail_folders_delta(
    client: GraphClient,
    user_id: str,
    *,
    token: str | None,
    known_ids: KnownIds,
    page_size: int = 100,
    select: str = MAIL_FOLDER_SELECT,
) -> AsyncIterator[DeltaPage]:
    query = mail_folders_query(client, user_id, page_size=page_size, select=select)
    return read_delta(client, query, token=token, known_ids=known_ids)


def messages_delta(
    client: GraphClient,
    user_id: str,
    folder_id: str,
    *,
    token: str | None,
    known_ids: KnownIds,
    page_size: int = 100,
    select: str = MESSAGE_SELECT,
) -> AsyncIterator[DeltaPage]:
    query = messages_query(client, user_id, folder_id, page_size=page_size, select=select)
    return read_delta(client, query, token=token, known_ids=known_ids)


def calendar_delta(
    client: GraphClient,
    user_id: str,
    *,
    start: datetime,
    end: datetime,
    token: str | None,
    known_ids: KnownIds,
    page_size: int = 100,
) -> AsyncIterator[DeltaPage]:
    query = calendar_query(client, user_id, start=start, end=end, page_size=page_size)
    return read_delta(client, query, token=token, known_ids=known_ids)


def contact_folders_delta(
    client: GraphClient, user_id: str, *, token: str | None, known_ids: KnownIds, page_size: int = 100
) -> AsyncIterator[DeltaPage]:
    query = contact_folders_query(client, user_id, page_size=page_size)
    return read_delta(client, query, token=token, known_ids=known_ids)


def contacts_delta(
    client: GraphClient,
    user_id: str,
    folder_id: str,
    *,
    token: str | None,
    known_ids: KnownIds,
    page_size: int = 100,
) -> AsyncIterator[DeltaPage]:
    query = contacts_query(client, user_id, folder_id, page_size=page_size)
    return read_delta(client, query, token=token, known_ids=known_ids)


def drive_delta(
    client: GraphClient,
    drive_id: str,
    *,
    token: str | None,
    known_ids: KnownIds,
    page_size: int | None = None,
) -> AsyncIterator[DeltaPage]:
    query = drive_query(client, drive_id, page_size=page_size)
    return read_delta(client, query, token=token, known_ids=known_ids)


def list_items_delta(
    client: GraphClient,
    site_id: str,
    list_id: str,
    *,
    token: str | None,
    known_ids: KnownIds,
    expand_fields: bool = True,
) -> AsyncIterator[DeltaPage]:
    query = list_items_query(client, site_id, list_id, expand_fields=expand_fields)
    return read_delta(client, query, token=token, known_ids=known_ids)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
