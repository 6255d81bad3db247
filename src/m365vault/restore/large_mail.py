"""Messages too large for Graph's MIME route (4 MB once base64-encoded) go back through the JSON
route: the message from the MIME's headers and body, created as a non-draft with its original sent
and received times, then each attachment added (upload sessions above 3 MB).

The result is the same message to a reader (headers, bodies, every attachment byte for byte) but not
the same MIME: Exchange composes its own. Attached messages come back as .eml file attachments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from m365vault.m365 import GraphClient, writers


def _recipients(message: EmailMessage, header: str) -> list[dict[str, Any]]:
    values = [str(v) for v in message.get_all(header, [])]
    return [
        {"emailAddress": {"address": address, **({"name": name} if name else {})}}
        for name, address in getaddresses(values)
        if address
    ]


def _date(message: EmailMessage) -> datetime | None:
    try:
        value = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def message_json(message: EmailMessage) -> dict[str, Any]:
    """The Graph message body for a parsed MIME message (attachments are added separately)."""
    body_part = message.get_body(preferencelist=("html", "plain"))
    content = body_part.get_content() if isinstance(body_part, EmailMessage) else ""
    html = isinstance(body_part, EmailMessage) and body_part.get_content_subtype() == "html"
    out: dict[str, Any] = {
        "subject": str(message["Subject"] or ""),
        "body": {"contentType": "HTML" if html else "Text", "content": content},
        "toRecipients": _recipients(message, "To"),
        "ccRecipients": _recipients(message, "Cc"),
        "bccRecipients": _recipients(message, "Bcc"),
    }
    name, address = parseaddr(str(message["From"] or ""))
    if address:
        out["from"] = {"emailAddress": {"address": address, **({"name": name} if name else {})}}
    if message["Message-ID"]:
        out["internetMessageId"] = str(message["Message-ID"]).strip()
    importance = str(message["Importance"] or "").strip().lower()
    if importance in ("low", "normal", "high"):
        out["importance"] = importance
    return out


def _attachment_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else part.get_payload()
        return inner.as_bytes() if isinstance(inner, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def create_from_large_mime(
    client: GraphClient, user: str, folder_id: str, mime: bytes, *, received: datetime | None
) -> dict[str, Any]:
    """Create the message and its attachments; returns Graph's answer for the message."""
    parsed = BytesParser(policy=policy.default).parsebytes(mime)
    assert isinstance(parsed, EmailMessage)
    sent = _date(parsed)
    created = await writers.create_message(
        client, user, folder_id, message_json(parsed), sent_at=sent, received_at=received or sent
    )
    message_id = str(created["id"])
    for index, part in enumerate(parsed.iter_attachments(), start=1):
        data = _attachment_bytes(part)
        is_message = part.get_content_type() == "message/rfc822"
        name = part.get_filename() or (f"attached-{index}.eml" if is_message else f"attachment-{index}")
        content_id = str(part["Content-ID"] or "").strip("<> ") or None
        await writers.add_attachment(
            client,
            user,
            message_id,
            name=name,
            size=len(data),
            content=_once(data),
            content_type="message/rfc822" if is_message else part.get_content_type(),
            is_inline=part.get_content_disposition() == "inline",
            content_id=content_id,
        )
    return created
