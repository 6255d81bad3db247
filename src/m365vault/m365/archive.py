"""In-place archive mailboxes through Graph **beta**'s mailbox import/export API.

Graph v1.0's mail API cannot read an in-place archive with application permissions; the beta
mailbox import/export API can (facts from Microsoft's beta pages "Use mailbox import and export
APIs with archive mailboxes", exchangeSettings, mailboxFolder: delta, mailboxItem: delta,
mailbox: exportItems, mailbox: createImportSession, "Import an Exchange mailbox item"; not verified
against a live tenant, and beta APIs may change):

- `GET /beta/users/{id}/settings/exchange` -> `primaryMailboxId`, `inPlaceArchiveMailboxId`
  (User.Read.All). The archive id is used as given, never built from other ids.
- `GET /beta/admin/exchange/mailboxes/{mbx}/folders/delta` (MailboxFolder.Read.All) and
  `.../folders/{folder}/items/delta` (MailboxItem.Read.All): ordinary delta rounds (delta.py). Reads
  of an expanded folder (content in an auxiliary archive) may answer 308 + Location; the client
  follows it on Graph's own origin only (client.py), and a read redirected inside a `$batch` is
  sent again on its own (batch.py).
- `POST .../mailboxes/{mbx}/exportItems` with at most 20 ids (MailboxItem.Export.All): each item's
  full-fidelity stream (base64 `data`), opaque: it is stored and imported back, never parsed.
- `POST .../mailboxes/{mbx}/createImportSession` (MailboxItem.ImportExport.All) -> a
  pre-authenticated `importUrl` (no Authorization header) taking `{FolderId, Mode, Data}`.

mailboxItem carries id, type (message class), size, times and changeKey. Subject and sender are
asked for as single-value extended properties through `$expand` on the first delta request; the
delta page documents only `$select` and `$top`, so `$expand` there is unverified and a caller
should retry without it when Graph rejects it (`items_query(..., properties=False)`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from m365vault.clock import Clock, utcnow
from m365vault.m365.batch import BatchGet, get_many
from m365vault.m365.client import GraphClient, segment
from m365vault.m365.delta import DeltaQuery
from m365vault.m365.errors import GraphAuthError, GraphError, GraphPermanent
from m365vault.m365.throttle import Scope

MAX_EXPORT = 20
FOLDER_SELECT = "id,displayName,parentFolderId,type,wellKnownName,totalItemCount,childFolderCount"
ITEM_SELECT = "id,type,size,createdDateTime,lastModifiedDateTime,changeKey,categories"
# MAPI property tags read as extended properties (MS-OXPROPS): PidTagSubject, PidTagSenderName,
# PidTagSenderSmtpAddress.
SUBJECT, SENDER_NAME, SENDER_ADDRESS = "String 0x0037", "String 0x0C1A", "String 0x5D01"
PROPERTIES_EXPAND = (
    "singleValueExtendedProperties($filter="
    + " or ".join(f"id eq '{p}'" for p in (SUBJECT, SENDER_NAME, SENDER_ADDRESS))
    + ")"
)
SESSION_MARGIN = timedelta(minutes=2)  # a session this close to its expiry is replaced before use


def beta_root(client: GraphClient) -> str:
    """The beta endpoint on the client's own Graph host (e.g. for a beta `$batch`)."""
    base = client.base_url
    root = base.rsplit("/", 1)[0] if base.rsplit("/", 1)[-1].lower() in ("v1.0", "beta") else base
    return f"{root}/beta"


def beta_url(client: GraphClient, path: str) -> str:
    """Absolute beta URL for a Graph path, on the client's own Graph host."""
    return f"{beta_root(client)}/{path.lstrip('/')}"


def _mailbox_path(mailbox_id: str) -> str:
    return f"/admin/exchange/mailboxes/{segment(mailbox_id)}"


@dataclass(frozen=True)
class ExchangeMailboxes:
    primary: str | None
    archive: str | None


