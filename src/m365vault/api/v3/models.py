"""v3 request bodies. Every model is lenient in the v3 way (see `api.wire.V3Input`) and converts to
the input type of the matching `control` use case."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from m365vault.api.wire import V3Input
from m365vault.control.enums import (
    BackupType,
    DailyType,
    DayOfWeek,
    JobItemType,
    MonthlyDayNumber,
    OrganizationType,
    PeriodicallyEvery,
    Region,
    RetentionFrequencyType,
    RetentionPeriodType,
    RetentionType,
    ScheduleType,
    ThrottlingUnit,
    YearlyRetentionPeriod,
)
from m365vault.control.infrastructure import ProxyInput, RepositoryInput
from m365vault.control.jobs import JobInput, JobItemInput
from m365vault.control.organizations import OnlineSettingsInput, OrganizationInput
from m365vault.control.schedule import ScheduleInput

# Bounded text, matching the columns that store it (checked here so SQLite and PostgreSQL agree).
Name = Annotated[str, StringConstraints(max_length=256)]
Url = Annotated[str, StringConstraints(max_length=512)]
PathText = Annotated[str, StringConstraints(max_length=1024)]


class ErrorBody(BaseModel):
    """Every error outside the token endpoint."""

    message: str


# Documented on every v3 route (the token endpoint has its own OAuth-style errors).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed body, wrong type, unknown enum value, broken rule"},
    401: {"model": ErrorBody, "description": "Missing, unknown or expired bearer token"},
    404: {"model": ErrorBody, "description": "Unknown id"},
    405: {"model": ErrorBody, "description": "Method not allowed on this resource"},
}


# ------------------------------------------------------------------ organizations
class OnlineSettingsIn(V3Input):
    use_application_only_auth: bool | None = None
    office_organization_name: Name | None = None
    application_id: uuid.UUID | None = None
    application_secret: str | None = Field(None, json_schema_extra={"writeOnly": True}, repr=False)
    application_certificate: str | None = Field(
        None, description="Base64 PFX with the private key", json_schema_extra={"writeOnly": True}, repr=False
    )
    application_certificate_password: str | None = Field(
        None, json_schema_extra={"writeOnly": True}, repr=False
    )
    account: Name | None = None
    password: str | None = Field(None, json_schema_extra={"writeOnly": True}, repr=False)

    def to_input(self) -> OnlineSettingsInput:
        return OnlineSettingsInput(**self.given())


class OrganizationIn(V3Input):
    type: OrganizationType | None = None
    region: Region | None = None
    is_exchange_online: bool | None = None
    is_share_point_online: bool | None = None
    exchange_online_settings: OnlineSettingsIn | None = None
    share_point_online_settings: OnlineSettingsIn | None = None
    graph_endpoint: Url | None = Field(None, description="m365vault extension: Microsoft Graph base URL")
    authority_endpoint: Url | None = Field(None, description="m365vault extension: login authority URL")

    def to_input(self) -> OrganizationInput:
        return OrganizationInput(
            type=self.type,
            region=self.region,
            is_exchange_online=self.is_exchange_online,
            is_sharepoint_online=self.is_share_point_online,
            exchange=self.exchange_online_settings.to_input() if self.exchange_online_settings else None,
            sharepoint=self.share_point_online_settings.to_input()
            if self.share_point_online_settings
            else None,
            graph_endpoint=self.graph_endpoint,
            authority_endpoint=self.authority_endpoint,
        )


# ------------------------------------------------------------------ proxies and repositories
class ProxyIn(V3Input):
    host_name: Name | None = None
    description: str | None = None
    port: int | None = None
    username: Name | None = None
    password: str | None = Field(None, json_schema_extra={"writeOnly": True}, repr=False)
    threads_number: int | None = None
    enable_network_throttling: bool | None = None
    throttling_value: int | None = None
    throttling_unit: ThrottlingUnit | None = None

    def to_input(self) -> ProxyInput:
        return ProxyInput(**self.given())


class RepositoryIn(V3Input):
    name: Name | None = None
    description: str | None = None
    proxy_id: uuid.UUID | None = None
    path: PathText | None = None
    password: str | None = Field(
        None,
        description="m365vault extension: repository encryption password",
        json_schema_extra={"writeOnly": True},
    )
    retention_type: RetentionType | None = None
    retention_period_type: RetentionPeriodType | None = None
    daily_retention_period: int | None = None
    monthly_retention_period: int | None = None
    yearly_retention_period: YearlyRetentionPeriod | None = None
    retention_frequency_type: RetentionFrequencyType | None = None
    daily_time: str | None = None
    daily_type: DailyType | None = None
    monthly_time: str | None = None
    monthly_daynumber: MonthlyDayNumber | None = None
    monthly_dayofweek: DayOfWeek | None = None

    def to_input(self) -> RepositoryInput:
        return RepositoryInput(**self.given())


# ------------------------------------------------------------------ jobs
class BackupWindowSettingsIn(V3Input):
    backup_window: list[bool] | None = None
    minute_offset: int | None = None


class SchedulePolicyIn(V3Input):
    type: ScheduleType | None = None
    daily_type: DailyType | None = None
    daily_time: str | None = None
    periodically_every: PeriodicallyEvery | None = None
    backup_window_enabled: bool | None = None
    backup_window_settings: BackupWindowSettingsIn | None = None
    retry_enabled: bool | None = None
    retry_number: int | None = None
    retry_wait_interval: int | None = None

    def to_input(self) -> ScheduleInput:
        window = self.backup_window_settings
        return ScheduleInput(
            type=self.type,
            daily_type=self.daily_type,
            daily_time=self.daily_time,
            periodically_every=self.periodically_every,
            backup_window_enabled=self.backup_window_enabled,
            backup_window=window.backup_window if window else None,
            minute_offset=window.minute_offset if window else None,
            retry_enabled=self.retry_enabled,
            retry_number=self.retry_number,
            retry_wait_interval=self.retry_wait_interval,
        )


class TenantObjectIn(V3Input):
    """The user, group or site a job item refers to (as listed by the organization)."""

    id: Url | None = None
    display_name: Name | None = None
    name: Name | None = None
    type: str | None = None
    url: Url | None = None
    title: Name | None = None
    parent_url: Url | None = None
    is_cloud: bool | None = None
    is_personal: bool | None = None


class JobItemIn(V3Input):
    type: JobItemType
    user: TenantObjectIn | None = None
    group: TenantObjectIn | None = None
    site: TenantObjectIn | None = None
    mailbox: bool | None = None
    archive_mailbox: bool | None = None
    one_drive: bool | None = None
    personal_site: bool | None = None
    members: bool | None = None
    member_mailbox: bool | None = None
    member_archive_mailbox: bool | None = None
    member_onedrive: bool | None = None
    member_site: bool | None = None
    group_site: bool | None = None
    sites: bool | None = None

    def to_input(self) -> JobItemInput:
        payload: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, exclude={"type"})
        return JobItemInput(type=self.type, payload=payload)


class JobItemPutIn(JobItemIn):
    """PUT on one item: a whole job item (later versions' style), or v3's documented
    `{"Id": <job id>, "ItemsToAppend": [...]}`."""

    type: JobItemType | None = None  # type: ignore[assignment]
    id: str | None = None
    items_to_append: list[JobItemIn] | None = None


class JobIn(V3Input):
    name: Name | None = None
    description: str | None = None
    backup_type: BackupType | None = None
    schedule_policy: SchedulePolicyIn | None = None
    proxy_id: uuid.UUID | None = None
    repository_id: uuid.UUID | None = None
    run_now: bool | None = None
    selected_items: list[JobItemIn] | None = None
    excluded_items: list[JobItemIn] | None = None

    def to_input(self) -> JobInput:
        return JobInput(
            name=self.name,
            description=self.description,
            backup_type=self.backup_type,
            schedule_policy=self.schedule_policy.to_input() if self.schedule_policy else None,
            proxy_id=self.proxy_id,
            repository_id=self.repository_id,
            run_now=self.run_now,
            selected_items=[i.to_input() for i in self.selected_items]
            if self.selected_items is not None
            else None,
            excluded_items=[i.to_input() for i in self.excluded_items]
            if self.excluded_items is not None
            else None,
        )


# ------------------------------------------------------------------ settings
class ExclusionSettingsIn(V3Input):
    deleted_items: bool | None = None
    drafts: bool | None = None
    junk_email: bool | None = None
    outbox: bool | None = None
    sync_issues: bool | None = None
    litigation_hold: bool | None = None
    in_place_hold: bool | None = None


class VboEmailSettingsIn(V3Input):
    enable_notification: bool | None = None
    smtp_server: Name | None = None
    port: int | None = None
    use_authentication: bool | None = None
    username: Name | None = None
    user_password: str | None = Field(None, json_schema_extra={"writeOnly": True}, repr=False)
    use_ssl: bool | None = Field(None, alias="useSSL")
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    subject: str | None = None
    notify_on_success: bool | None = None
    notify_on_warning: bool | None = None
    notify_on_failure: bool | None = None
    supress_until_last_retry: bool | None = None
    attach_detailed_report: bool | None = None


class ExplorerEmailSettingsIn(V3Input):
    enable_notification: bool | None = None
    server: Name | None = None
    port: int | None = None
    from_: str | None = Field(None, alias="from")
    use_authentication: bool | None = None
    use_ssl: bool | None = Field(None, alias="useSSL")
    username: Name | None = None
    user_password: str | None = Field(None, json_schema_extra={"writeOnly": True}, repr=False)
