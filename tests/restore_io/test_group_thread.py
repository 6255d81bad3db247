"""A backed-up group thread (Graph JSON) as one RFC 822 message with a digest of its posts."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from m365vault.restore.errors import RestoreOutputError
from m365vault.restore.formats.group_thread import is_group_thread, thread_mime, thread_to_mime


def _post(name: str, address: str, when: str, html: str) -> dict:
    sender = {"emailAddress": {"name": name, "address": address}}
    return {
        "from": sender,
        "sender": sender,
        "receivedDateTime": when,
        "body": {"contentType": "html", "content": html},
    }


THREAD = {
    "thread": {
        "id": "AAQk1",
        "topic": "Quarterly plan — draft",
        "lastDeliveredDateTime": "2026-03-02T10:00:00Z",
        "toRecipients": [{"emailAddress": {"name": "Finance", "address": "finance@contoso.com"}}],
    },
    "posts": [
        _post("Adele Vance", "adele@contoso.com", "2026-03-01T09:00:00Z", "<p>First draft attached.</p>"),
        _post("Alex Wilber", "alex@contoso.com", "2026-03-02T10:00:00Z", "<p>Looks good.</p>"),
    ],
}


def test_thread_becomes_a_digest_of_its_posts() -> None:
    message = message_from_bytes(thread_to_mime(json.dumps(THREAD).encode()), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Quarterly plan — draft"
    assert "adele@contoso.com" in message["From"] and "finance@contoso.com" in message["To"]
    assert message["Date"].datetime.isoformat() == "2026-03-02T10:00:00+00:00"
    assert message.get_content_type() == "multipart/digest"
    posts = [part.get_content() for part in message.iter_parts()]
    assert [str(p["From"]) for p in posts] == [
        "Adele Vance <adele@contoso.com>",
        "Alex Wilber <alex@contoso.com>",
    ]
    assert [p.get_content_type() for p in posts] == ["text/html", "text/html"]
    assert "Looks good." in posts[1].get_content()


async def test_stream_and_bad_content() -> None:
    pieces = [
        piece
        async for piece in thread_mime([json.dumps(THREAD).encode()[:10], json.dumps(THREAD).encode()[10:]])
    ]
    assert b"multipart/digest" in b"".join(pieces)
    with pytest.raises(RestoreOutputError):
        thread_to_mime(b"From: not json\r\n\r\nbody")
    assert is_group_thread("IPM.Post") and not is_group_thread("IPM.Note")