def exchange_settings_request(client: GraphClient, user_id: str) -> BatchGet:
    return BatchGet(beta_url(client, f"/users/{segment(user_id)}/settings/exchange"))


async def exchange_mailboxes(client: GraphClient, user_id: str) -> ExchangeMailboxes:
    """The user's mailbox ids (one request). Raises GraphNotFound / GraphForbidden as Graph answers."""
    body = await client.get_json(exchange_settings_request(client, user_id).url, scope=Scope.directory())
    return mailboxes_of(body)


async def many_exchange_mailboxes(
    client: GraphClient, user_ids: Sequence[str]
) -> list[ExchangeMailboxes | GraphError]:
    """`exchange_mailboxes` of many users through beta `$batch` (20 per request); per user its
    mailboxes or its error."""
    requests = [exchange_settings_request(client, user_id) for user_id in user_ids]
    outcomes = await get_many(client, requests, scope=Scope.directory(), endpoint=beta_root(client))
    return [o if isinstance(o, GraphError) else mailboxes_of(o) for o in outcomes]


def mailboxes_of(body: Mapping[str, Any]) -> ExchangeMailboxes:
    primary, archive = body.get("primaryMailboxId"), body.get("inPlaceArchiveMailboxId")
    return ExchangeMailboxes(
        str(primary) if isinstance(primary, str) and primary else None,
        str(archive) if isinstance(archive, str) and archive else None,
    )


def _headers(page_size: int) -> dict[str, str]:
    return {"Prefer": f"odata.maxpagesize={page_size}"}


def folders_query(client: GraphClient, mailbox_id: str, scope: Scope, *, page_size: int = 100) -> DeltaQuery:
    """Every folder of the mailbox (with parentFolderId), then changes."""
    return DeltaQuery(
        beta_url(client, f"{_mailbox_path(mailbox_id)}/folders/delta"),
        scope,
        "outlook",
        params={"$select": FOLDER_SELECT},
        headers=_headers(page_size),
    )


def items_query(
    client: GraphClient,
    mailbox_id: str,
    folder_id: str,
    scope: Scope,
    *,
    page_size: int = MAX_EXPORT,
    properties: bool = True,
) -> DeltaQuery:
    """mailboxItems of one folder. The default page is one export request's worth of items."""
    params = {"$select": ITEM_SELECT}
    if properties:
        params["$expand"] = PROPERTIES_EXPAND
    return DeltaQuery(
        beta_url(client, f"{_mailbox_path(mailbox_id)}/folders/{segment(folder_id)}/items/delta"),
        scope,
        "outlook",
        params=params,
        headers=_headers(page_size),
    )


def item_properties(item: Mapping[str, Any]) -> dict[str, str]:
    """subject / sender_name / sender_address from an item's expanded extended properties."""
    names = {
        SUBJECT.lower(): "subject",
        SENDER_NAME.lower(): "sender_name",
        SENDER_ADDRESS.lower(): "sender_address",
    }
    out: dict[str, str] = {}
    for prop in item.get("singleValueExtendedProperties") or []:
        if isinstance(prop, Mapping):
            name = names.get(str(prop.get("id") or "").lower())
            if name and prop.get("value"):
                out[name] = str(prop["value"])
    return out


@dataclass(frozen=True)
class ExportedItem:
    item_id: str
    data: bytes | None  # None: `error` says why
    change_key: str | None = None
    error: str | None = None


async def export_items(
    client: GraphClient, mailbox_id: str, item_ids: Sequence[str], scope: Scope
) -> list[ExportedItem]:
    """Each item's opaque stream, in `item_ids` order, `MAX_EXPORT` per request.

    A per-item failure (the item was deleted meanwhile) comes back as that item's `error`; a failed
    request raises. Exporting changes nothing, so the POST is retried like a read."""
    out: list[ExportedItem] = []
    url = beta_url(client, f"{_mailbox_path(mailbox_id)}/exportItems")
    for start in range(0, len(item_ids), MAX_EXPORT):
        chunk = list(item_ids[start : start + MAX_EXPORT])
        body = await client.send_json("POST", url, {"itemIds": chunk}, scope=scope, idempotent=True)
        answers: dict[str, Mapping[str, Any]] = {}
        for entry in body.get("value") or []:
            if isinstance(entry, Mapping) and entry.get("itemId"):
                answers[str(entry["itemId"])] = entry
        for item_id in chunk:
            out.append(_exported(item_id, answers.get(item_id)))
    return out


