"""`savetoMsg`: an Outlook .msg (MS-OXMSG in an MS-CFB compound file) made from an item's MIME.

The compound file is written by aspose-email-foss (MIT, pure Python), which lays out the property
streams, recipient and attachment storages and the named-property map; this module decides what
goes in: the MIME's headers, bodies and attachment bytes mapped to MAPI properties.

A compound file's layout depends on every stream's size, so one .msg is built whole in memory;
`max_item_bytes` bounds that, and several items are built one at a time into a streamed ZIP.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from aspose.email_foss import msg as mapi

from m365vault.restore.errors import NothingToSave
from m365vault.restore.formats.download import Download, MailItem, Opener, read_all
from m365vault.restore.formats.names import UniqueNames, safe_filename
from m365vault.restore.formats.zipstream import ZipEntry, ZipFile, zip_download

MSG_MEDIA_TYPE = "application/vnd.ms-outlook"
# Exchange Online's own ceiling for one message; a larger "item" is not a mail we backed up.
MAX_ITEM_BYTES = 150 * 1024 * 1024
_SLICE = 1024 * 1024

# MAPI property ids (MS-OXPROPS) the library has no name for.
_PR_IMPORTANCE = 0x0017
_PR_CLIENT_SUBMIT_TIME = 0x0039
_PR_SENT_REPRESENTING_NAME = 0x0042
_PR_SENT_REPRESENTING_ADDRTYPE = 0x0064
_PR_SENT_REPRESENTING_EMAIL_ADDRESS = 0x0065
_PR_SENDER_SMTP_ADDRESS = 0x5D01
_PR_SENT_REPRESENTING_SMTP_ADDRESS = 0x5D02
_PR_ATTACHMENT_HIDDEN = 0x7FFE
_STRING = mapi.PropertyTypeCode.PTYP_STRING
_IMPORTANCE = {"low": 0, "normal": 1, "high": 2}


# Kept under this name for callers that only deal in .msg.
MsgSource = MailItem


def msg_filename(subject: str | None) -> str:
    return safe_filename(subject, ".msg", fallback="message")


def mime_to_msg(mime: bytes, *, received: datetime | None = None) -> bytes:
    """The .msg bytes of one RFC 822 message (CPU-bound: call it off the event loop)."""
    parsed = BytesParser(policy=policy.default).parsebytes(mime)
    assert isinstance(parsed, EmailMessage)
    content: bytes = _to_mapi(parsed, _header_block(mime), received).to_bytes()
    return content


async def save_to_msg(
    subject: str | None,
    mime: Opener,
    *,
    received: datetime | None = None,
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> Download:
    """One item as a .msg. Built before returning, so an error can still become an HTTP status."""
    content = await _build(MsgSource(subject, mime, received), max_item_bytes)
    return Download(msg_filename(subject), MSG_MEDIA_TYPE, _slices(content), len(content))


def save_many_to_msg(
    items: Iterable[MsgSource] | AsyncIterable[MsgSource],
    *,
    archive_name: str = "messages.zip",
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> Download:
    """Several items as a streamed ZIP of .msg files, each built only when the ZIP reaches it. An
    async iterable is consumed as the ZIP is written (the caller checked it is not empty)."""
    if isinstance(items, AsyncIterable):
        return zip_download(_lazy_entries(items, max_item_bytes), archive_name)
    sources = list(items)
    if not sources:
        raise NothingToSave("no item was selected to save")
    names = UniqueNames()
    entries: list[ZipEntry] = [
        ZipFile(names.claim(msg_filename(source.subject)), _lazy(source, max_item_bytes), source.received)
        for source in sources
    ]
    return zip_download(entries, archive_name)


async def _lazy_entries(items: AsyncIterable[MsgSource], max_item_bytes: int) -> AsyncIterator[ZipEntry]:
    names = UniqueNames()
    async for source in items:
        yield ZipFile(
            names.claim(msg_filename(source.subject)), _lazy(source, max_item_bytes), source.received
        )


async def _build(source: MsgSource, max_item_bytes: int) -> bytes:
    mime = await read_all(source.open(), max_item_bytes, f"The item {source.subject or ''!r}")
    return await asyncio.to_thread(mime_to_msg, mime, received=source.received)


def _lazy(source: MsgSource, max_item_bytes: int) -> Opener:
    def open_msg() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            content = await _build(source, max_item_bytes)
            async for piece in _slices(content):
                yield piece

        return chunks()

    return open_msg


async def _slices(content: bytes) -> AsyncIterator[bytes]:
    view = memoryview(content)
    for start in range(0, len(view), _SLICE):
        yield bytes(view[start : start + _SLICE])


def _header_block(mime: bytes) -> str:
    """The message's own header block, kept whole as PR_TRANSPORT_MESSAGE_HEADERS."""
    normalized = mime.replace(b"\r\n", b"\n")
    end = normalized.find(b"\n\n")
    head = normalized if end < 0 else normalized[: end + 1]
    return head.decode("utf-8", "replace").replace("\n", "\r\n")


