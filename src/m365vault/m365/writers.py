"""Writes that restore needs (graph-protocol.md §5).

Mail:
- `create_message_from_mime`: the MIME route (base64 body, 4 MB request cap). Exchange stores the
  result as a draft, so it suits small messages where that is acceptable.
- `create_message` + `add_attachment`: the JSON route. The message is created as a non-draft by
  setting PidTagMessageFlags (0x0E07) without the unsent bit at creation time, with the original
  sent / received times in PidTagClientSubmitTime (0x0039) / PidTagMessageDeliveryTime (0x0E06).
  Attachments under 3 MB are posted inline; larger ones go through an attachment upload session
  in chunks of at most 4 MB, in order, without the Authorization header.
Files: simple PUT up to 4 MB (the limit every cloud honours), upload sessions above, in fragments
that are multiples of 320 KiB; `conflictBehavior` is fail / replace / rename.

Content arrives as `AsyncIterable[bytes]` and at most one chunk / fragment is held in memory.
Message creation is not idempotent, so it is not retried after a connection dropped mid-request:
the caller gets GraphTransient and decides (restore reports it per item).
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import AsyncIterable, Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from m365vault.m365.client import GraphClient, segment
from m365vault.m365.errors import GraphConflict, GraphError, GraphPermanent, GraphTransient
from m365vault.m365.throttle import Scope

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # Graph's request body cap
INLINE_ATTACHMENT_MAX = 3 * 1024 * 1024
ATTACHMENT_CHUNK = 3 * 1024 * 1024  # well under the 4 MB per-PUT cap
SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024
UPLOAD_FRAGMENT = 10 * 320 * 1024  # 3.125 MiB: a multiple of 320 KiB, as upload sessions require
MESSAGE_FLAG_READ = 0x1
MESSAGE_FLAG_SUBMIT = 0x4  # what Corso restores with; what matters is that 0x8 (unsent) is clear
ConflictBehavior = Literal["fail", "replace", "rename"]
_WRITABLE_MESSAGE_FIELDS = (
    "subject",
    "body",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "importance",
    "isRead",
    "categories",
    "flag",
    "internetMessageId",
    "inferenceClassification",
)
IMMUTABLE_IDS = {"Prefer": 'IdType="ImmutableId"'}


class ContentTooLarge(ValueError):
    """The content does not fit the chosen route (use the JSON route or an upload session)."""


class _Chunker:
    """Reads exact-size pieces from an async byte stream, holding at most one piece."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._iter = aiter(source)
        self._buffer = bytearray()
        self._done = False

    async def read(self, size: int) -> bytes:
        while len(self._buffer) < size and not self._done:
            try:
                self._buffer += await anext(self._iter)
            except StopAsyncIteration:
                self._done = True
        piece = bytes(self._buffer[:size])
        del self._buffer[:size]
        return piece


def _mailbox_path(user_id: str, *parts: str) -> str:
    return "/".join([f"/users/{segment(user_id)}", *(segment(p) for p in parts)])


# ---------------------------------------------------------------------------------------------- mail


async def create_mail_folder(
    client: GraphClient, user_id: str, display_name: str, *, parent_id: str | None = None
) -> dict[str, Any]:
    """A new folder (top level, or under `parent_id`). A taken name raises GraphConflict / GraphPermanent."""
    path = (
        _mailbox_path(user_id, "mailFolders", parent_id, "childFolders")
        if parent_id
        else _mailbox_path(user_id, "mailFolders")
    )
    return await client.send_json(
        "POST", path, {"displayName": display_name}, scope=Scope.mailbox(user_id), headers=IMMUTABLE_IDS
    )


async def create_message_from_mime(
    client: GraphClient, user_id: str, folder_id: str, mime: bytes
) -> dict[str, Any]:
    """Create a message from raw MIME in a folder (Exchange marks it as a draft)."""
    encoded = base64.b64encode(mime)
    if len(encoded) > MAX_REQUEST_BYTES:
        raise ContentTooLarge(
            f"MIME of {len(mime)} bytes exceeds the 4 MB request cap once base64-encoded; use the JSON route"
        )
    response = await client.request(
        "POST",
        _mailbox_path(user_id, "mailFolders", folder_id, "messages"),
        scope=Scope.mailbox(user_id),
        content=encoded,
        headers={"Content-Type": "text/plain", **IMMUTABLE_IDS},
    )
    return dict(response.json())


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("message timestamps must be timezone-aware")
        return value.isoformat().replace("+00:00", "Z")
    return value


