"""Configuration tables: accounts, tokens, organizations, proxies, repositories, jobs, sessions,
restore sessions, settings. Times are plain DateTime here (the model's UtcDateTime only adapts
values), so this migration stays frozen whatever the models become.

Revision ID: a0001_config
Revises: 0001_base
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a0001_config"
down_revision = "0001_base"
branch_labels = ("config",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("is_exchange_online", sa.Boolean(), nullable=False),
        sa.Column("is_sharepoint_online", sa.Boolean(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("application_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("certificate_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("certificate_password_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("certificate_thumbprint", sa.String(length=64), nullable=True),
        sa.Column("graph_endpoint", sa.String(length=512), nullable=True),
        sa.Column("authority_endpoint", sa.String(length=512), nullable=True),
        sa.Column("first_backup_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_backup_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("name_key", name=op.f("uq_organizations_name_key")),
    )
    op.create_table(
        "proxies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("host_name", sa.String(length=256), nullable=False),
        sa.Column("host_key", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("password_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("threads_number", sa.Integer(), nullable=False),
        sa.Column("enable_network_throttling", sa.Boolean(), nullable=False),
        sa.Column("throttling_value", sa.Integer(), nullable=False),
        sa.Column("throttling_unit", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxies")),
        sa.UniqueConstraint("host_key", name=op.f("uq_proxies_host_key")),
    )
    op.create_table(
        "server_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_settings")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("password_hash", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name_key", name=op.f("uq_users_name_key")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("pair_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_pair_id"), ["pair_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "backup_repositories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("proxy_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("retention_type", sa.String(length=32), nullable=False),
        sa.Column("retention_period_type", sa.String(length=16), nullable=False),
        sa.Column("daily_retention_period", sa.Integer(), nullable=True),
        sa.Column("monthly_retention_period", sa.Integer(), nullable=True),
        sa.Column("yearly_retention_period", sa.String(length=16), nullable=True),
        sa.Column("retention_frequency_type", sa.String(length=16), nullable=False),
        sa.Column("daily_time", sa.String(length=8), nullable=True),
        sa.Column("daily_type", sa.String(length=16), nullable=True),
        sa.Column("monthly_time", sa.String(length=8), nullable=True),
        sa.Column("monthly_daynumber", sa.String(length=16), nullable=True),
        sa.Column("monthly_dayofweek", sa.String(length=16), nullable=True),
        sa.Column("password_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proxy_id"],
            ["proxies.id"],
            name=op.f("fk_backup_repositories_proxy_id_proxies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_repositories")),
        sa.UniqueConstraint("name_key", name=op.f("uq_backup_repositories_name_key")),
        sa.UniqueConstraint("path", name=op.f("uq_backup_repositories_path")),
    )
    with op.batch_alter_table("backup_repositories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backup_repositories_proxy_id"), ["proxy_id"], unique=False)

    op.create_table(
        "licensed_users",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("first_backup_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_backup_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_licensed_users_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "user_id", name=op.f("pk_licensed_users")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("repository_id", sa.Uuid(), nullable=False),
        sa.Column("proxy_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("backup_type", sa.String(length=32), nullable=False),
        sa.Column("schedule_policy", sa.JSON(), nullable=True),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_jobs_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["proxy_id"], ["proxies.id"], name=op.f("fk_jobs_proxy_id_proxies"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["backup_repositories.id"],
            name=op.f("fk_jobs_repository_id_backup_repositories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("name_key", name=op.f("uq_jobs_name_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_repository_id"), ["repository_id"], unique=False)

    op.create_table(
        "job_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_items")),
        sa.UniqueConstraint("job_id", "kind", "type", "object_key", name=op.f("uq_job_items_job_id")),
    )
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_items_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_sessions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_sessions")),
    )
    with op.batch_alter_table("job_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_sessions_creation_time"), ["creation_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_sessions_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_sessions_status"), ["status"], unique=False)

    op.create_table(
        "restore_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_user_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("organization_name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("point_in_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("show_deleted", sa.Boolean(), nullable=False),
        sa.Column("show_all_versions", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_restore_sessions_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_restore_sessions_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_restore_sessions_owner_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_sessions")),
    )
    with op.batch_alter_table("restore_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_restore_sessions_creation_time"), ["creation_time"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_restore_sessions_owner_user_id"), ["owner_user_id"], unique=False
        )

    op.create_table(
        "job_session_log_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("usn", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["job_sessions.id"],
            name=op.f("fk_job_session_log_items_session_id_job_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_session_log_items")),
        sa.UniqueConstraint("session_id", "usn", name=op.f("uq_job_session_log_items_session_id")),
    )
    with op.batch_alter_table("job_session_log_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_session_log_items_session_id"), ["session_id"], unique=False)

    op.create_table(
        "restore_session_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("restore_session_id", sa.Uuid(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["restore_session_id"],
            ["restore_sessions.id"],
            name=op.f("fk_restore_session_events_restore_session_id_restore_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_session_events")),
        sa.UniqueConstraint(
            "restore_session_id", "order", name=op.f("uq_restore_session_events_restore_session_id")
        ),
    )
    with op.batch_alter_table("restore_session_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_restore_session_events_restore_session_id"), ["restore_session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("restore_session_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restore_session_events_restore_session_id"))

    op.drop_table("restore_session_events")
    with op.batch_alter_table("job_session_log_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_session_log_items_session_id"))

    op.drop_table("job_session_log_items")
    with op.batch_alter_table("restore_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restore_sessions_owner_user_id"))
        batch_op.drop_index(batch_op.f("ix_restore_sessions_creation_time"))

    op.drop_table("restore_sessions")
    with op.batch_alter_table("job_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_sessions_status"))
        batch_op.drop_index(batch_op.f("ix_job_sessions_job_id"))
        batch_op.drop_index(batch_op.f("ix_job_sessions_creation_time"))

    op.drop_table("job_sessions")
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_items_job_id"))

    op.drop_table("job_items")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_repository_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_organization_id"))

    op.drop_table("jobs")
    op.drop_table("licensed_users")
    with op.batch_alter_table("backup_repositories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backup_repositories_proxy_id"))

    op.drop_table("backup_repositories")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_pair_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_expires_at"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("server_settings")
    op.drop_table("proxies")
    op.drop_table("organizations")
    op.drop_table("login_throttle")
