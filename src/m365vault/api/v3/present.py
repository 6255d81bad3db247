"""v3 output shapes: one function per resource, from a row to the exact v3 document
(nulls are dropped later by `wire.clean`)."""

from __future__ import annotations

from typing import Any

from m365vault.api.wire import Links
from m365vault.control.infrastructure import Capacity
from m365vault.db.config_tables import (
    BackupRepository,
    Job,
    JobItem,
    JobSession,
    JobSessionLogItem,
    Organization,
    Proxy,
    RestoreSession,
    RestoreSessionEvent,
)


def organization(org: Organization, links: Links) -> dict[str, Any]:
    settings = {
        "useApplicationOnlyAuth": True,
        "officeOrganizationName": org.name,
        "applicationId": str(org.application_id),
        "applicationCertificateThumbprint": org.certificate_thumbprint,
    }
    return {
        "type": org.type,
        "region": org.region,
        "isExchangeOnline": org.is_exchange_online,
        "isSharePointOnline": org.is_sharepoint_online,
        "exchangeOnlineSettings": dict(settings) if org.is_exchange_online else None,
        "sharePointOnlineSettings": dict(settings) if org.is_sharepoint_online else None,
        "graphEndpoint": org.graph_endpoint,
        "authorityEndpoint": org.authority_endpoint,
        "id": str(org.id),
        "name": org.name,
        "isBackedup": org.last_backup_time is not None,
        "firstBackuptime": org.first_backup_time,
        "lastBackuptime": org.last_backup_time,
        "_links": {
            "self": links.link("organizations", org.id),
            "jobs": links.link("organizations", org.id, "jobs"),
            "groups": links.link("organizations", org.id, "groups"),
            "users": links.link("organizations", org.id, "users"),
            "sites": links.link("organizations", org.id, "sites"),
            "usedRepositories": links.link("organizations", org.id, "usedrepositories"),
            "licensingInformation": links.link("organizations", org.id, "licensinginformation"),
        },
        "_actions": {},
    }


def proxy(p: Proxy, links: Links) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "hostName": p.host_name,
        "description": p.description,
        "port": p.port,
        "username": p.username,
        "threadsNumber": p.threads_number,
        "enableNetworkThrottling": p.enable_network_throttling,
        "throttlingValue": p.throttling_value,
        "throttlingUnit": p.throttling_unit,
        "status": p.status,
        "isDefault": p.is_default,
        "_links": {
            "self": links.link("proxies", p.id),
            "repositories": links.link("proxies", p.id, "repositories"),
        },
    }


def repository(r: BackupRepository, links: Links, capacity: Capacity | None) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "name": r.name,
        "description": r.description,
        "proxyId": str(r.proxy_id),
        "path": r.path,
        "retentionType": r.retention_type,
        "retentionPeriodType": r.retention_period_type,
        "dailyRetentionPeriod": r.daily_retention_period if r.retention_period_type == "Daily" else None,
        "monthlyRetentionPeriod": r.monthly_retention_period
        if r.retention_period_type == "Monthly"
        else None,
        "yearlyRetentionPeriod": r.yearly_retention_period if r.retention_period_type == "Yearly" else None,
        "retentionFrequencyType": r.retention_frequency_type,
        "dailyTime": r.daily_time if r.retention_frequency_type == "Daily" else None,
        "dailyType": r.daily_type if r.retention_frequency_type == "Daily" else None,
        "monthlyTime": r.monthly_time if r.retention_frequency_type == "Monthly" else None,
        "monthlyDaynumber": r.monthly_daynumber if r.retention_frequency_type == "Monthly" else None,
        "monthlyDayofweek": r.monthly_dayofweek if r.retention_frequency_type == "Monthly" else None,
        "capacityBytes": capacity.capacity_bytes if capacity else None,
        "freeSpaceBytes": capacity.free_space_bytes if capacity else None,
        "_links": {
            "self": links.link("backuprepositories", r.id),
            "proxy": links.link("proxies", r.proxy_id),
        },
    }


def job(j: Job, links: Links) -> dict[str, Any]:
    return {
        "id": str(j.id),
        "name": j.name,
        "description": j.description,
        "lastRun": j.last_run,
        "nextRun": j.next_run if j.is_enabled else None,
        "isEnabled": j.is_enabled,
        "backupType": j.backup_type,
        "lastStatus": j.last_status,
        "repositoryId": str(j.repository_id),
        "proxyId": str(j.proxy_id) if j.proxy_id else None,
        "schedulePolicy": j.schedule_policy,
        "_links": {
            "self": links.link("jobs", j.id),
            "organization": links.link("organizations", j.organization_id),
            "backupRepository": links.link("backuprepositories", j.repository_id),
            "jobsessions": links.link("jobs", j.id, "jobsessions"),
            "selectedItems": links.link("jobs", j.id, "selecteditems"),
            "excludedItems": links.link("jobs", j.id, "excludeditems"),
        },
    }


def job_item(item: JobItem, links: Links) -> dict[str, Any]:
    collection = "selecteditems" if item.kind == "selected" else "excludeditems"
    return {
        "id": str(item.id),
        "type": item.type,
        **item.payload,
        "_links": {
            "self": links.link("jobs", item.job_id, collection, item.id),
            "job": links.link("jobs", item.job_id),
        },
    }


def job_session(s: JobSession, links: Links) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "creationTime": s.creation_time,
        "endTime": s.end_time,
        "progress": s.progress,
        "status": s.status,
        "details": s.details,
        "retryCount": s.retry_count,
        "statistics": s.statistics or None,
        "_links": {
            "self": links.link("jobsessions", s.id),
            "log": links.link("jobsessions", s.id, "log"),
            "job": links.link("jobs", s.job_id),
        },
    }


def log_item(item: JobSessionLogItem, links: Links) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "usn": item.usn,
        "title": item.title,
        "creationTime": item.creation_time,
        "endTime": item.end_time,
        "_links": {
            "self": links.link("jobsessions", item.session_id, "logitems", item.id),
            "jobsessions": links.link("jobsessions", item.session_id),
        },
    }


def restore_session(s: RestoreSession, links: Links) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "name": s.name,
        "organization": s.organization_name,
        "type": s.type,
        "creationTime": s.creation_time,
        "endTime": s.end_time,
        "state": s.state,
        "result": s.result,
        "pointInTime": s.point_in_time,
        "showDeleted": s.show_deleted,
        "showAllVersions": s.show_all_versions,
        "_links": {
            "self": links.link("restoresessions", s.id),
            "organization": links.link("restoresessions", s.id, "organization"),
            "events": links.link("restoresessions", s.id, "events"),
        },
    }


def restore_event(e: RestoreSessionEvent, links: Links) -> dict[str, Any]:
    duration = (e.end_time - e.start_time) if e.end_time else None
    return {
        "id": str(e.id),
        "type": e.type,
        "status": e.status,
        "startTime": e.start_time,
        "endTime": e.end_time,
        "duration": _timespan(duration.total_seconds()) if duration is not None else None,
        "title": e.title,
        "message": e.message,
        "order": e.order,
        "_links": {
            "self": links.link("restoresessions", e.restore_session_id, "events", e.id),
            "restoreSession": links.link("restoresessions", e.restore_session_id),
        },
    }


def _timespan(seconds: float) -> str:
    """.NET TimeSpan text: HH:mm:ss (days folded into hours)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
