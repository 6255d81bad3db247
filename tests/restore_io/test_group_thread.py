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


async def test_attachments_come_back_byte_for_byte_in_their_post() -> None:
    pdf, csv = bytes(range(256)) * 9, b"a,b\r\nc,d\n"
    given: list[dict] = THREAD["posts"]  # type: ignore[assignment]
    first = {
        **given[0],
        "hasAttachments": True,
        "attachments": [
            {
                "name": "plan.pdf",
                "contentType": "application/pdf",
                "contentRef": "b1",
                "contentSize": len(pdf),
            },
            {"name": "figures.csv", "contentType": "text/csv", "contentRef": "b2"},
            {"name": "link", "@odata.type": "#microsoft.graph.referenceAttachment", "contentRef": None},
        ],
    }
    doc = {**THREAD, "posts": [first, given[1]]}
    store = {"b1": pdf, "b2": csv}
    loaded: list[str] = []

    def load(ref: str) -> list[bytes]:
        loaded.append(ref)
        return [store[ref][:7], store[ref][7:]]

    raw = b"".join([piece async for piece in thread_mime(json.dumps(doc).encode(), load)])
    assert loaded == ["b1", "b2"]
    message = message_from_bytes(raw, policy=policy.default)
    posts = [part.get_content() for part in message.iter_parts()]
    assert posts[0].get_content_type() == "multipart/mixed"
    assert "First draft attached." in posts[0].get_body(preferencelist=("html",)).get_content()
    files = [
        (a.get_filename(), a.get_content_type(), a.get_payload(decode=True))
        for a in posts[0].iter_attachments()
    ]
    assert files == [("plan.pdf", "application/pdf", pdf), ("figures.csv", "text/csv", csv)]
    assert posts[1].get_content_type() == "text/html"
    # Without a loader (or for threads backed up before attachments were) the digest has no files.
    bare = message_from_bytes(thread_to_mime(json.dumps(doc).encode()), policy=policy.default)
    assert not list(next(bare.iter_parts()).get_content().iter_attachments())
