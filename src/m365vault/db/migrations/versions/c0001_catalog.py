"""Catalog: objects, entries, versions, sync state, restore points

Revision ID: c0001_catalog
Revises: 0001_base
Create Date: 2026-11-29

Times are BIGINT microseconds since the epoch (UTC); see m365vault.db.catalog_tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0001_catalog"
down_revision = "0001_base"
branch_labels = ("catalog",)
depends_on = None

# SQLite's INTEGER PRIMARY KEY is a rowid alias only with the plain INTEGER type.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_objects",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("repository_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("parent_external_id", sa.String(length=255), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=True),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("gone_at", sa.BigInteger(), nullable=True),
        sa.Column("last_change_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_objects")),
        sa.UniqueConstraint(
            "organization_id", "repository_id", "kind", "external_id", name="uq_catalog_objects_key"
        ),
    )
    op.create_index(
        "ix_catalog_objects_org", "catalog_objects", ["organization_id", "kind", "id"], unique=False
    )
    op.create_index("ix_catalog_objects_repository", "catalog_objects", ["repository_id", "id"], unique=False)

    op.create_table(
        "catalog_released_refs",
        sa.Column("repository_id", sa.String(length=36), nullable=False),
        sa.Column("content_ref", sa.String(length=255), nullable=False),
        sa.Column("released_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "content_ref", name=op.f("pk_catalog_released_refs")),
    )
    op.create_table(
        "catalog_entries",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("object_id", _BIG_ID, nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["catalog_objects.id"],
            name=op.f("fk_catalog_entries_object_id_catalog_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_entries")),
        sa.UniqueConstraint("object_id", "external_id", name="uq_catalog_entries_key"),
    )
    op.create_table(
        "catalog_restore_points",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("object_id", _BIG_ID, nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("repository_id", sa.String(length=36), nullable=False),
        sa.Column("run_time", sa.BigInteger(), nullable=False),
        sa.Column("job_session_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["catalog_objects.id"],
            name=op.f("fk_catalog_restore_points_object_id_catalog_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_restore_points")),
        sa.UniqueConstraint("object_id", "run_time", name="uq_catalog_restore_points_object_time"),
    )
    op.create_index(
        "ix_catalog_restore_points_org",
        "catalog_restore_points",
        ["organization_id", "run_time"],
        unique=False,
    )
    op.create_index(
        "ix_catalog_restore_points_repository",
        "catalog_restore_points",
        ["repository_id", "run_time"],
        unique=False,
    )

    op.create_table(
        "catalog_sync_state",
        sa.Column("object_id", _BIG_ID, nullable=False),
        sa.Column("collection", sa.String(length=512), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["catalog_objects.id"],
            name=op.f("fk_catalog_sync_state_object_id_catalog_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", "collection", name=op.f("pk_catalog_sync_state")),
    )
    op.create_table(
        "catalog_versions",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", _BIG_ID, nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("gone_at", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.SmallInteger(), nullable=False),
        sa.Column("resurrected_at", sa.BigInteger(), nullable=True),
        sa.Column("age_at", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("content_ref", sa.String(length=255), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("item_class", sa.String(length=128), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("to_recipients", sa.JSON(), nullable=True),
        sa.Column("cc_recipients", sa.JSON(), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=True),
        sa.Column("modified_at", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_catalog_versions_entry_id_catalog_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_versions")),
        sa.UniqueConstraint("entry_id", "first_seen", name="uq_catalog_versions_entry_time"),
    )
    op.create_index(
        "ix_catalog_versions_children",
        "catalog_versions",
        [
            "object_id",
            "parent_id",
            "kind",
            "entry_id",
            "first_seen",
            "gone_at",
            "end_reason",
            "resurrected_at",
        ],
        unique=False,
    )
    op.create_index("ix_catalog_versions_closed", "catalog_versions", ["object_id", "gone_at"], unique=False)
    op.create_index("ix_catalog_versions_content_ref", "catalog_versions", ["content_ref"], unique=False)
    op.create_index(
        "ix_catalog_versions_current",
        "catalog_versions",
        ["object_id", "parent_id", "kind", "entry_id", "first_seen", "gone_at"],
        unique=False,
        sqlite_where=sa.text("gone_at IS NULL"),
        postgresql_where=sa.text("gone_at IS NULL"),
    )
    op.create_index(
        "ix_catalog_versions_current_flat",
        "catalog_versions",
        ["object_id", "kind", "entry_id", "first_seen", "gone_at"],
        unique=False,
        sqlite_where=sa.text("gone_at IS NULL"),
        postgresql_where=sa.text("gone_at IS NULL"),
    )
    op.create_index(
        "ix_catalog_versions_flat",
        "catalog_versions",
        ["object_id", "kind", "entry_id", "first_seen", "gone_at", "end_reason", "resurrected_at"],
        unique=False,
    )
    op.create_index(
        "ix_catalog_versions_retention", "catalog_versions", ["object_id", "age_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_catalog_versions_retention", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_flat", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_current_flat", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_current", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_content_ref", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_closed", table_name="catalog_versions")
    op.drop_index("ix_catalog_versions_children", table_name="catalog_versions")

    op.drop_table("catalog_versions")
    op.drop_table("catalog_sync_state")
    op.drop_index("ix_catalog_restore_points_repository", table_name="catalog_restore_points")
    op.drop_index("ix_catalog_restore_points_org", table_name="catalog_restore_points")

    op.drop_table("catalog_restore_points")
    op.drop_table("catalog_entries")
    op.drop_table("catalog_released_refs")
    op.drop_index("ix_catalog_objects_repository", table_name="catalog_objects")
    op.drop_index("ix_catalog_objects_org", table_name="catalog_objects")

    op.drop_table("catalog_objects")
