"""Configuration: when each repository's next retention pass is due

Revision ID: a0002_retention_next_pass
Revises: a0001_config
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a0002_retention_next_pass"
down_revision = "a0001_config"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backup_repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_next_pass", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backup_repositories", schema=None) as batch_op:
        batch_op.drop_column("retention_next_pass")
