"""A backed-up group mailbox thread as MIME, for the mail outputs (.eml, .msg, mbox, send).

The backup keeps a thread as Graph's JSON (`{"thread": {...}, "posts": [...]}`, see
engine/adapters/group_mailbox.py). As mail it becomes one RFC 822 message whose headers are the
thread's (topic, first sender, recipients, last delivery) and whose body is a multipart/digest
holding each post, oldest first, as a message/rfc822 part with its own sender, date and HTML body.
A post with attachments becomes multipart/mixed: its body, then each attachment with its name,
content type and the exact bytes backed up (each saved as its own repository item; the post JSON
names it by `contentRef`). Reference attachments (links, no bytes) and attachments of threads
backed up before attachments were are left out. The attachments of one thread are held in memory
together, up to `MAX_ATTACHMENT_BYTES` (Exchange's own limit per message).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import Any

from m365vault.restore.errors import RestoreOutputError
from m365vault.restore.formats.download import Chunks, read_all

THREAD_CLASS = "IPM.Post"
MAX_THREAD_BYTES = 64 << 20  # a thread is read whole to be converted
MAX_ATTACHMENT_BYTES = 150 << 20  # a thread's attachments, all held to build the digest

Loader = Callable[[str], Chunks]  # repository ref -> the item's content


def is_group_thread(item_class: str | None) -> bool:
    return (item_class or "").casefold() == THREAD_CLASS.casefold()


def _address(value: Any) -> str:
    address = (value or {}).get("emailAddress") or {}
    return formataddr((str(address.get("name") or ""), str(address.get("address") or "")))


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return format_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _attachments(post: dict[str, Any]) -> list[dict[str, Any]]:
    value = post.get("attachments")
    return (
        [a for a in value if isinstance(a, dict) and a.get("contentRef")] if isinstance(value, list) else []
    )


def _post(topic: str, post: dict[str, Any], files: Mapping[str, bytes]) -> EmailMessage:
    part = EmailMessage()
    part["Subject"] = topic
    part["From"] = _address(post.get("from") or post.get("sender"))
    date = _date(post.get("receivedDateTime") or post.get("createdDateTime"))
    if date:
        part["Date"] = date
    body = post.get("body") or {}
    subtype = "html" if str(body.get("contentType") or "").lower() == "html" else "plain"
    part.set_content(str(body.get("content") or ""), subtype=subtype)
    for attachment in _attachments(post):
        data = files.get(str(attachment["contentRef"]))
        if data is None:
            continue
        maintype, _, subtype = str(attachment.get("contentType") or "").partition("/")
        if not maintype or not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        name = str(attachment.get("name") or "attachment")
        part.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return part


def _parse(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        doc = json.loads(data)
        return doc["thread"], doc["posts"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RestoreOutputError("the backed-up group thread is not readable as a thread") from exc


def thread_to_mime(data: bytes, files: Mapping[str, bytes] | None = None) -> bytes:
    """The digest of a thread; `files` holds the attachments' bytes by repository ref."""
    thread, posts = _parse(data)
    topic = str(thread.get("topic") or "")
    outer = EmailMessage(policy=SMTP)
    outer["MIME-Version"] = "1.0"
    outer["Content-Type"] = "multipart/digest"  # the generator adds the boundary
    outer["Subject"] = topic
    if posts:
        outer["From"] = _address(posts[0].get("from") or posts[0].get("sender"))
    recipients = [_address(r) for r in thread.get("toRecipients") or []]
    if recipients:
        outer["To"] = ", ".join(recipients)
    date = _date(thread.get("lastDeliveredDateTime"))
    if date:
        outer["Date"] = date
    outer.set_payload([])
    for post in posts:
        part = EmailMessage(policy=SMTP)
        part.set_content(_post(topic, post, files or {}))  # message/rfc822
        outer.attach(part)
    return outer.as_bytes()


async def thread_mime(chunks: Chunks, load: Loader | None = None) -> AsyncIterator[bytes]:
    """The MIME of a backed-up thread, from its stored JSON and (with `load`) its attachments."""
    data = await read_all(chunks, MAX_THREAD_BYTES, "the group thread")
    files: dict[str, bytes] = {}
    if load is not None:
        _, posts = _parse(data)
        budget = MAX_ATTACHMENT_BYTES
        for post in posts if isinstance(posts, list) else []:
            for attachment in _attachments(post) if isinstance(post, dict) else []:
                ref = str(attachment["contentRef"])
                if ref not in files:
                    files[ref] = await read_all(load(ref), budget, "the group thread's attachments")
                    budget -= len(files[ref])
    yield thread_to_mime(data, files)
