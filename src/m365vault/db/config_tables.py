"""Configuration tables: accounts and tokens, organizations, proxies, repositories, jobs and their
items, job sessions and their log, restore sessions and their events, server-wide settings.

Invariants:
- secrets are stored only sealed by `m365vault.secretbox` (columns ending in `_sealed`);
- tokens are stored only as SHA-256 hashes, passwords only as argon2 hashes;
- every timestamp is stored as UTC (`UtcDateTime` gives aware datetimes back on SQLite too).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from m365vault.db.base import Base


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps no zone, so normalise on both sides."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class User(Base):
    """An administrator account of the server (v3 `grant_type=password`)."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(256))
    # Lower-cased name: logins match user names case-insensitively, as Windows accounts do.
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """An issued bearer or refresh token, kept only as its SHA-256 hash."""

    __tablename__ = "api_tokens"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "access" | "refresh"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pair_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)  # access + refresh issued together
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LoginThrottle(Base):
    """Failed-login counter per account ("user:<name>") or client address ("addr:<ip>")."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Organization(Base):
    """A Microsoft 365 tenant added with application-only (Azure AD app) credentials."""

    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(32))
    is_exchange_online: Mapped[bool] = mapped_column(Boolean)
    is_sharepoint_online: Mapped[bool] = mapped_column(Boolean)
    application_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    application_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    certificate_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    certificate_password_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    certificate_thumbprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    graph_endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    authority_endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    first_backup_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_backup_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LicensedUser(Base):
    """A tenant user whose data has been backed up (filled by the backup engine)."""

    __tablename__ = "licensed_users"
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    first_backup_time: Mapped[datetime] = mapped_column(UtcDateTime)
    last_backup_time: Mapped[datetime] = mapped_column(UtcDateTime)


class Proxy(Base):
    """A backup proxy: the in-server worker pool (`is_default`) or a remote `m365vault proxy` host."""

    __tablename__ = "proxies"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    host_name: Mapped[str] = mapped_column(String(256))
    host_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(256), nullable=True)
    password_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    threads_number: Mapped[int] = mapped_column(Integer)
    enable_network_throttling: Mapped[bool] = mapped_column(Boolean)
    throttling_value: Mapped[int] = mapped_column(Integer)
    throttling_unit: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class BackupRepository(Base):
    """A backup repository on a proxy: a directory with its own encryption password."""

    __tablename__ = "backup_repositories"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    proxy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("proxies.id", ondelete="RESTRICT"), index=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    retention_type: Mapped[str] = mapped_column(String(32))
    retention_period_type: Mapped[str] = mapped_column(String(16))
    daily_retention_period: Mapped[int | None] = mapped_column(Integer, nullable=True)
    monthly_retention_period: Mapped[int | None] = mapped_column(Integer, nullable=True)
    yearly_retention_period: Mapped[str | None] = mapped_column(String(16), nullable=True)
    retention_frequency_type: Mapped[str] = mapped_column(String(16))
    daily_time: Mapped[str | None] = mapped_column(String(8), nullable=True)
    daily_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    monthly_time: Mapped[str | None] = mapped_column(String(8), nullable=True)
    monthly_daynumber: Mapped[str | None] = mapped_column(String(16), nullable=True)
    monthly_dayofweek: Mapped[str | None] = mapped_column(String(16), nullable=True)
    password_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the retention service runs this repository's next pass; None: not computed yet.
    retention_next_pass: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    repository_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backup_repositories.id", ondelete="RESTRICT"), index=True
    )
    proxy_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("proxies.id", ondelete="RESTRICT"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    backup_type: Mapped[str] = mapped_column(String(32))
    schedule_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_run: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_run: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JobItem(Base):
    """A selected or excluded object of a job; `payload` is the normalised v3 job item."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "kind", "type", "object_key"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "selected" | "excluded"
    type: Mapped[str] = mapped_column(String(32))
    # The tenant object's id (user, group, site) or the type name for whole-organization items.
    object_key: Mapped[str] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer)


class JobSession(Base):
    """One run of a job (created by the backup engine)."""

    __tablename__ = "job_sessions"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    creation_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    statistics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)


class JobSessionLogItem(Base):
    __tablename__ = "job_session_log_items"
    __table_args__ = (UniqueConstraint("session_id", "usn"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("job_sessions.id", ondelete="CASCADE"), index=True
    )
    usn: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    creation_time: Mapped[datetime] = mapped_column(UtcDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RestoreSession(Base):
    """An explore session pinned to a point in time, owned by the account that opened it."""

    __tablename__ = "restore_sessions"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    owner_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(512))
    organization_name: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(8))
    point_in_time: Mapped[datetime] = mapped_column(UtcDateTime)
    show_deleted: Mapped[bool] = mapped_column(Boolean)
    show_all_versions: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(16))
    creation_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RestoreSessionEvent(Base):
    __tablename__ = "restore_session_events"
    __table_args__ = (UniqueConstraint("restore_session_id", "order"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_uuid)
    restore_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("restore_sessions.id", ondelete="CASCADE"), index=True
    )
    order: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(UtcDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)


class ServerSetting(Base):
    """A server-wide settings document (exclusions, e-mail) with an optional sealed secret."""

    __tablename__ = "server_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
