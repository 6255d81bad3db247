"""/v3/Proxies and /v3/BackupRepositories, including the defaults made on first start."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from m365vault.db.config_tables import BackupRepository, Proxy
from tests.api.builders import add_job, add_org, default_repository
from tests.api.conftest import RunningServer, unique


def test_first_start_made_the_local_proxy_and_default_repository(
    server: RunningServer, api: httpx.Client
) -> None:
    proxies = api.get("/v3/Proxies").json()
    local = next(p for p in proxies if p.get("isDefault"))
    assert local["status"] == "Online" and local["threadsNumber"] == 64
    repo = default_repository(api)
    assert repo["path"] == str((server.data_dir / "repository").resolve())
    assert (server.data_dir / "repository").is_dir()
    assert repo["proxyId"] == local["id"]
    assert repo["capacityBytes"] > repo["freeSpaceBytes"] > 0
    assert repo["_links"]["proxy"]["href"] == local["_links"]["self"]["href"]
    on_proxy = api.get(f"/v3/Proxies/{local['id']}/Repositories").json()
    assert repo["id"] in [r["id"] for r in on_proxy]


def test_proxy_crud(server: RunningServer, api: httpx.Client) -> None:
    host = unique("proxy") + ".example.local"
    body = {
        "hostName": host,
        "description": "remote",
        "port": "9194",
        "username": "svc",
        "password": "proxy-pass-marker",
        "enableNetworkThrottling": "TRUE",
        "throttlingValue": "100",
        "throttlingUnit": "mbs",
    }
    r = api.post("/v3/Proxies", json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["hostName"] == host and p["port"] == 9194 and p["throttlingUnit"] == "MBs"
    assert p["enableNetworkThrottling"] is True and p["status"] == "Offline"
    assert "password" not in p and "proxy-pass-marker" not in r.text
    with server.engine.begin() as db:
        sealed = db.scalar(select(Proxy.password_sealed).where(Proxy.id == uuid.UUID(p["id"])))
    assert sealed and b"proxy-pass-marker" not in sealed
    r = api.put(f"/v3/Proxies/{p['id']}", json={"threadsNumber": 8})
    assert r.status_code == 200 and r.content == b""
    got = api.get(f"/v3/Proxies/{p['id']}").json()
    assert got["threadsNumber"] == 8 and got["port"] == 9194  # partial update
    assert api.get(f"/v3/Proxies/{p['id']}/Repositories").json() == []
    assert api.post("/v3/Proxies", json={**body, "hostName": host.upper()}).status_code == 400
    assert api.put(f"/v3/Proxies/{p['id']}", json={"port": 70000}).status_code == 400
    assert api.delete(f"/v3/Proxies/{p['id']}").status_code == 200
    assert api.get(f"/v3/Proxies/{p['id']}").status_code == 404
    assert api.delete(f"/v3/Proxies/{p['id']}").status_code == 404


def test_default_proxy_cannot_be_removed(api: httpx.Client) -> None:
    local = next(p for p in api.get("/v3/Proxies").json() if p.get("isDefault"))
    r = api.delete(f"/v3/Proxies/{local['id']}")
    assert r.status_code == 400


def test_repository_crud_and_retention_rules(
    server: RunningServer, api: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "repo-a"
    body = {
        "Name": unique("repo"),
        "description": "daily keep 14",
        "path": str(path),
        "retentionType": "snapshotbased",
        "retentionPeriodType": "daily",
        "dailyRetentionPeriod": "14",
        "retentionFrequencyType": "monthly",
        "monthlyTime": "03:00",
        "monthlyDaynumber": "last",
        "monthlyDayofweek": "sunday",
        "password": "repo-pass-marker",
    }
    r = api.post("/v3/BackupRepositories", json=body)
    assert r.status_code == 201, r.text
    repo = r.json()
    assert path.is_dir()
    assert repo["retentionType"] == "SnapshotBased" and repo["dailyRetentionPeriod"] == 14
    assert repo["monthlyTime"] == "03:00:00" and repo["monthlyDaynumber"] == "Last"
    assert "dailyTime" not in repo and "yearlyRetentionPeriod" not in repo and "password" not in repo
    with server.engine.begin() as db:
        sealed = db.scalar(
            select(BackupRepository.password_sealed).where(BackupRepository.id == uuid.UUID(repo["id"]))
        )
    assert sealed and b"repo-pass-marker" not in sealed
    r = api.put(f"/v3/BackupRepositories/{repo['id']}", json={"retentionPeriodType": "Monthly"})
    assert r.status_code == 400 and "monthlyRetentionPeriod" in r.json()["message"]
    r = api.put(
        f"/v3/BackupRepositories/{repo['id']}",
        json={"retentionPeriodType": "Monthly", "monthlyRetentionPeriod": 6},
    )
    assert r.status_code == 200
    got = api.get(f"/v3/BackupRepositories/{repo['id']}").json()
    assert got["monthlyRetentionPeriod"] == 6 and "dailyRetentionPeriod" not in got
    assert api.put(f"/v3/BackupRepositories/{repo['id']}", json={"path": "/elsewhere"}).status_code == 400
    # Same name or same path: refused.
    assert api.post("/v3/BackupRepositories", json={**body, "path": str(tmp_path / "b")}).status_code == 400
    assert api.post("/v3/BackupRepositories", json={**body, "Name": unique("r")}).status_code == 400
    assert api.delete(f"/v3/BackupRepositories/{repo['id']}").status_code == 200
    assert api.get(f"/v3/BackupRepositories/{repo['id']}").status_code == 404


def test_repository_input_errors(api: httpx.Client, tmp_path: Path) -> None:
    cases = [
        ({"path": str(tmp_path / "x")}, "name"),
        ({"name": unique("r")}, "path"),
        ({"name": unique("r"), "path": "relative/dir"}, "absolute"),
        ({"name": unique("r"), "path": str(tmp_path / "y"), "proxyId": str(uuid.uuid4())}, "proxy"),
        ({"name": unique("r"), "path": str(tmp_path / "z"), "dailyTime": "25:00:00"}, "dailyTime"),
        ({"name": unique("r"), "path": str(tmp_path / "w"), "retentionType": "forever"}, "retentionType"),
        (
            {"name": unique("r"), "path": str(tmp_path / "v"), "dailyRetentionPeriod": "fourteen"},
            "dailyRetentionPeriod",
        ),
    ]
    for body, words in cases:
        r = api.post("/v3/BackupRepositories", json=body)
        assert r.status_code == 400, (body, r.text)
        assert words.lower() in r.json()["message"].lower(), r.json()


def test_repository_in_use_cannot_be_removed(api: httpx.Client, tmp_path: Path) -> None:
    r = api.post("/v3/BackupRepositories", json={"name": unique("repo"), "path": str(tmp_path / "used")})
    assert r.status_code == 201, r.text
    repo = r.json()
    org = add_org(api)
    job = add_job(api, org["id"], repo["id"])
    r = api.delete(f"/v3/BackupRepositories/{repo['id']}")
    assert r.status_code == 400 and "job" in r.json()["message"]
    api.delete(f"/v3/Jobs/{job['id']}")
    assert api.delete(f"/v3/BackupRepositories/{repo['id']}").status_code == 200