def message_restore_body(
    message: Mapping[str, Any],
    *,
    sent_at: datetime | str | None = None,
    received_at: datetime | str | None = None,
) -> dict[str, Any]:
    """The JSON for a non-draft copy of a backed-up message (its Graph JSON)."""
    body = {key: message[key] for key in _WRITABLE_MESSAGE_FIELDS if key in message}
    headers = [
        h
        for h in message.get("internetMessageHeaders") or []
        if isinstance(h, Mapping) and str(h.get("name", "")).lower().startswith("x-")
    ]
    if headers:
        body["internetMessageHeaders"] = headers  # Graph accepts only custom x- headers
    flags = MESSAGE_FLAG_SUBMIT | (MESSAGE_FLAG_READ if message.get("isRead") else 0)
    properties = [{"id": "Integer 0x0E07", "value": str(flags)}]
    sent = sent_at or message.get("sentDateTime")
    received = received_at or message.get("receivedDateTime")
    if sent:
        properties.append({"id": "SystemTime 0x0039", "value": _timestamp(sent)})
    if received:
        properties.append({"id": "SystemTime 0x0E06", "value": _timestamp(received)})
    body["singleValueExtendedProperties"] = properties
    return body


async def create_message(
    client: GraphClient,
    user_id: str,
    folder_id: str,
    message: Mapping[str, Any],
    *,
    sent_at: datetime | str | None = None,
    received_at: datetime | str | None = None,
) -> dict[str, Any]:
    """Create a non-draft message in `folder_id` from backed-up message JSON (attachments separately)."""
    body = message_restore_body(message, sent_at=sent_at, received_at=received_at)
    return await client.send_json(
        "POST",
        _mailbox_path(user_id, "mailFolders", folder_id, "messages"),
        body,
        scope=Scope.mailbox(user_id),
        headers=IMMUTABLE_IDS,
    )


async def add_attachment(
    client: GraphClient,
    user_id: str,
    message_id: str,
    *,
    name: str,
    size: int,
    content: AsyncIterable[bytes],
    content_type: str = "application/octet-stream",
    is_inline: bool = False,
    content_id: str | None = None,
) -> dict[str, Any]:
    """Attach a file: inline POST below 3 MB, an upload session above. Returns what Graph answered."""
    if size < INLINE_ATTACHMENT_MAX:
        data = await _Chunker(content).read(size + 1)
        if len(data) != size:
            raise ValueError(f"attachment {name!r}: expected {size} bytes, the source gave {len(data)}")
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": name,
            "contentType": content_type,
            "contentBytes": base64.b64encode(data).decode(),
            "isInline": is_inline,
        }
        if content_id:
            body["contentId"] = content_id
        return await client.send_json(
            "POST",
            _mailbox_path(user_id, "messages", message_id, "attachments"),
            body,
            scope=Scope.mailbox(user_id),
            headers=IMMUTABLE_IDS,
        )
    item: dict[str, Any] = {"attachmentType": "file", "name": name, "size": size, "contentType": content_type}
    if is_inline:
        item["isInline"] = True
        if content_id:
            item["contentId"] = content_id
    session = await client.send_json(
        "POST",
        _mailbox_path(user_id, "messages", message_id, "attachments", "createUploadSession"),
        {"AttachmentItem": item},
        scope=Scope.mailbox(user_id),
        headers=IMMUTABLE_IDS,
        idempotent=True,  # an unused session just expires
    )
    upload_url = _upload_url(session)
    response = await _upload_in_fragments(
        client, upload_url, size, content, ATTACHMENT_CHUNK, Scope.mailbox(user_id)
    )
    return {"location": response.headers.get("location"), **(_json_or_empty(response))}


async def add_item_attachment(
    client: GraphClient, user_id: str, message_id: str, *, name: str, item: Mapping[str, Any]
) -> dict[str, Any]:
    """Attach an Outlook item (an attached e-mail, event or contact) from its Graph JSON.

    `item` must carry its own "@odata.type" (e.g. "#microsoft.graph.message")."""
    if not str(item.get("@odata.type", "")).startswith("#microsoft.graph."):
        raise ValueError("an item attachment needs the embedded item's @odata.type")
    body = {"@odata.type": "#microsoft.graph.itemAttachment", "name": name, "item": dict(item)}
    return await client.send_json(
        "POST",
        _mailbox_path(user_id, "messages", message_id, "attachments"),
        body,
        scope=Scope.mailbox(user_id),
        headers=IMMUTABLE_IDS,
    )


