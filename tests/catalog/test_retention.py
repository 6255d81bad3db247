"""Retention pass (ItemLevel and SnapshotBased), released references, and the v3 policy fields."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from m365vault.catalog import (
    ContentRefs,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    InvalidPolicy,
    ListingQuery,
    ObjectKind,
    PageWrite,
    RetentionPass,
    RetentionPeriodType,
    RetentionPolicy,
    RetentionType,
    VersionWrite,
)
from m365vault.clock import FakeClock
from tests.catalog.conftest import ORG, REPO, Catalog, run

INBOX = "f-inbox"


def mail(ext: str, ref: str, *, modified: datetime | None = None) -> VersionWrite:
    return VersionWrite(
        ext, EntryKind.ITEM, INBOX, EntryMetadata(subject=ref, modified_at=modified), content_ref=ref
    )


def daily(days: int, kind: RetentionType) -> RetentionPolicy:
    return RetentionPolicy(retention_type=kind, period_type=RetentionPeriodType.DAILY, daily_period=days)


def subjects(cat: Catalog, object_id: int, at: datetime, **flags: bool) -> list[str]:
    page = cat.reader.list_versions(ListingQuery(object_id, EntryKind.ITEM, at, INBOX, **flags), limit=1000)
    return [v.metadata.subject or "" for v in page.items]


def backup(cat: Catalog, object_id: int, n: int, page: PageWrite) -> None:
    cat.writer.apply_page(object_id, page)
    cat.writer.record_restore_point(object_id, run(n))


def test_snapshot_based_keeps_what_retained_points_see(catalog: Catalog) -> None:
    box = catalog.mailbox(seen_at=run(1))
    folder = VersionWrite(INBOX, EntryKind.FOLDER, None, EntryMetadata(name="Inbox"))
    backup(
        catalog,
        box.id,
        1,
        PageWrite(run(1), upserts=(folder, mail("a", "a1"), mail("b", "b1"), mail("c", "c1"))),
    )
    backup(catalog, box.id, 2, PageWrite(run(2), upserts=(mail("a", "a2"),), gones=(GoneWrite("b"),)))
    backup(catalog, box.id, 5, PageWrite(run(5), upserts=(mail("a", "a3"),)))
    backup(catalog, box.id, 10, PageWrite(run(10), gones=(GoneWrite("c"),)))
    # now = run(10) + 6 days, period 7 days: cutoff run(9); oldest retained point run(10)
    clock = FakeClock(run(16))
    result = RetentionPass(catalog.engine, clock, batch_size=1).run(
        REPO, daily(7, RetentionType.SNAPSHOT_BASED)
    )
    assert result.cutoff == run(9)
    # a1 (closed run 2), b1 (deleted run 2), a2 (closed run 5) are seen by no retained point
    # c1 is seen by... nothing either: it closed at run(10), the oldest retained point.
    assert result.versions_removed == 4
    assert result.restore_points_removed == 3
    assert catalog.reader.restore_points(ORG) == [run(10)]
    assert subjects(catalog, box.id, run(10)) == ["a3"]
    assert subjects(catalog, box.id, run(10), all_versions=True) == ["a3"]
    refs = ContentRefs(catalog.engine)
    assert sorted(r for r, _ in refs.released_refs(REPO)) == ["a1", "a2", "b1", "c1"]
    assert list(refs.live_refs(REPO)) == ["a3"]


def test_snapshot_based_keeps_state_seen_by_the_oldest_retained_point(catalog: Catalog) -> None:
    box = catalog.mailbox(seen_at=run(1))
    backup(catalog, box.id, 1, PageWrite(run(1), upserts=(mail("a", "a1"), mail("b", "b1"))))
    backup(catalog, box.id, 9, PageWrite(run(9), upserts=(mail("c", "c1"),)))
    backup(catalog, box.id, 10, PageWrite(run(10), upserts=(mail("a", "a2"),), gones=(GoneWrite("b"),)))
    # a run in progress (no restore point yet) inside the period: never touched
    catalog.writer.apply_page(box.id, PageWrite(run(11), upserts=(mail("d", "d1"),)))
    result = RetentionPass(catalog.engine, FakeClock(run(12))).run(
        REPO, daily(3, RetentionType.SNAPSHOT_BASED)
    )
    assert result.cutoff == run(9)
    assert result.versions_removed == 0
    assert subjects(catalog, box.id, run(9)) == ["a1", "b1", "c1"]
    assert subjects(catalog, box.id, run(11)) == ["a2", "c1", "d1"]
    # a mailbox gone from the tenant with no retained point left loses everything
    gone = catalog.mailbox("user-gone", seen_at=run(1))
    backup(catalog, gone.id, 1, PageWrite(run(1), upserts=(mail("x", "x1"),)))
    catalog.writer.mark_object_gone(gone.id, run(2))
    result = RetentionPass(catalog.engine, FakeClock(run(12))).run(
        REPO, daily(3, RetentionType.SNAPSHOT_BASED)
    )
    assert result.versions_removed == 1
    assert catalog.reader.history(gone.id, "x") == []
    # a live mailbox without a retained point keeps its current state (the next backup will see it)
    idle = catalog.mailbox("user-idle", seen_at=run(1))
    backup(catalog, idle.id, 1, PageWrite(run(1), upserts=(mail("y", "y1"),)))
    RetentionPass(catalog.engine, FakeClock(run(12))).run(REPO, daily(3, RetentionType.SNAPSHOT_BASED))
    assert [v.metadata.subject for v in catalog.reader.history(idle.id, "y")] == ["y1"]


def test_item_level_measures_age_from_modification(catalog: Catalog) -> None:
    box = catalog.mailbox(seen_at=run(1))
    old = run(1) - timedelta(days=400)
    folder = VersionWrite(INBOX, EntryKind.FOLDER, None, EntryMetadata(name="Inbox"))
    backup(
        catalog,
        box.id,
        20,
        PageWrite(
            run(20),
            upserts=(
                folder,
                mail("old", "old1", modified=old),
                mail("new", "new1", modified=run(19)),
                mail("x", "x1"),
            ),
        ),
    )
    # the old message is kept in another mailbox too: its content must not be released
    other = catalog.mailbox("user-2", seen_at=run(20))
    backup(catalog, other.id, 20, PageWrite(run(20), upserts=(mail("copy", "old1", modified=run(19)),)))
    result = RetentionPass(catalog.engine, FakeClock(run(25))).run(REPO, daily(30, RetentionType.ITEM_LEVEL))
    assert result.versions_removed == 1
    assert result.refs_released == 0
    assert subjects(catalog, box.id, run(21)) == ["new1", "x1"]
    # x has no modification time: its age runs from when the backup first saw it
    result = RetentionPass(catalog.engine, FakeClock(run(55))).run(REPO, daily(30, RetentionType.ITEM_LEVEL))
    assert result.versions_removed == 3  # new1 and x1 here, the copy in user-2
    refs = ContentRefs(catalog.engine)
    assert sorted(r for r, _ in refs.released_refs(REPO)) == ["new1", "old1", "x1"]
    # the folder (open container) stays
    assert [
        v.metadata.name
        for v in catalog.reader.list_versions(ListingQuery(box.id, EntryKind.FOLDER, run(55), None)).items
    ] == ["Inbox"]


def test_keep_forever_and_released_ref_lifecycle(catalog: Catalog) -> None:
    box = catalog.mailbox(seen_at=run(1))
    backup(catalog, box.id, 1, PageWrite(run(1), upserts=(mail("a", "r1"),)))
    backup(catalog, box.id, 2, PageWrite(run(2), upserts=(mail("a", "r2"),)))
    keep = RetentionPolicy.from_v3(
        {"retentionType": "SnapshotBased", "retentionPeriodType": "Yearly", "yearlyRetentionPeriod": "Keep"}
    )
    result = RetentionPass(catalog.engine, FakeClock(run(5000))).run(REPO, keep)
    assert result.cutoff is None and result.versions_removed == 0
    RetentionPass(catalog.engine, FakeClock(run(10))).run(REPO, daily(1, RetentionType.SNAPSHOT_BASED))
    refs = ContentRefs(catalog.engine)
    assert [r for r, _ in refs.released_refs(REPO, page_size=1)] == ["r1"]
    # a backup references the same content again before prune ran: prune must see it is live
    other = catalog.writer.ensure_object(ORG, REPO, ObjectKind.ONEDRIVE, "drive-1", seen_at=run(11))
    catalog.writer.apply_page(
        other.id,
        PageWrite(run(11), upserts=(VersionWrite("doc", EntryKind.DOCUMENT, None, content_ref="r1"),)),
    )
    assert refs.still_referenced(REPO, ["r1", "r2", "zz"]) == {"r1", "r2"}
    assert list(refs.unreferenced_refs(REPO, iter(["r0", "r1", "r2", "r3"]))) == ["r0", "r3"]
    assert refs.still_referenced("another-repository", ["r1"]) == set()
    refs.forget_released(REPO, ["r1"])
    assert list(refs.released_refs(REPO)) == []
    assert list(refs.live_refs(REPO, page_size=1)) == ["r1", "r2"]


def test_policy_from_v3_fields_and_schedule() -> None:
    policy = RetentionPolicy.from_v3(
        {
            "retentionType": "itemlevel",
            "RetentionPeriodType": "Monthly",
            "monthlyRetentionPeriod": "3",
            "retentionFrequencyType": "Monthly",
            "monthlyTime": "22:30:00",
            "monthlyDaynumber": "Last",
            "monthlyDayofweek": "Friday",
        }
    )
    assert policy.retention_type is RetentionType.ITEM_LEVEL and policy.monthly_period == 3
    assert policy.cutoff(datetime(2026, 5, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    assert (policy.monthly_time, policy.monthly_daynumber, policy.monthly_dayofweek) == (
        time(22, 30),
        "Last",
        "Friday",
    )
    weekends = RetentionPolicy.from_v3(
        {
            "retentionPeriodType": "Daily",
            "dailyRetentionPeriod": 14,
            "dailyTime": "08:00:00",
            "dailyType": "Weekends",
        }
    )
    assert weekends.retention_type is RetentionType.SNAPSHOT_BASED
    assert (weekends.daily_time, weekends.daily_type) == (time(8, 0), "Weekends")
    years = RetentionPolicy.from_v3({"retentionPeriodType": "Yearly", "yearlyRetentionPeriod": "Years7"})
    assert years.cutoff(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2021, 2, 28, tzinfo=UTC)
    for bad in (
        {"retentionPeriodType": "Daily", "dailyRetentionPeriod": 0},
        {"retentionPeriodType": "Daily", "dailyRetentionPeriod": "many"},
        {"retentionPeriodType": "Yearly", "yearlyRetentionPeriod": "Years4"},
        {"retentionType": "Forever"},
        {"retentionPeriodType": "Daily", "dailyRetentionPeriod": 3, "dailyTime": "25:00"},
        {"retentionPeriodType": "Daily", "dailyRetentionPeriod": 3, "dailyType": "Holidays"},
    ):
        with pytest.raises(InvalidPolicy):
            RetentionPolicy.from_v3(bad)