def _exported(item_id: str, entry: Mapping[str, Any] | None) -> ExportedItem:
    if entry is None:
        return ExportedItem(item_id, None, error="not in the export answer")
    data, error = entry.get("data"), entry.get("error")
    if isinstance(error, Mapping) and not data:
        reason = str(error.get("message") or error.get("code") or "export failed")
        return ExportedItem(item_id, None, error=f"{error.get('code') or 'error'}: {reason}")
    if not isinstance(data, str):
        return ExportedItem(item_id, None, error="the export answer has no data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return ExportedItem(item_id, None, error="the exported data is not base64")
    change_key = entry.get("changeKey")
    return ExportedItem(item_id, raw, str(change_key) if change_key else None)


@dataclass(frozen=True)
class ImportSession:
    url: str  # pre-authenticated: carries its own token; never logged with its query
    expires: datetime


def _expiry(value: Any, now: datetime) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return now + timedelta(minutes=10)  # unreadable: assume a short life, a new session is cheap
    return when if when.tzinfo else now + timedelta(minutes=10)


class ItemImporter:
    """Imports exported streams into one mailbox through an import session, renewed as it expires."""

    def __init__(self, client: GraphClient, mailbox_id: str, scope: Scope, clock: Clock = utcnow) -> None:
        self._client = client
        self._clock = clock
        self._mailbox = mailbox_id
        self._scope = scope
        self._session: ImportSession | None = None

    async def _open(self) -> ImportSession:
        body = await self._client.send_json(
            "POST",
            beta_url(self._client, f"{_mailbox_path(self._mailbox)}/createImportSession"),
            None,
            scope=self._scope,
        )
        url = body.get("importUrl")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise GraphPermanent("createImportSession answered without an importUrl")
        return ImportSession(url, _expiry(body.get("expirationDateTime"), self._clock()))

    async def create(self, folder_id: str, data: bytes) -> str:
        """Import `data` as a new item of `folder_id`; returns the new item's id."""
        return await self._post({"FolderId": folder_id, "Mode": "create", "Data": _b64(data)})

    async def update(self, folder_id: str, item_id: str, change_key: str, data: bytes) -> str:
        """Replace the item `item_id` (at `change_key`, its current version) with `data`."""
        payload = {
            "FolderId": folder_id,
            "Mode": "update",
            "Data": _b64(data),
            "ItemId": item_id,
            "ChangeKey": change_key,
        }
        return await self._post(payload)

    async def _post(self, payload: dict[str, str]) -> str:
        for attempt in (1, 2):
            session = self._session
            if session is None or session.expires - SESSION_MARGIN < self._clock():
                session = self._session = await self._open()
            try:
                # No Authorization: the URL is pre-authenticated. An import is not idempotent, so it
                # is retried only when it certainly was not received (client policy).
                response = await self._client.request(
                    "POST",
                    session.url,
                    scope=self._scope,
                    json=payload,
                    authenticated=False,
                    idempotent=False,
                )
            except GraphAuthError:
                if attempt == 2:
                    raise
                self._session = None  # expired early or revoked: one new session
                continue
            return _imported_id(response)
        raise AssertionError("unreachable")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _imported_id(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError as exc:
        raise GraphError("the import answer is not JSON", status=response.status_code) from exc
    item_id = body.get("itemId") if isinstance(body, dict) else None
    if not isinstance(item_id, str) or not item_id:
        raise GraphError("the import answer has no itemId", status=response.status_code)
    return item_id
