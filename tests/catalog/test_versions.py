"""Writer and point-in-time reader behaviour on named scenarios, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from m365vault.catalog import (
    ANY_PARENT,
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ListingQuery,
    ObjectKind,
    OutOfOrderWrite,
    PageCursors,
    PageWrite,
    UnknownObject,
    VersionWrite,
)
from m365vault.db.catalog_tables import sync_state_table, versions_table
from tests.catalog.conftest import ORG, REPO, T0, Catalog, run

INBOX = "folder-inbox"
ARCHIVE = "folder-archive"


def folder(ext: str, name: str, parent: str | None = None) -> VersionWrite:
    return VersionWrite(ext, EntryKind.FOLDER, parent, EntryMetadata(name=name, item_class="IPF.Note"))


def mail(ext: str, subject: str, parent: str = INBOX, ref: str | None = None) -> VersionWrite:
    return VersionWrite(
        ext,
        EntryKind.ITEM,
        parent,
        EntryMetadata(
            subject=subject,
            sender="alice@contoso.com",
            to=("bob@contoso.com",),
            cc=(),
            received_at=T0 - timedelta(hours=1),
            item_class="IPM.Note",
            size=len(subject),
        ),
        content_ref=ref or f"ref-{ext}-{subject}",
    )


def items(
    cat: Catalog, object_id: int, parent: str | None, at: datetime, **flags: bool
) -> list[tuple[str, str]]:
    page = cat.reader.list_versions(ListingQuery(object_id, EntryKind.ITEM, at, parent, **flags), limit=1000)
    return [(v.external_id, v.metadata.subject or "") for v in page.items]


def version_rows(cat: Catalog) -> int:
    with cat.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(versions_table)).scalar_one())


def test_point_in_time_show_deleted_and_all_versions(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(
        box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"), mail("m1", "hello"), mail("m2", "two")))
    )
    w.apply_page(box.id, PageWrite(run(2), upserts=(mail("m1", "hello edited"),), gones=(GoneWrite("m2"),)))
    w.apply_page(box.id, PageWrite(run(3), upserts=(mail("m3", "three"),)))

    assert items(catalog, box.id, INBOX, run(0)) == []
    assert items(catalog, box.id, INBOX, run(1)) == [("m1", "hello"), ("m2", "two")]
    assert items(catalog, box.id, INBOX, run(1) + timedelta(hours=5)) == [("m1", "hello"), ("m2", "two")]
    assert items(catalog, box.id, INBOX, run(2)) == [("m1", "hello edited")]
    assert items(catalog, box.id, INBOX, run(3)) == [("m1", "hello edited"), ("m3", "three")]
    # show-deleted adds m2's last version once it is gone, never before
    assert items(catalog, box.id, INBOX, run(1), show_deleted=True) == [("m1", "hello"), ("m2", "two")]
    assert items(catalog, box.id, INBOX, run(2), show_deleted=True) == [("m1", "hello edited"), ("m2", "two")]
    # all-versions: every version seen by T
    assert items(catalog, box.id, INBOX, run(2), all_versions=True) == [
        ("m1", "hello"),
        ("m1", "hello edited"),
        ("m2", "two"),
    ]
    assert items(catalog, box.id, INBOX, run(1), all_versions=True) == [("m1", "hello"), ("m2", "two")]
    # single lookups
    assert catalog.reader.version_at(box.id, "m2", run(3)) is None
    gone = catalog.reader.version_at(box.id, "m2", run(3), show_deleted=True)
    assert gone is not None and gone.is_deleted and gone.gone_at == run(2)
    m1 = catalog.reader.version_at(box.id, "m1", run(1))
    assert m1 is not None and m1.metadata.subject == "hello" and m1.metadata.to == ("bob@contoso.com",)
    assert m1.parent_external_id == INBOX
    assert catalog.reader.get_version(m1.version_id) == m1
    history = catalog.reader.history(box.id, "m1")
    assert [(h.first_seen, h.gone_at, h.end_reason) for h in history] == [
        (run(1), run(2), EndReason.REPLACED),
        (run(2), None, EndReason.OPEN),
    ]


def test_replaying_a_page_changes_nothing(catalog: Catalog) -> None:
    box = catalog.mailbox()
    page = PageWrite(
        run(1),
        upserts=(folder(INBOX, "Inbox"), mail("m1", "a"), mail("m2", "b")),
        gones=(GoneWrite("never-seen"),),
        delta_token=(INBOX, "token-1"),
    )
    first = catalog.writer.apply_page(box.id, page)
    assert (first.created, first.unchanged) == (3, 0)
    before = version_rows(catalog)
    again = catalog.writer.apply_page(box.id, page)
    assert (again.created, again.replaced, again.updated_in_place, again.gone, again.unchanged) == (
        0,
        0,
        0,
        0,
        3,
    )
    assert version_rows(catalog) == before
    second = PageWrite(run(2), upserts=(mail("m1", "a2"),), gones=(GoneWrite("m2"),))
    catalog.writer.apply_page(box.id, second)
    rows = version_rows(catalog)
    replay = catalog.writer.apply_page(box.id, second)
    assert (replay.replaced, replay.gone, replay.unchanged) == (0, 0, 1)
    assert version_rows(catalog) == rows
    # a page from an older run after a newer one is refused whole, and changes nothing
    with pytest.raises(OutOfOrderWrite):
        catalog.writer.apply_page(box.id, PageWrite(run(1), upserts=(mail("m9", "new"), mail("m1", "old"))))
    assert version_rows(catalog) == rows
    assert catalog.reader.version_at(box.id, "m9", run(5)) is None


def test_moves_and_folder_renames(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(
        box.id,
        PageWrite(run(1), upserts=(folder(INBOX, "Inbox"), folder(ARCHIVE, "Old"), mail("m1", "x"))),
    )
    w.apply_page(
        box.id, PageWrite(run(2), upserts=(mail("m1", "x", parent=ARCHIVE), folder(ARCHIVE, "Archive")))
    )
    assert items(catalog, box.id, INBOX, run(1)) == [("m1", "x")]
    assert items(catalog, box.id, ARCHIVE, run(1)) == []
    assert items(catalog, box.id, INBOX, run(2)) == []
    assert items(catalog, box.id, ARCHIVE, run(2)) == [("m1", "x")]
    # a move is not a deletion: show-deleted does not list it in its old folder
    assert items(catalog, box.id, INBOX, run(2), show_deleted=True) == []
    assert items(catalog, box.id, INBOX, run(2), all_versions=True) == [("m1", "x")]
    history = catalog.reader.history(box.id, "m1")
    assert [h.end_reason for h in history] == [EndReason.MOVED, EndReason.OPEN]

    def folder_names(at: datetime) -> list[str]:
        page = catalog.reader.list_versions(ListingQuery(box.id, EntryKind.FOLDER, at, None))
        return [v.metadata.name or "" for v in page.items]

    assert folder_names(run(1)) == ["Inbox", "Old"]
    assert folder_names(run(2)) == ["Inbox", "Archive"]
    # the renamed folder keeps its identity: its children are found through either name's time
    assert catalog.reader.list_versions(ListingQuery(box.id, EntryKind.FOLDER, run(0), None)).items == []
    # a folder moved under another keeps its contents and its history
    w.apply_page(box.id, PageWrite(run(3), upserts=(folder(ARCHIVE, "Archive", parent=INBOX),)))

    def subfolders(parent: str | None, at: datetime) -> list[str]:
        page = catalog.reader.list_versions(ListingQuery(box.id, EntryKind.FOLDER, at, parent))
        return [v.external_id for v in page.items]

    assert subfolders(None, run(3)) == [INBOX]
    assert subfolders(INBOX, run(3)) == [ARCHIVE]
    assert subfolders(None, run(2)) == [INBOX, ARCHIVE]
    assert items(catalog, box.id, ARCHIVE, run(3)) == [("m1", "x")]
    assert [h.end_reason for h in catalog.reader.history(box.id, ARCHIVE)] == [
        EndReason.REPLACED,  # renamed Old -> Archive
        EndReason.MOVED,
        EndReason.OPEN,
    ]
    # moved out of the backed-up scope: gone from the folder, not a deleted item
    w.mark_gone(box.id, "m1", run(3), EndReason.MOVED)
    assert items(catalog, box.id, ARCHIVE, run(3), show_deleted=True) == []
    # flat listing of every item of the mailbox
    flat = catalog.reader.list_versions(ListingQuery(box.id, EntryKind.ITEM, run(2), ANY_PARENT))
    assert [v.external_id for v in flat.items] == ["m1"]


def test_same_run_changes_rewrite_the_runs_version(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"), mail("m1", "v1"))))
    w.apply_page(box.id, PageWrite(run(2), upserts=(mail("m1", "v2"),)))
    stats = w.apply_page(box.id, PageWrite(run(2), upserts=(mail("m1", "v3"),)))
    assert stats.updated_in_place == 1
    assert [h.metadata.subject for h in catalog.reader.history(box.id, "m1")] == ["v1", "v3"]
    # deleted and back within one run, unchanged: no trace of an absence
    w.apply_page(box.id, PageWrite(run(3), gones=(GoneWrite("m1"),)))
    w.apply_page(box.id, PageWrite(run(3), upserts=(mail("m1", "v3"),)))
    assert [h.gone_at for h in catalog.reader.history(box.id, "m1")] == [run(2), None]


def test_deleted_then_restored_item_leaves_show_deleted(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"), mail("m1", "a"))))
    w.apply_page(box.id, PageWrite(run(2), gones=(GoneWrite("m1"),)))
    w.apply_page(box.id, PageWrite(run(3), upserts=(mail("m1", "a", parent=INBOX),)))
    assert items(catalog, box.id, INBOX, run(2), show_deleted=True) == [("m1", "a")]
    assert items(catalog, box.id, INBOX, run(2)) == []
    assert items(catalog, box.id, INBOX, run(3), show_deleted=True) == [("m1", "a")]
    listed = catalog.reader.list_versions(
        ListingQuery(box.id, EntryKind.ITEM, run(3), INBOX, show_deleted=True)
    )
    assert [v.end_reason for v in listed.items] == [EndReason.OPEN]


def test_delta_token_commits_with_its_page_only(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"),), delta_token=(INBOX, "t1")))
    assert w.delta_token(box.id, INBOX) == "t1"
    rows = version_rows(catalog)

    def broken_flush(*_args: object) -> None:
        raise RuntimeError("disk full")

    # The versions are written, then the token: a failure at the token leaves neither.
    monkeypatch.setattr(type(w), "_save_token", staticmethod(broken_flush))
    with pytest.raises(RuntimeError):
        w.apply_page(box.id, PageWrite(run(2), upserts=(mail("m1", "a"),), delta_token=(INBOX, "t2")))
    monkeypatch.undo()
    assert version_rows(catalog) == rows
    assert w.delta_token(box.id, INBOX) == "t1"
    # and a failure in the versions leaves the old token
    with pytest.raises(OutOfOrderWrite):
        w.apply_page(box.id, PageWrite(run(0), upserts=(folder(INBOX, "x"),), delta_token=(INBOX, "t0")))
    assert w.delta_tokens(box.id) == {INBOX: "t1"}
    w.apply_page(box.id, PageWrite(run(2), upserts=(mail("m1", "a"),), delta_token=(INBOX, "t2")))
    assert w.delta_token(box.id, INBOX) == "t2"
    w.forget_delta_token(box.id, INBOX)
    assert w.delta_token(box.id, INBOX) is None
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sync_state_table)).scalar_one() == 0


def test_known_external_ids_for_resync(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    mails = tuple(mail(f"m{i:03}", "s") for i in range(25))
    w.apply_page(box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"), *mails)))
    w.apply_page(box.id, PageWrite(run(2), gones=(GoneWrite("m003"),)))
    known = list(w.known_external_ids(box.id, INBOX, kinds=[EntryKind.ITEM], page_size=7))
    assert known == [f"m{i:03}" for i in range(25) if i != 3]
    assert list(w.known_external_ids(box.id, None)) == [INBOX]
    assert list(w.known_external_ids(box.id, "no-such-folder")) == []


def test_objects_at_time_and_restore_points(catalog: Catalog) -> None:
    early = catalog.mailbox("user-1", seen_at=run(1))
    late = catalog.mailbox("user-2", seen_at=run(3))
    site = catalog.writer.ensure_object(
        ORG, REPO, ObjectKind.SITE, "site-1", seen_at=run(1), url="https://x/sites/a"
    )
    for obj, times in ((early, (1, 2, 3)), (late, (3,)), (site, (2,))):
        for n in times:
            catalog.writer.record_restore_point(obj.id, run(n), job_session_id=None)
            catalog.writer.record_restore_point(obj.id, run(n))  # idempotent
    names = [o.external_id for o in catalog.reader.objects(ORG, at=run(2), kinds=[ObjectKind.MAILBOX])]
    assert names == ["user-1"]
    assert [o.external_id for o in catalog.reader.objects(ORG, at=run(3))] == ["user-1", "user-2", "site-1"]
    catalog.writer.mark_object_gone(late.id, run(4))
    assert [o.external_id for o in catalog.reader.objects(ORG, at=run(5), kinds=[ObjectKind.MAILBOX])] == [
        "user-1"
    ]
    assert len(catalog.reader.objects(ORG, at=run(5), kinds=[ObjectKind.MAILBOX], show_deleted=True)) == 2
    assert catalog.reader.restore_points(ORG) == [run(1), run(2), run(3)]
    assert catalog.reader.restore_points(ORG, object_ids=[late.id]) == [run(3)]
    assert catalog.reader.backup_span(ORG) == (run(1), run(3))
    assert catalog.reader.backup_span("other-org") is None
    assert catalog.reader.restore_point_at(ORG, run(2) + timedelta(hours=1)) == run(2)
    assert catalog.reader.restore_point_at(ORG, run(0)) is None
    # seen again after being gone: live again
    again = catalog.mailbox("user-2", seen_at=run(6))
    assert again.id == late.id
    assert len(catalog.reader.objects(ORG, at=run(6), kinds=[ObjectKind.MAILBOX])) == 2
    with pytest.raises(UnknownObject):
        catalog.writer.record_restore_point(999_999, run(1))
    with pytest.raises(UnknownObject):
        catalog.writer.apply_page(999_999, PageWrite(run(1)))


def test_paging_is_stable_and_seeks(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    w.apply_page(box.id, PageWrite(run(1), upserts=(folder(INBOX, "Inbox"),)))
    w.apply_page(box.id, PageWrite(run(1), upserts=tuple(mail(f"m{i:03}", f"s{i}") for i in range(100))))
    w.apply_page(box.id, PageWrite(run(2), gones=tuple(GoneWrite(f"m{i:03}") for i in range(0, 100, 3))))
    query = ListingQuery(box.id, EntryKind.ITEM, run(2), INBOX)
    whole = [v.external_id for v in catalog.reader.list_versions(query, limit=1000).items]
    assert len(whole) == 66
    # a backup running while a client pages must not shift a session pinned at run(2)
    w.apply_page(box.id, PageWrite(run(3), upserts=(mail("m000", "back"), mail("m500", "new"))))
    cursors = PageCursors()
    walked: list[str] = []
    offset = 0
    while True:
        page = catalog.reader.list_versions(query, offset=offset, limit=7, cursors=cursors)
        walked += [v.external_id for v in page.items]
        offset += len(page.items)
        if page.next_key is None:
            break
    assert walked == whole
    # random access through remembered positions and without them agree
    for start in (0, 6, 7, 30, 50, 65, 66, 80):
        cached = catalog.reader.list_versions(query, offset=start, limit=5, cursors=cursors)
        cold = catalog.reader.list_versions(query, offset=start, limit=5)
        assert (
            [v.external_id for v in cached.items]
            == [v.external_id for v in cold.items]
            == whole[start : start + 5]
        )
    # cold deep jumps leave marks on the way: later jumps agree with a plain OFFSET
    marking = PageCursors(mark_every=4)
    for start in (60, 9, 33, 64, 65, 66, 100, 0, 17):
        jumped = catalog.reader.list_versions(query, offset=start, limit=3, cursors=marking)
        assert [v.external_id for v in jumped.items] == whole[start : start + 3], start
    assert marking.nearest(query, 59)[0] == 56
    # explicit keyset seeking
    first = catalog.reader.list_versions(query, limit=10)
    assert first.next_key is not None
    second = catalog.reader.list_versions(query, limit=10, after=first.next_key)
    assert [v.external_id for v in second.items] == whole[10:20]


def test_bad_input_is_refused(catalog: Catalog) -> None:
    box = catalog.mailbox()
    naive = datetime(2026, 1, 2, 8, 0)
    with pytest.raises(ValueError, match="naive"):
        catalog.writer.apply_page(box.id, PageWrite(naive, upserts=(folder(INBOX, "Inbox"),)))
    assert version_rows(catalog) == 0
    assert catalog.reader.version_at(box.id, INBOX, datetime(2030, 1, 1, tzinfo=UTC)) is None


def test_deleting_a_folder_with_its_contents(catalog: Catalog) -> None:
    box = catalog.mailbox()
    w = catalog.writer
    sub = "folder-sub"
    w.apply_page(
        box.id,
        PageWrite(
            run(1),
            upserts=(
                folder(INBOX, "Inbox"),
                folder(sub, "Projects", parent=INBOX),
                mail("m1", "in inbox"),
                mail("m2", "in sub", parent=sub),
                folder(ARCHIVE, "Archive"),
                mail("m3", "elsewhere", parent=ARCHIVE),
            ),
        ),
    )
    stats = w.apply_page(box.id, PageWrite(run(2), gones=(GoneWrite(INBOX, with_contents=True),)))
    assert stats.gone == 4  # the folder, its subfolder and both messages
    assert items(catalog, box.id, INBOX, run(2)) == []
    assert items(catalog, box.id, sub, run(2)) == []
    assert items(catalog, box.id, sub, run(2), show_deleted=True) == [("m2", "in sub")]
    assert items(catalog, box.id, ARCHIVE, run(2)) == [("m3", "elsewhere")]
    assert items(catalog, box.id, sub, run(1)) == [("m2", "in sub")]
    folders = catalog.reader.list_versions(ListingQuery(box.id, EntryKind.FOLDER, run(2), ANY_PARENT))
    assert [v.external_id for v in folders.items] == [ARCHIVE]
    # replaying the page changes nothing
    again = w.apply_page(box.id, PageWrite(run(2), gones=(GoneWrite(INBOX, with_contents=True),)))
    assert again.gone == 0
