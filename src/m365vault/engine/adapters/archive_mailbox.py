"""An in-place archive mailbox as the engine's change source (Graph beta, m365/archive.py).

Collections are the archive's folders (listed in full each run, kind `mailFolder` so the catalog
and explore treat them as mail folders); items come from each folder's mailboxItem delta (an
incremental's first pages of all folders through one beta `$batch`: `prefetch`). An item's
content is its exported full-fidelity stream: opaque (stored and imported back, never parsed). The
streams of a page are exported together (20 a request, the page size) when the page arrives and
kept until the engine asks for the next page of that folder, so `content` never costs a request of
its own. They are item content held ahead of the saves: the page takes one content budget hold for
them before the export, returned when the page is done, and its items are marked `read_ahead` (the
engine takes no hold for them). While an export answer is read and decoded it is in memory
several times over (the base64 body, joined from its pieces, and its parsed text: ~8/3 of the
streams it carries, before the decoded streams), so a page is exported in requests of at most
`EXPORT_REQUEST` bytes of items (by the delta page's sizes; 20 small items still go in one), and
the hold reserves the page's streams plus one request's answer, keeping only the streams once they
are decoded. Without it every busy archive kept a page of streams and its whole export answer
outside the budget (bench_backup (c), docs/engine.md "Memory").

Catalog metadata: folder, message class, size, created/modified times, and subject and sender when
the extended properties come back. If Graph rejects `$expand` on a first delta request (unverified
there), the folder is read again without it and later folders skip it.

The archive id comes from the user's exchange settings: as planning read them (`BackupObject.archive_id`),
else with one request of the task's own. A 403/404 there or on the folder listing (archive not
enabled, permission not granted) ends the task Warning with Graph's reason (`ServiceUnavailable`),
not Failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from m365vault.engine.budget import UNKNOWN_SIZE, ContentBudget, ItemHold
from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    CollectionRef,
    ContentGone,
    ItemChange,
    ItemUnreadable,
    ServiceUnavailable,
)
from m365vault.m365 import archive
from m365vault.m365.batch import Outcome, get_many
from m365vault.m365.client import GraphClient
from m365vault.m365.delta import DeltaChange, DeltaQuery, read_delta
from m365vault.m365.errors import GraphError, GraphForbidden, GraphNotFound, GraphPermanent
from m365vault.m365.throttle import Scope

EXPORT_REQUEST = 1024 * 1024  # expected stream bytes per exportItems request (one item at least)
MAIL_FOLDER = "mailFolder"  # the same collection kind as a primary mailbox's folders
GRANTS = "User.Read.All, MailboxFolder.Read.All, MailboxItem.Read.All and MailboxItem.Export.All"


def _no_known_ids() -> tuple[str, ...]:
    return ()  # the engine diffs a resync against the catalog itself


def _unavailable(exc: GraphError, what: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"the archive mailbox cannot be {what} (Graph beta; needs {GRANTS}): {exc.reason}"
    )


class ArchiveMailbox:
    """One task's archive: a new instance per task (it holds the archive id and a page's streams)."""

    def __init__(self, client: GraphClient, budget: ContentBudget | None = None) -> None:
        self._client = client
        self._budget = budget or ContentBudget()
        self._mailbox: str | None = None
        self._properties = True  # ask for subject/sender through $expand until Graph refuses it
        self._streams: dict[str, dict[str, archive.ExportedItem]] = {}  # folder -> item -> export
        # folder id -> (the token it was read from, its first delta page or that read's error)
        self._primed: dict[str, tuple[str, Outcome]] = {}

    async def _mailbox_id(self, obj: BackupObject) -> str:
        if self._mailbox is None and obj.archive_id:
            # Planning read it this run; an archive disabled since fails the folder listing instead.
            self._mailbox = obj.archive_id
        if self._mailbox is None:
            try:
                found = await archive.exchange_mailboxes(self._client, obj.id)
            except (GraphForbidden, GraphNotFound) as exc:
                raise _unavailable(exc, "found") from exc
            if not found.archive:
                raise ServiceUnavailable("the user has no archive mailbox (any more)")
            self._mailbox = found.archive
        return self._mailbox

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        mailbox = await self._mailbox_id(obj)
        query = archive.folders_query(self._client, mailbox, Scope.mailbox(obj.id))
        found: list[CollectionRef] = []
        try:
            async for page in read_delta(self._client, query, token=None, known_ids=_no_known_ids):
                for change in page.changes:
                    if not change.removed:
                        item = change.item
                        name = str(item.get("displayName") or "")
                        found.append(CollectionRef(change.id, MAIL_FOLDER, name, item.get("parentFolderId")))
        except (GraphForbidden, GraphNotFound) as exc:
            raise _unavailable(exc, "listed") from exc
        ids = {ref.id for ref in found}
        # Top-level folders hang under the archive's root, which is not listed: keep parents in the tree.
        return [ref if ref.parent_id in ids else CollectionRef(ref.id, ref.kind, ref.name) for ref in found]

    async def prefetch(self, obj: BackupObject, starts: Sequence[tuple[CollectionRef, str | None]]) -> None:
        """The first delta page of every folder that has a token, through one beta `$batch` per 20
        folders instead of a round trip each; `changes` then starts from it. A folder whose read is
        redirected to an auxiliary archive (308) is read on its own there (batch.py)."""
        wanted = [(collection, token) for collection, token in starts if token]
        if not wanted:
            return
        mailbox = await self._mailbox_id(obj)
        scope = Scope.mailbox(obj.id)
        requests = [
            self._query(mailbox, collection, scope).first_request(token) for collection, token in wanted
        ]
        outcomes = await get_many(
            self._client, requests, scope=scope, endpoint=archive.beta_root(self._client)
        )
        for (collection, token), outcome in zip(wanted, outcomes, strict=True):
            self._primed[collection.id] = (token, outcome)

    def _query(self, mailbox: str, collection: CollectionRef, scope: Scope) -> DeltaQuery:
        return archive.items_query(self._client, mailbox, collection.id, scope, properties=self._properties)

    async def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        mailbox = await self._mailbox_id(obj)
        scope = Scope.mailbox(obj.id)
        primed = self._primed.pop(collection.id, None)
        first = primed[1] if primed is not None and primed[0] == token else None
        while True:
            query = self._query(mailbox, collection, scope)
            pages = read_delta(self._client, query, token=token, known_ids=_no_known_ids, first=first)
            first = None  # a retry without $expand reads again
            yielded = False
            try:
                async for page in pages:
                    converted = [_convert(collection, change) for change in page.changes]
                    async with self._budget.read_ahead(_export_peak(converted)) as hold:
                        await self._export(mailbox, collection, converted, scope, hold)
                        yielded = True
                        try:
                            yield ChangePage(converted, page.token, final=page.complete, resync=page.resync)
                        finally:
                            self._streams.pop(collection.id, None)  # saved or abandoned: let go
                return
            except GraphPermanent as exc:
                # $expand on item delta is unverified: without a token the options are ours to drop.
                if yielded or token is not None or not self._properties or exc.status != 400:
                    raise
                self._properties = False
            except GraphForbidden as exc:
                raise _unavailable(exc, "read") from exc

    async def _export(
        self, mailbox: str, collection: CollectionRef, changes: list[ItemChange], scope: Scope, hold: ItemHold
    ) -> None:
        streams: dict[str, archive.ExportedItem] = {}
        for request in _export_requests(changes):
            try:
                exported = await archive.export_items(self._client, mailbox, request, scope)
            except GraphForbidden as exc:
                raise _unavailable(exc, "exported") from exc
            streams.update((e.item_id, e) for e in exported)
        decoded = sum(len(e.data) for e in streams.values() if e.data is not None)
        hold.received(decoded)
        hold.keep(decoded)  # the answers and their text are gone: the streams stay until the next page
        self._streams[collection.id] = streams

    async def content(self, collection: CollectionRef, change: ItemChange) -> AsyncIterator[bytes]:
        exported = self._streams.get(collection.id, {}).get(change.item_id)
        if exported is None:
            raise ContentGone(change.item_id)
        if exported.data is None:
            if (exported.error or "").startswith("ErrorItemNotFound"):
                raise ContentGone(change.item_id)  # deleted since the page: the next round says so
            raise ItemUnreadable(f"archive item could not be exported: {exported.error}")
        yield exported.data


def _expected(change: ItemChange) -> int:
    size = change.metadata.get("size")
    return size if isinstance(size, int) else UNKNOWN_SIZE


def _export_requests(changes: list[ItemChange]) -> list[list[str]]:
    """The page's item ids in export requests of at most `EXPORT_REQUEST` expected bytes (an item
    bigger than that alone) and `archive.MAX_EXPORT` items."""
    requests: list[list[str]] = []
    size = 0
    for change in changes:
        if change.removed:
            continue
        if (
            not requests
            or size + _expected(change) > EXPORT_REQUEST
            or len(requests[-1]) >= archive.MAX_EXPORT
        ):
            requests.append([])
            size = 0
        requests[-1].append(change.item_id)
        size += _expected(change)
    return requests


def _export_peak(changes: list[ItemChange]) -> int:
    """What a page's export holds at most while it is read: its streams (by the delta page's
    sizes) and the largest request's answer being read and parsed (8/3 of what it carries)."""
    live = [change for change in changes if not change.removed]
    sizes = {change.item_id: _expected(change) for change in live}
    largest = max((sum(sizes[i] for i in request) for request in _export_requests(live)), default=0)
    return sum(sizes.values()) + largest * 8 // 3


def _convert(collection: CollectionRef, change: DeltaChange) -> ItemChange:
    if change.removed:
        return ItemChange(change.id, removed=True)
    item: dict[str, Any] = change.item
    props = archive.item_properties(item)
    sender = props.get("sender_address") or props.get("sender_name")
    subject = props.get("subject")
    meta: dict[str, object] = {
        "kind": "item",
        "parent": collection.id,
        "name": subject or "",
        "subject": subject,
        "item_class": item.get("type") or "IPM.Note",
        "sender": sender,
        "size": item.get("size"),
        "modified_at": item.get("lastModifiedDateTime"),
        "extras": {
            "createdDateTime": item.get("createdDateTime"),
            "senderName": props.get("sender_name"),
            "categories": item.get("categories") or [],
            "archive": True,  # the content is an opaque export stream, not MIME
        },
    }
    return ItemChange(change.id, str(item.get("changeKey") or ""), metadata=meta, read_ahead=True)