async def move_message(
    client: GraphClient, user_id: str, message_id: str, destination_id: str
) -> dict[str, Any]:
    return await client.send_json(
        "POST",
        _mailbox_path(user_id, "messages", message_id, "move"),
        {"destinationId": destination_id},
        scope=Scope.mailbox(user_id),
        headers=IMMUTABLE_IDS,
    )


async def set_message_read(
    client: GraphClient, user_id: str, message_id: str, is_read: bool
) -> dict[str, Any]:
    return await client.send_json(
        "PATCH",
        _mailbox_path(user_id, "messages", message_id),
        {"isRead": is_read},
        scope=Scope.mailbox(user_id),
        headers=IMMUTABLE_IDS,
    )


# ---------------------------------------------------------------------------------------------- files


def _conflict_query(conflict: ConflictBehavior) -> dict[str, str]:
    if conflict not in ("fail", "replace", "rename"):
        raise ValueError(f"conflict behaviour must be fail, replace or rename, not {conflict!r}")
    return {"@microsoft.graph.conflictBehavior": conflict}


def _child_path(drive_id: str, parent_id: str, name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"invalid file name {name!r}")
    return f"/drives/{segment(drive_id)}/items/{segment(parent_id)}:/{quote(name, safe='')}:"


async def upload_file(
    client: GraphClient,
    drive_id: str,
    *,
    size: int,
    content: AsyncIterable[bytes],
    parent_id: str | None = None,
    name: str | None = None,
    item_id: str | None = None,
    conflict: ConflictBehavior = "replace",
    file_system_info: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Upload a file as `name` under `parent_id`, or as new content of `item_id`. Returns the driveItem.

    Each upload adds a version to an existing file (when the library keeps versions).
    """
    if (item_id is None) == (parent_id is None or name is None):
        raise ValueError("give either item_id, or parent_id and name")
    target = (
        f"/drives/{segment(drive_id)}/items/{segment(item_id)}"
        if item_id
        else _child_path(drive_id, str(parent_id), str(name))
    )
    if size <= SIMPLE_UPLOAD_MAX:
        data = await _Chunker(content).read(size + 1)
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, the source gave {len(data)}")
        response = await client.request(
            "PUT",
            f"{target}/content",
            scope=Scope.sharepoint(),
            cost=2,
            params=_conflict_query(conflict) if item_id is None else None,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        uploaded = dict(response.json())
        if not file_system_info:
            return uploaded
        # A simple PUT cannot carry timestamps; set them on the new version afterwards.
        return await client.send_json(
            "PATCH",
            f"/drives/{segment(drive_id)}/items/{segment(str(uploaded['id']))}",
            {"fileSystemInfo": dict(file_system_info)},
            scope=Scope.sharepoint(),
            cost=2,
        )
    item: dict[str, Any] = {"@microsoft.graph.conflictBehavior": conflict}
    if name and item_id is None:
        item["name"] = name
    if file_system_info:
        item["fileSystemInfo"] = dict(file_system_info)
    session = await client.send_json(
        "POST",
        f"{target}/createUploadSession",
        {"item": item},
        scope=Scope.sharepoint(),
        cost=2,
        idempotent=True,
    )
    response = await _upload_in_fragments(
        client, _upload_url(session), size, content, UPLOAD_FRAGMENT, Scope.sharepoint()
    )
    return _json_or_empty(response)


def _upload_url(session: Mapping[str, Any]) -> str:
    url = session.get("uploadUrl")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise GraphPermanent("upload session answer has no uploadUrl")
    return url


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        return {}
    return dict(body) if isinstance(body, dict) else {}


_RANGE_START = re.compile(r"^(\d+)")  # "26-" (drive) or "2097152" (Outlook)


async def _next_expected(client: GraphClient, upload_url: str, scope: Scope) -> int | None:
    """Where the service wants the next byte (GET on the session), None when it reports nothing."""
    status = await client.request("GET", upload_url, scope=scope, cost=0, authenticated=False)
    ranges = _json_or_empty(status).get("nextExpectedRanges") or []
    starts = [int(m.group(1)) for r in ranges if isinstance(r, str) and (m := _RANGE_START.match(r))]
    return min(starts) if starts else None


async def _upload_in_fragments(
    client: GraphClient,
    upload_url: str,
    size: int,
    content: AsyncIterable[bytes],
    fragment: int,
    scope: Scope,
) -> httpx.Response:
    """PUT the content in order; resume a fragment from where the service says it stopped."""
    chunker = _Chunker(content)
    offset = 0
    try:
        while True:
            data = await chunker.read(min(fragment, size - offset))
            if len(data) != min(fragment, size - offset):
                raise ValueError(f"expected {size} bytes, the source ended at {offset + len(data)}")
            response = await _put_fragment(client, upload_url, offset, data, size, scope)
            offset += len(data)
            # Drive sessions answer 202 per fragment, Outlook sessions 200; the last byte commits.
            if offset >= size:
                if response.status_code not in (200, 201):
                    raise GraphPermanent(
                        f"upload session answered {response.status_code} to the last fragment"
                    )
                return response
    except GraphConflict:
        raise  # the session stays valid until it expires (a caller may retry with another name)
    except BaseException:
        await _cancel_session(client, upload_url, scope)
        raise


async def _put_fragment(
    client: GraphClient, upload_url: str, offset: int, data: bytes, size: int, scope: Scope
) -> httpx.Response:
    """PUT one fragment; after a drop or 416, ask the session and send only the missing tail."""
    start = offset
    for _ in range(4):
        piece = data[start - offset :]
        headers = {
            "Content-Range": f"bytes {start}-{start + len(piece) - 1}/{size}",
            "Content-Type": "application/octet-stream",
        }
        try:
            return await client.request(
                "PUT", upload_url, scope=scope, cost=0, content=piece, headers=headers, authenticated=False
            )
        except (GraphTransient, GraphPermanent) as exc:
            if isinstance(exc, GraphPermanent) and exc.status != 416:
                raise
            expected = await _next_expected(client, upload_url, scope)
            if expected is None or not offset <= expected <= offset + len(data):
                raise
            if expected == offset + len(data):
                # Everything arrived; only the answer was lost. The next fragment continues.
                return httpx.Response(202, request=httpx.Request("PUT", upload_url))
            start = expected
    raise GraphTransient(f"fragment at byte {offset} could not be uploaded")


async def _cancel_session(client: GraphClient, upload_url: str, scope: Scope) -> None:
    # Best effort: an abandoned session expires on its own.
    with contextlib.suppress(GraphError):
        await client.request("DELETE", upload_url, scope=scope, cost=0, authenticated=False)


async def create_drive_folder(
    client: GraphClient, drive_id: str, parent_id: str, name: str, *, conflict: ConflictBehavior = "rename"
) -> dict[str, Any]:
    _conflict_query(conflict)
    return await client.send_json(
        "POST",
        f"/drives/{segment(drive_id)}/items/{segment(parent_id)}/children",
        {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": conflict},
        scope=Scope.sharepoint(),
        cost=2,
    )


async def restore_version(client: GraphClient, drive_id: str, item_id: str, version_id: str) -> None:
    """Make an older version current again (Graph adds it as a new version; history is kept)."""
    await client.request(
        "POST",
        f"/drives/{segment(drive_id)}/items/{segment(item_id)}/versions/{segment(version_id)}/restoreVersion",
        scope=Scope.sharepoint(),
        cost=2,
        idempotent=True,  # restoring the same version twice yields the same content
    )


# ---------------------------------------------------------------------------------------------- lists


async def create_list_item(
    client: GraphClient, site_id: str, list_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    return await client.send_json(
        "POST",
        f"/sites/{segment(site_id)}/lists/{segment(list_id)}/items",
        {"fields": dict(fields)},
        scope=Scope.sharepoint(),
        cost=2,
    )


async def update_list_item(
    client: GraphClient, site_id: str, list_id: str, item_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """PATCH the item's fields; returns the updated fieldValueSet."""
    return await client.send_json(
        "PATCH",
        f"/sites/{segment(site_id)}/lists/{segment(list_id)}/items/{segment(item_id)}/fields",
        dict(fields),
        scope=Scope.sharepoint(),
        cost=2,
    )
