"""Unchanged collections' tokens saved in batches: the writer's `save_tokens_in` and the engine
recorder's grouped commit of token-only pages (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from m365vault.catalog import ObjectKind
from m365vault.db.catalog_tables import entries_table, versions_table
from m365vault.engine.adapters.recorder import CatalogRecorder
from m365vault.engine.adapters.source import MAIL_FOLDER
from m365vault.engine.ports import BackupObject, CollectionRef, PageRecord
from m365vault.engine.ports import ObjectKind as EngineKind
from tests.catalog.conftest import ORG, REPO, Catalog, run


def test_save_tokens_in_updates_saved_tokens_and_inserts_new_ones(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    with catalog.engine.begin() as conn:
        w.save_tokens_in(conn, box.id, [("a", "a1"), ("b", "b1")], run(1))
    with catalog.engine.begin() as conn:
        w.save_tokens_in(conn, box.id, [("b", "b2"), ("c", "c1"), ("b", "b3")], run(2))
    assert w.delta_tokens(box.id) == {"a": "a1", "b": "b3", "c": "c1"}
    # Inside the caller's transaction: a failure after it leaves the old tokens.
    with pytest.raises(RuntimeError), catalog.engine.begin() as conn:
        w.save_tokens_in(conn, box.id, [("a", "a2"), ("d", "d1")], run(3))
        raise RuntimeError("the rest of the transaction failed")
    assert w.delta_tokens(box.id) == {"a": "a1", "b": "b3", "c": "c1"}


def _live_names(catalog: Catalog, object_id: int) -> dict[str, str | None]:
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(entries_table.c.external_id, versions_table.c.name)
            .join(versions_table, versions_table.c.entry_id == entries_table.c.id)
            .where(entries_table.c.object_id == object_id, versions_table.c.gone_at.is_(None))
        )
        return {row.external_id: row.name for row in rows}


async def test_a_group_of_unchanged_collections_commits_containers_and_tokens_together(
    catalog: Catalog,
) -> None:
    recorder = CatalogRecorder(catalog.engine, ORG, REPO)
    obj = BackupObject(EngineKind.MAILBOX, "user-1", "user-1@contoso.example")
    inbox = CollectionRef("inbox", MAIL_FOLDER, "Inbox")
    child = CollectionRef("child", MAIL_FOLDER, "Projects", parent_id="inbox")
    empty = CollectionRef("empty", MAIL_FOLDER, "Empty")

    def quiet(collection: CollectionRef, token: str | None, n: int) -> PageRecord:
        return PageRecord(collection, [], [], token, run(n) + timedelta(seconds=len(collection.id)))

    # First rounds of empty folders are quiet too: their tokens are new rows.
    await recorder.record_pages(obj, [quiet(inbox, "i1", 1), quiet(child, "c1", 1), quiet(empty, "e1", 1)])
    box = catalog.writer.ensure_object(ORG, REPO, ObjectKind.MAILBOX, "user-1", seen_at=run(1))
    assert catalog.writer.delta_tokens(box.id) == {"inbox": "i1", "child": "c1", "empty": "e1"}
    assert _live_names(catalog, box.id) == {"inbox": "Inbox", "child": "Projects", "empty": "Empty"}

    # Next run: a renamed folder is still recorded; a page without a token keeps the saved one.
    renamed = CollectionRef("child", MAIL_FOLDER, "Projects 2026", parent_id="inbox")
    await recorder.record_pages(obj, [quiet(inbox, "i2", 2), quiet(renamed, "c2", 2), quiet(empty, None, 2)])
    assert catalog.writer.delta_tokens(box.id) == {"inbox": "i2", "child": "c2", "empty": "e1"}
    assert _live_names(catalog, box.id) == {"inbox": "Inbox", "child": "Projects 2026", "empty": "Empty"}
    assert await recorder.load_token(obj, "child") == "c2"
