"""Request bodies used across the API tests (unique names keep tests independent on a shared server)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx


def org_body(name: str | None = None, secret: str = "app-secret-value") -> dict[str, Any]:
    name = name or f"t{secrets.token_hex(5)}.onmicrosoft.com"
    settings = {
        "useApplicationOnlyAuth": "true",
        "officeOrganizationName": name,
        "applicationId": str(uuid.uuid4()),
        "applicationSecret": secret,
    }
    return {
        "type": "office365",
        "region": "worldwide",
        "isExchangeOnline": "true",
        "isSharePointOnline": "true",
        "exchangeOnlineSettings": settings,
        "sharePointOnlineSettings": dict(settings),
    }


def add_org(api: httpx.Client, **kwargs: Any) -> dict[str, Any]:
    r = api.post("/v3/Organizations", json=org_body(**kwargs))
    assert r.status_code == 201, r.text
    return dict(r.json())


def default_repository(api: httpx.Client) -> dict[str, Any]:
    repos = api.get("/v3/BackupRepositories").json()
    return next(r for r in repos if r["name"] == "Default Backup Repository")


def user_item(user_id: str | None = None) -> dict[str, Any]:
    uid = user_id or str(uuid.uuid4()) + "00000000-0000-0000-0000-000000000000"
    return {
        "type": "user",
        "user": {"id": uid, "displayName": "Adele", "name": "adele@contoso.onmicrosoft.com", "type": "User"},
        "mailbox": "true",
        "oneDrive": "false",
    }


def add_job(api: httpx.Client, org_id: str, repo_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"job-{secrets.token_hex(4)}",
        "description": "nightly",
        "backupType": "selectedItems",
        "repositoryId": repo_id,
        "selectedItems": [user_item()],
        "schedulePolicy": {"type": "daily", "dailyType": "workdays", "dailyTime": "22:30:00"},
    }
    body.update(overrides)
    r = api.post(f"/v3/Organizations/{org_id}/Jobs", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())
