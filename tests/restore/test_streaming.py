"""A whole-mailbox export streams through the catalog page by page: while the output is written,
the items listed from the catalog stay within a bounded lead over the items already written (the
listing is never taken whole before the first byte), and the output holds every item."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from m365vault.catalog import CatalogReader, EntryKind, ObjectKind
from m365vault.control.accounts import Principal
from m365vault.control.restore_actions import STREAM_BATCH, RestoreActions, Selection
from m365vault.db.config_tables import RestoreSession
from m365vault.db.engine import make_engine
from tests.restore.backup import Backup, Entry
from tests.restore.conftest import NOW, Env, default_repository, init_repository, org_body, start_env

ITEMS = 2500
PAGE = 500  # the explorer's catalog page while walking a selection


async def _big_mailbox(env: Env) -> None:
    engine = make_engine(env.db_url)
    repo = await init_repository(env.repository_path, env.repository_password)
    try:
        b = Backup(engine, repo, env.org_id, env.repository_id)
        at = NOW - timedelta(days=1)
        obj = b.object(ObjectKind.MAILBOX, "u-big", at, name="Big", email="big@contoso.com")
        entries = [Entry("f-big", EntryKind.FOLDER, None, name="Inbox", item_class="Mail")]
        entries += [
            Entry(
                f"m-{n:05d}",
                EntryKind.ITEM,
                "f-big",
                b"Subject: n%d\r\n\r\nbody %d\r\n" % (n, n),
                subject=f"n{n}",
                item_class="IPM.Note",
                sender="big@contoso.com",
                received_at=at,
            )
            for n in range(ITEMS)
        ]
        await b.page(obj, at, entries)
    finally:
        await repo.close()
        engine.dispose()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("restore-streaming")
    db_url = f"sqlite:///{tmp / 'config.db'}"
    client, clock, tokens = start_env(tmp, db_url)
    try:
        org = client.post("/v3/Organizations", json=org_body("contoso.onmicrosoft.com"))
        assert org.status_code == 201, org.text
        repo_id, path, password = default_repository(client, client.app.state.control)  # type: ignore[attr-defined]
        found = Env(client, clock, org.json()["id"], repo_id, path, password, db_url, tokens)
        asyncio.run(_big_mailbox(found))
        yield found
    finally:
        client.__exit__(None, None, None)


def test_mailbox_export_reads_the_catalog_as_it_writes(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = env.explore("vex")
    app: Any = env.client.app
    actions: RestoreActions = app.state.restore_actions
    engine = make_engine(env.db_url)
    try:
        with engine.connect() as conn:
            owner = conn.execute(
                select(RestoreSession.owner_user_id).where(RestoreSession.id == uuid.UUID(sid))
            ).scalar_one()
    finally:
        engine.dispose()
    tree = app.state.restore.tree(Principal(owner, "admin"), uuid.UUID(sid))

    listed = 0
    original = CatalogReader.list_versions

    def counting(self: CatalogReader, *args: Any, **kwargs: Any) -> Any:
        nonlocal listed
        page = original(self, *args, **kwargs)
        listed += sum(1 for v in page.items if v.kind is EntryKind.ITEM)
        return page

    monkeypatch.setattr(CatalogReader, "list_versions", counting)

    async def export() -> tuple[int, int, int]:
        download = await actions.save_mail(tree, Selection(object_id="u-big"), "mbox", "export")
        listed_at_start = listed
        written, lead = 0, 0
        async for chunk in download.chunks:
            written += chunk.count(b"From big@contoso.com ")
            lead = max(lead, listed - written)
        return listed_at_start, written, lead

    at_start, written, lead = env.client.portal.call(export)  # type: ignore[union-attr]
    assert written == ITEMS
    assert listed >= ITEMS
    # Before the first byte only the head of the listing was read, and while writing the
    # listing never ran further ahead than one catalog page plus one streaming batch.
    assert at_start <= PAGE
    assert lead <= PAGE + STREAM_BATCH, lead
