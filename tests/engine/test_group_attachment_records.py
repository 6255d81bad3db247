"""The recorder writes a group thread's post attachments as catalog entries under the thread, on a
real migrated database (SQLite and PostgreSQL): they version and age with the thread, keep their
bytes referenced for prune, stay out of the collection's listings and resync diff, and close when
the thread's new version no longer lists them or the thread is gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from m365vault.catalog.refs import ContentRefs
from m365vault.db.catalog_tables import entries_table, versions_table
from m365vault.db.engine import make_engine
from m365vault.db.migrate import upgrade
from m365vault.engine.adapters.group_mailbox import (
    CONVERSATIONS,
    CONVERSATIONS_ID,
    CONVERSATIONS_NAME,
    attachment_entry_id,
)
from m365vault.engine.adapters.recorder import CatalogRecorder
from m365vault.engine.ports import BackupObject, CollectionRef, ItemVersion, ObjectKind, PageRecord

ORG = "6b1f4bde-4cf1-4bb0-9d1c-2b1e9d7d0001"
REPO = "0a4c0c4e-8d4b-44a5-9a93-5e1f4c1b0002"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
GROUP = BackupObject(ObjectKind.GROUP_MAILBOX, "group-1", "Sales")
COLLECTION = CollectionRef(CONVERSATIONS_ID, CONVERSATIONS, CONVERSATIONS_NAME)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def thread(key: str, delivered: datetime, files: list[tuple[str, str]]) -> ItemVersion:
    """A thread version as the group adapter hands it over: (post id, name) per attachment."""
    attachments = [
        {
            "id": attachment_entry_id("thread-1", post, name),
            "name": name,
            "size": 100 + len(name),
            "contentType": "application/pdf",
            "ref": f"b{name}",
            "postId": post,
        }
        for post, name in files
    ]
    meta = {
        "kind": "item",
        "parent": CONVERSATIONS_ID,
        "name": "Plan",
        "subject": "Plan",
        "item_class": "IPM.Post",
        "received_at": delivered.isoformat(),
        "modified_at": delivered.isoformat(),
        "attachments": attachments,
        "extras": {"attachments": [{"name": a["name"], "sizeBytes": a["size"]} for a in attachments]},
    }
    return ItemVersion("thread-1", key, "bthread" + key, 500, meta)


def live_attachments(engine: Engine) -> list[tuple[str, str | None, datetime | None]]:
    v, e = versions_table, entries_table
    with engine.connect() as conn:
        rows = conn.execute(
            select(v.c.name, v.c.content_ref, v.c.modified_at)
            .join(e, e.c.id == v.c.entry_id)
            .where(v.c.kind == "attachment", v.c.gone_at.is_(None))
            .order_by(v.c.name)
        ).all()
    return [(r.name, r.content_ref, r.modified_at) for r in rows]


async def test_attachments_follow_their_thread(engine: Engine) -> None:
    recorder = CatalogRecorder(engine, ORG, REPO)
    first = thread("k1", T0, [("p1", "deck.pdf"), ("p1", "notes.pdf")])
    await recorder.record_page(GROUP, PageRecord(COLLECTION, [first], [], None, T0))
    assert live_attachments(engine) == [("deck.pdf", "bdeck.pdf", T0), ("notes.pdf", "bnotes.pdf", T0)]
    # The collection's listings and resync diff see the thread only.
    assert await recorder.live_ids(GROUP, CONVERSATIONS_ID) == {"thread-1"}
    assert await recorder.current_versions(GROUP, CONVERSATIONS_ID, ["thread-1"]) == {"thread-1": "k1"}
    assert {"bdeck.pdf", "bnotes.pdf", "bthreadk1"} <= set(ContentRefs(engine).live_refs(REPO))

    # A new thread version that no longer lists notes.pdf (its post was deleted) and adds a file.
    later = T0 + timedelta(days=1)
    second = thread("k2", later, [("p1", "deck.pdf"), ("p3", "budget.pdf")])
    await recorder.record_page(GROUP, PageRecord(COLLECTION, [second], [], None, later))
    assert live_attachments(engine) == [
        ("budget.pdf", "bbudget.pdf", later),
        ("deck.pdf", "bdeck.pdf", later),
    ]
    with engine.connect() as conn:  # the old deck.pdf version closed when the thread's did
        deck = conn.execute(
            select(versions_table.c.first_seen, versions_table.c.gone_at)
            .where(versions_table.c.name == "deck.pdf")
            .order_by(versions_table.c.first_seen)
        ).all()
    assert [(r.first_seen, r.gone_at) for r in deck] == [(T0, later), (later, None)]

    # The thread disappears from the listing: its attachments go with it.
    gone_at = T0 + timedelta(days=2)
    await recorder.record_page(GROUP, PageRecord(COLLECTION, [], ["thread-1"], None, gone_at))
    assert live_attachments(engine) == []
    assert await recorder.live_ids(GROUP, CONVERSATIONS_ID) == set()
