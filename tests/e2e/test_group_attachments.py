"""Files posted to group conversations, through the real parts: a full backup stores a posted file
once however many groups it was posted to, the thread's saved digest holds its exact bytes, an
incremental run after a reply with a file picks the new file up, and a run without changes reads
no attachment at all (the emulator counts attachment reads)."""

from __future__ import annotations

import base64
import random
import time
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from m365vault.db.catalog_tables import entries_table, versions_table
from tests.e2e.conftest import Product
from tests.support.product import default_repository_id, wait_new_session, wait_session_end


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _file(name: str, data: bytes, ctype: str = "application/pdf") -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": name,
        "contentType": ctype,
        "contentBytes": base64.b64encode(data).decode(),
    }


def _post(text: str, *files: dict[str, Any]) -> dict[str, Any]:
    return {"body": {"contentType": "html", "content": f"<p>{text}</p>"}, "attachments": list(files)}


def _reads(product: Product) -> int:
    with product.emulator.admin() as admin:
        return int(admin.get("/stats").json()["groupAttachmentReads"])


def _run(product: Product, job: dict[str, Any], previous: str | None) -> dict[str, Any]:
    time.sleep(0.01)
    r = product.api.post(f"/v3/Jobs/{job['id']}/action", json={"start": None})
    assert r.status_code == 200, r.text
    wait_new_session(product.api, job["id"], previous)
    session = wait_session_end(product.api, job["id"])
    assert session["status"] == "Success", session
    return session


def _attachments(product: Product, thread_id: str, at: datetime) -> list[tuple[Any, ...]]:
    """(name, size, content type, content ref) of the thread's attachment entries live at `at`."""
    v, e, parent = versions_table, entries_table, entries_table.alias("thread")
    with product.db.connect() as conn:
        rows = conn.execute(
            select(v.c.name, v.c.size, v.c.extras, v.c.content_ref)
            .join(e, e.c.id == v.c.entry_id)
            .join(parent, parent.c.id == v.c.parent_id)
            .where(
                parent.c.external_id == thread_id,
                v.c.kind == "attachment",
                v.c.first_seen <= at,
                (v.c.gone_at.is_(None)) | (v.c.gone_at > at),
            )
            .order_by(v.c.name)
        ).all()
    return [(r.name, r.size, (r.extras or {}).get("contentType"), r.content_ref) for r in rows]


def _saved_digest(
    product: Product, job: dict[str, Any], group: str, thread: str, at: datetime
) -> tuple[dict[str, Any], EmailMessage]:
    api = product.api
    r = api.post(
        f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex", "datetime": at.isoformat()}}
    )
    assert r.status_code == 201, r.text
    base = f"/v3/RestoreSessions/{r.json()['id']}/Organization/Mailboxes/{group}/Items/{thread}"
    item = api.get(base).json()
    saved = api.post(f"{base}/Action", json={"saveToEml": None})
    assert saved.status_code == 200, saved.text
    message = message_from_bytes(saved.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return item, message


def _files(message: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    out = []
    for part in message.iter_parts():
        post = part.get_content()
        for attachment in post.iter_attachments():
            out.append(
                (
                    attachment.get_filename(),
                    attachment.get_content_type(),
                    attachment.get_payload(decode=True),
                )
            )
    return out


def test_posted_files_are_backed_up_once_restored_exactly_and_read_only_when_their_thread_changes(
    product: Product,
) -> None:
    rng = random.Random(20260301)
    deck = rng.randbytes(1_400_000)  # chunked by the repository (over its 1 MiB small-item limit)
    notes = rng.randbytes(30_000)
    with product.emulator.graph() as graph:
        groups = graph.get("/groups").json()["value"][:2]
        threads = {}
        for g in groups:  # the same deck posted to two groups
            r = graph.post(
                f"/groups/{g['id']}/threads",
                json={"topic": "Board deck", "posts": [_post("Deck.", _file("deck.pdf", deck))]},
            )
            assert r.status_code == 201, r.text
            threads[g["id"]] = r.json()["id"]
    body = {
        "name": "Group conversations",
        "backupType": "SelectedItems",
        "repositoryId": default_repository_id(product.api),
        "selectedItems": [
            {"type": "Group", "group": {"id": g["id"], "displayName": g["displayName"]}, "mailbox": "true"}
            for g in groups
        ],
        "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "03:00:00"},
    }
    r = product.api.post(f"/v3/Organizations/{product.org['id']}/Jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()

    reads = _reads(product)
    full = _run(product, job, None)
    assert _reads(product) > reads  # generated posts' attachments and ours were read
    at_full = _time(full["endTime"])
    (first_group, first_thread), (_, second_thread) = threads.items()
    recorded = [_attachments(product, t, at_full) for t in threads.values()]
    assert [(n, s, c) for n, s, c, _ in recorded[0]] == [("deck.pdf", len(deck), "application/pdf")]
    assert recorded[0][0][3] == recorded[1][0][3]  # one content ref: the repository holds the deck once
    item, message = _saved_digest(product, job, first_group, first_thread, at_full)
    assert item["attachments"] == [{"name": "deck.pdf", "sizeBytes": len(deck)}]
    assert _files(message) == [("deck.pdf", "application/pdf", deck)]

    # A reply with a file: the next run reads that thread's attachments (its two files) and no others.
    with product.emulator.graph() as graph:
        reply = {"post": _post("Notes.", _file("notes.txt", notes, "text/plain"))}
        assert (
            graph.post(f"/groups/{first_group}/threads/{first_thread}/reply", json=reply).status_code == 202
        )
    reads = _reads(product)
    incremental = _run(product, job, full["id"])
    assert _reads(product) - reads == 4  # two attachment lists and two $value reads
    at_incremental = _time(incremental["endTime"])
    names = [(n, s) for n, s, _, _ in _attachments(product, first_thread, at_incremental)]
    assert names == [("deck.pdf", len(deck)), ("notes.txt", len(notes))]
    assert [n for n, *_ in _attachments(product, first_thread, at_full)] == ["deck.pdf"]  # history kept
    _, message = _saved_digest(product, job, first_group, first_thread, at_incremental)
    assert _files(message) == [("deck.pdf", "application/pdf", deck), ("notes.txt", "text/plain", notes)]
    _, earlier = _saved_digest(product, job, first_group, first_thread, at_full)
    assert _files(earlier) == [("deck.pdf", "application/pdf", deck)]

    # Nothing changed: no attachment is read again.
    reads = _reads(product)
    _run(product, job, incremental["id"])
    assert _reads(product) == reads
    assert len(_attachments(product, second_thread, datetime.now().astimezone())) == 1
