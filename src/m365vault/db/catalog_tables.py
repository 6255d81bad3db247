"""Tables of the item-version catalog (see `m365vault.catalog` for the rules they carry).

Times are stored as integer microseconds since the Unix epoch (UTC): identical on SQLite and
PostgreSQL, compact in the wide listing indexes, and compared as plain integers.

Organizations and repositories are referred to by their UUID strings, without foreign keys: the
configuration tables live on another migration branch, and catalog data must survive (and be
prunable after) the deletion of an organization's configuration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from m365vault.db.base import Base

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# SQLite's INTEGER PRIMARY KEY is a rowid alias only with the plain INTEGER type.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def to_micros(when: datetime) -> int:
    """An aware datetime as microseconds since the epoch; naive datetimes are a bug here."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: catalog times must be timezone-aware")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class UtcMicros(TypeDecorator[datetime]):
    """An aware UTC datetime stored as BIGINT microseconds."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Any) -> datetime | None:
        return None if value is None else from_micros(value)


class CatalogObject(Base):
    """A backed-up mailbox, archive mailbox, OneDrive or site of one organization in one repository."""

    __tablename__ = "catalog_objects"
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "repository_id", "kind", "external_id", name="uq_catalog_objects_key"
        ),
        Index("ix_catalog_objects_org", "organization_id", "kind", "id"),
        Index("ix_catalog_objects_repository", "repository_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    repository_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(Text, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent_external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    extras: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UtcMicros)
    gone_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    # The newest time any version of this object opened or closed: a query at or after it may
    # read the "current" partial index instead of filtering history.
    last_change_at: Mapped[datetime] = mapped_column(UtcMicros)


class CatalogEntry(Base):
    """The identity of a container or item inside an object; its states are `CatalogVersion` rows."""

    __tablename__ = "catalog_entries"
    __table_args__ = (UniqueConstraint("object_id", "external_id", name="uq_catalog_entries_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("catalog_objects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(512))
    # Null while the entry is only known as the parent of something not yet described itself.
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)


class CatalogVersion(Base):
    """One state of an entry over the interval [first_seen, gone_at).

    `end_reason`: 0 open, 1 replaced by a newer version, 2 deleted, 3 moved out of its parent.
    `resurrected_at`: set on a deleted version when the same entry reappears later, so that
    show-deleted stops listing it from that time on without rewriting history.
    """

    __tablename__ = "catalog_versions"
    __table_args__ = (
        UniqueConstraint("entry_id", "first_seen", name="uq_catalog_versions_entry_time"),
        # The listing paths: children of a parent, and every entry of a kind in an object. Both
        # carry the interval columns so that skipping rows (OFFSET, time filters) stays in the index.
        Index(
            "ix_catalog_versions_children",
            "object_id",
            "parent_id",
            "kind",
            "entry_id",
            "first_seen",
            "gone_at",
            "end_reason",
            "resurrected_at",
        ),
        Index(
            "ix_catalog_versions_flat",
            "object_id",
            "kind",
            "entry_id",
            "first_seen",
            "gone_at",
            "end_reason",
            "resurrected_at",
        ),
        # The current state only: a query at or after the object's last change reads these,
        # never paying for deleted or superseded history.
        Index(
            "ix_catalog_versions_current",
            "object_id",
            "parent_id",
            "kind",
            "entry_id",
            "first_seen",
            "gone_at",  # always null here, but SQLite needs it in the index to cover the query
            sqlite_where=text("gone_at IS NULL"),
            postgresql_where=text("gone_at IS NULL"),
        ),
        Index(
            "ix_catalog_versions_current_flat",
            "object_id",
            "kind",
            "entry_id",
            "first_seen",
            "gone_at",  # always null here, but SQLite needs it in the index to cover the query
            sqlite_where=text("gone_at IS NULL"),
            postgresql_where=text("gone_at IS NULL"),
        ),
        Index("ix_catalog_versions_content_ref", "content_ref"),
        Index("ix_catalog_versions_retention", "object_id", "age_at"),
        Index("ix_catalog_versions_closed", "object_id", "gone_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(BigInteger)
    parent_id: Mapped[int] = mapped_column(BigInteger)  # entry id of the container; 0 = the object's root
    kind: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(UtcMicros)
    gone_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    end_reason: Mapped[int] = mapped_column(SmallInteger, default=0)
    resurrected_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    # The time item-level retention measures age from: modification time, else first_seen.
    age_at: Mapped[datetime] = mapped_column(UtcMicros)
    digest: Mapped[str] = mapped_column(String(32))
    content_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_class: Mapped[str | None] = mapped_column(String(128), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    sender: Mapped[str | None] = mapped_column(Text, nullable=True)
    to_recipients: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    cc_recipients: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    modified_at: Mapped[datetime | None] = mapped_column(UtcMicros, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    extras: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class CatalogSyncState(Base):
    """Saved delta state per object and collection, written in the same transaction as a page."""

    __tablename__ = "catalog_sync_state"

    object_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_objects.id", ondelete="CASCADE"), primary_key=True
    )
    collection: Mapped[str] = mapped_column(String(512), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcMicros)


class CatalogRestorePoint(Base):
    """A backup run's time for one object: the points in time a restore session can stand on."""

    __tablename__ = "catalog_restore_points"
    __table_args__ = (
        UniqueConstraint("object_id", "run_time", name="uq_catalog_restore_points_object_time"),
        Index("ix_catalog_restore_points_org", "organization_id", "run_time"),
        Index("ix_catalog_restore_points_repository", "repository_id", "run_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("catalog_objects.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(36))
    repository_id: Mapped[str] = mapped_column(String(36))
    run_time: Mapped[datetime] = mapped_column(UtcMicros)
    job_session_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class CatalogReleasedRef(Base):
    """A content reference that lost its last version in a retention pass; prune reclaims it
    after re-checking that no backup has referenced it again since."""

    __tablename__ = "catalog_released_refs"

    repository_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    content_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    released_at: Mapped[datetime] = mapped_column(UtcMicros)


# Core handles for the catalog's set-based statements (typed as Table, which __table__ is not).
objects_table = cast(Table, CatalogObject.__table__)
entries_table = cast(Table, CatalogEntry.__table__)
versions_table = cast(Table, CatalogVersion.__table__)
sync_state_table = cast(Table, CatalogSyncState.__table__)
restore_points_table = cast(Table, CatalogRestorePoint.__table__)
released_refs_table = cast(Table, CatalogReleasedRef.__table__)
