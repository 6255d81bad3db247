"""/v3/ExclusionSettings and the e-mail settings resources."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from m365vault.db.config_tables import ServerSetting
from tests.api.conftest import RunningServer


def test_exclusion_settings(api: httpx.Client) -> None:
    got = api.get("/v3/ExclusionSettings").json()
    assert set(got) >= {
        "deletedItems",
        "drafts",
        "junkEmail",
        "outbox",
        "syncIssues",
        "litigationHold",
        "inPlaceHold",
    }
    assert got["_actions"]["update"] == {"uri": f"{api.base_url}/v3/exclusionsettings", "method": "PUT"}
    r = api.put("/v3/exclusionSettings", json={"Drafts": "true"})
    assert r.status_code == 200 and r.content == b""
    after = api.get("/v3/ExclusionSettings").json()
    assert after["drafts"] is True and after["syncIssues"] == got["syncIssues"]
    assert api.put("/v3/ExclusionSettings", json={"drafts": "sometimes"}).status_code == 400
    api.put("/v3/ExclusionSettings", json={"drafts": False})


@pytest.mark.parametrize("resource", ["VEXEmailSettings", "VESPEmailSettings", "VEODEmailSettings"])
def test_explorer_email_settings(server: RunningServer, api: httpx.Client, resource: str) -> None:
    r = api.put(
        f"/v3/{resource}",
        json={
            "server": "smtp.example.org",
            "Port": "587",
            "useSSL": "true",
            "userPassword": "smtp-pass-marker",
            "From": "a@b",
        },
    )
    assert r.status_code == 200, r.text
    got = api.get(f"/v3/{resource}").json()
    assert (
        got["server"] == "smtp.example.org"
        and got["port"] == 587
        and got["useSSL"] is True
        and got["from"] == "a@b"
    )
    assert "userPassword" not in got and "smtp-pass-marker" not in str(got)
    with server.engine.begin() as db:
        sealed = db.scalar(
            select(ServerSetting.secret_sealed).where(ServerSetting.name == f"email:{resource[:-13].lower()}")
        )
    assert sealed and b"smtp-pass-marker" not in sealed
    assert api.put(f"/v3/{resource}", json={"port": 0}).status_code == 400
    assert api.put(f"/v3/{resource}", json={"port": "many"}).status_code == 400


def test_vbo_email_settings(api: httpx.Client) -> None:
    assert (
        api.put(
            "/v3/VBOEmailSettings",
            json={
                "smtpServer": "smtp.office365.com",
                "supressUntilLastRetry": "false",
                "to": "ops@example.org",
            },
        ).status_code
        == 200
    )
    got = api.get("/v3/vboemailsettings").json()
    assert got["smtpServer"] == "smtp.office365.com" and got["supressUntilLastRetry"] is False
    assert got["_links"]["self"]["href"] == f"{api.base_url}/v3/vboemailsettings"
    assert (
        api.put(
            "/v3/VBOEmailSettings", content=b"[1]", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