def _to_mapi(message: EmailMessage, headers: str, received: datetime | None) -> mapi.MapiMessage:
    item = mapi.MapiMessage.create()
    item.set_property(mapi.PropertyId.MESSAGE_CLASS, "IPM.Note")
    item.subject = str(message.get("Subject", "") or "")
    if message_id := message.get("Message-ID"):
        item.set_property(mapi.CommonMessagePropertyId.INTERNET_MESSAGE_ID, _STRING, str(message_id).strip())
    _set_sender(item, message)
    sent = _date(message.get("Date"))
    arrived = received or _received_date(message) or sent
    if sent is not None:
        item.set_property(_PR_CLIENT_SUBMIT_TIME, mapi.PropertyTypeCode.PTYP_TIME, sent)
    if arrived is not None:
        item.set_property(mapi.PropertyId.MESSAGE_DELIVERY_TIME, arrived.astimezone(UTC))
    importance = _IMPORTANCE.get(str(message.get("Importance", "")).strip().lower())
    if importance is not None:
        item.set_property(_PR_IMPORTANCE, mapi.PropertyTypeCode.PTYP_INTEGER32, importance)
    for header, kind in (
        ("To", mapi.RECIPIENT_TYPE_TO),
        ("Cc", mapi.RECIPIENT_TYPE_CC),
        ("Bcc", mapi.RECIPIENT_TYPE_BCC),
    ):
        for name, address in getaddresses([str(value) for value in message.get_all(header, [])]):
            if address:
                item.add_recipient(address, display_name=name or address, recipient_type=kind)
    if headers:
        item.set_property(mapi.PropertyId.TRANSPORT_MESSAGE_HEADERS, headers)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    if plain is not None:
        item.body = _text(plain)
    if html is not None:
        item.body_html = _text(html)
    chosen = {id(part) for part in (plain, html) if part is not None}
    # A mail that is a single non-text part (a bare PDF, say) is all attachment.
    parts: list[Message] = [message] if not message.is_multipart() and id(message) not in chosen else []
    parts += _attachment_parts(message, chosen)
    for index, part in enumerate(parts, start=1):
        _attach(item, part, index)
    return item


def _set_sender(item: mapi.MapiMessage, message: EmailMessage) -> None:
    name, address = parseaddr(str(message.get("From", "") or message.get("Sender", "") or ""))
    if not address:
        return
    display = name or address
    item.set_property(mapi.PropertyId.SENDER_NAME, display)
    item.set_property(mapi.PropertyId.SENDER_EMAIL_ADDRESS, address)
    item.set_property(mapi.PropertyId.SENDER_ADDRESS_TYPE, "SMTP")
    item.set_property(_PR_SENDER_SMTP_ADDRESS, _STRING, address)
    item.set_property(_PR_SENT_REPRESENTING_NAME, _STRING, display)
    item.set_property(_PR_SENT_REPRESENTING_EMAIL_ADDRESS, _STRING, address)
    item.set_property(_PR_SENT_REPRESENTING_ADDRTYPE, _STRING, "SMTP")
    item.set_property(_PR_SENT_REPRESENTING_SMTP_ADDRESS, _STRING, address)


def _date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _received_date(message: EmailMessage) -> datetime | None:
    """The newest Received header's timestamp: when the mail reached the mailbox."""
    first = message.get("Received")
    if not first:
        return None
    return _date(str(first).rpartition(";")[2].strip())


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # a charset name Python does not know
        return payload.decode("utf-8", "replace")


def _attachment_parts(part: Message, chosen: set[int]) -> list[Message]:
    return list(_walk_attachments(part, chosen))


def _walk_attachments(part: Message, chosen: set[int]) -> Iterator[Message]:
    """Every leaf part that is not a chosen body, without descending into attached messages."""
    for child in part.iter_parts() if isinstance(part, EmailMessage) else ():
        if id(child) in chosen:
            continue
        if child.get_content_maintype() == "multipart":
            yield from _walk_attachments(child, chosen)
        else:
            yield child


def _attach(item: mapi.MapiMessage, part: Message, index: int) -> None:
    content_type = part.get_content_type()
    filename = part.get_filename()
    if content_type == "message/rfc822" and isinstance(part, EmailMessage):
        inner = part.get_content()
        if isinstance(inner, EmailMessage):
            raw = inner.as_bytes(policy=policy.default)
            child = _to_mapi(inner, _header_block(raw), None)
            name = filename or msg_filename(str(inner.get("Subject", "") or ""))
            item.add_embedded_message_attachment(child, filename=name, mime_type=content_type)
            return
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(part.get_payload()).encode("utf-8")
    if not filename:
        filename = f"attachment-{index}{mimetypes.guess_extension(content_type) or '.bin'}"
    content_id = part.get("Content-ID")
    attachment = item.add_attachment(
        filename,
        data,
        mime_type=content_type,
        content_id=str(content_id).strip().strip("<>") if content_id else None,
    )
    if content_id and part.get_content_disposition() != "attachment":
        # An image the HTML body shows inline: Outlook hides it from the attachment list.
        attachment.set_property(_PR_ATTACHMENT_HIDDEN, mapi.PropertyTypeCode.PTYP_BOOLEAN, True)
