"""Job sessions (+ log) and restore sessions (+ events, stop, per-logon visibility)."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from m365vault.db.config_tables import JobSession, JobSessionLogItem
from tests.api.builders import add_job, add_org, default_repository
from tests.api.conftest import M365VAULT, RunningServer, unique


def _session_with_log(server: RunningServer, job_id: str, entries: int, start: datetime) -> str:
    """What the backup engine will write: a finished session and its log."""
    session_id = uuid.uuid4()
    with server.engine.begin() as db:
        db.execute(
            insert(JobSession).values(
                id=session_id,
                job_id=uuid.UUID(job_id),
                status="Success",
                creation_time=start,
                end_time=start + timedelta(minutes=1),
                progress=1193,
                retry_count=0,
                details=None,
                statistics={
                    "processingRateBytesPS": 1683256,
                    "processingRateItemsPS": 20,
                    "readRateBytesPS": 5383429,
                    "writeRateBytesPS": 26015396,
                    "transferredDataBytes": 98142970,
                    "processedObjects": 1193,
                    "bottleneck": "Source",
                },
            )
        )
        db.execute(
            insert(JobSessionLogItem),
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": session_id,
                    "usn": i + 1,
                    "title": f"[Success] step {i + 1}",
                    "creation_time": start + timedelta(seconds=i),
                    "end_time": start + timedelta(seconds=i),
                }
                for i in range(entries)
            ],
        )
    return str(session_id)


def test_job_sessions_and_log(server: RunningServer, api: httpx.Client) -> None:
    job = add_job(api, add_org(api)["id"], default_repository(api)["id"])
    old = _session_with_log(server, job["id"], 2, datetime(2019, 2, 4, 16, 49, 22, 852976, tzinfo=UTC))
    new = _session_with_log(server, job["id"], 35, datetime(2019, 2, 5, 16, 49, 22, tzinfo=UTC))
    sessions = api.get(f"/v3/Jobs/{job['id']}/JobSessions").json()
    assert [s["id"] for s in sessions] == [new, old]  # bare array, newest first
    s = api.get(f"/v3/JobSessions/{old}").json()
    assert (
        s["creationTime"] == "2019-02-04T16:49:22.8529760Z"
        and s["status"] == "Success"
        and s["progress"] == 1193
    )
    assert s["statistics"]["bottleneck"] == "Source" and s["statistics"]["transferredDataBytes"] == 98142970
    assert s["_links"]["job"]["href"].endswith(f"/v3/jobs/{job['id']}")
    assert "details" not in s
    everything = api.get("/v3/JobSessions").json()
    assert isinstance(everything, list) and {old, new} <= {x["id"] for x in everything}
    assert len(api.get("/v3/JobSessions", params={"limit": 1}).json()) == 1
    # LogItems: page object, default limit 30, next link while more remain.
    page = api.get(f"/v3/JobSessions/{new}/LogItems").json()
    assert page["offset"] == 0 and page["limit"] == 30 and len(page["results"]) == 30
    assert page["results"][0]["usn"] == 1 and page["results"][0]["title"].startswith("[Success]")
    assert "offset=30" in page["_links"]["next"]["href"]
    rest = api.get(f"/v3/JobSessions/{new}/LogItems", params={"offset": 30, "limit": 1000}).json()
    assert len(rest["results"]) == 5 and "next" not in rest["_links"] and "prev" in rest["_links"]
    one = rest["results"][0]
    assert api.get(f"/v3/JobSessions/{new}/LogItems/{one['id']}").json() == one
    assert api.get(f"/v3/JobSessions/{new}/Log").json()["results"][0]["usn"] == 1
    assert api.get(f"/v3/JobSessions/{new}/LogItems/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/v3/JobSessions/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/v3/JobSessions/{uuid.uuid4()}/LogItems").status_code == 404
    assert api.get(f"/v3/Jobs/{uuid.uuid4()}/JobSessions").status_code == 404


def test_restore_session_lifecycle(api: httpx.Client) -> None:
    job = add_job(api, add_org(api)["id"], default_repository(api)["id"])
    s = api.post(f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex"}}).json()
    got = api.get(f"/v3/RestoreSessions/{s['id']}").json()
    assert got == s and got["name"] == job["name"]
    events = api.get(f"/v3/RestoreSessions/{s['id']}/Events").json()
    assert events["offset"] == 0 and events["limit"] == 30
    assert [e["message"] for e in events["results"]] == ["Restore session started"]
    assert events["results"][0]["duration"] == "00:00:00" and events["results"][0]["type"] == "None"
    # Stop: 200 with an empty body, Stopped with endTime; a second stop is a no-op.
    for _ in range(2):
        r = api.post(f"/v3/RestoreSessions/{s['id']}/Action", json={"stop": None})
        assert r.status_code == 200 and r.content == b""
    stopped = api.get(f"/v3/RestoreSessions/{s['id']}").json()
    assert stopped["state"] == "Stopped" and "endTime" in stopped
    events = api.get(f"/v3/RestoreSessions/{s['id']}/Events").json()["results"]
    assert [e["order"] for e in events] == [0, 1]
    assert api.get(f"/v3/RestoreSessions/{s['id']}/Events/{events[1]['id']}").json() == events[1]
    assert api.post(f"/v3/RestoreSessions/{s['id']}/Action", json={"explore": None}).status_code == 400
    assert api.post(f"/v3/RestoreSessions/{s['id']}/Action", content=b"{").status_code == 400
    assert api.get(f"/v3/RestoreSessions/{uuid.uuid4()}").status_code == 404
    assert api.post(f"/v3/RestoreSessions/{uuid.uuid4()}/Action", json={"stop": None}).status_code == 404


def test_restore_sessions_are_listed_per_logon(server: RunningServer, api: httpx.Client) -> None:
    name, password = unique("operator"), "Operator-Pass-1"
    subprocess.run(
        [
            M365VAULT,
            "admin",
            "add",
            name,
            "--data-dir",
            str(server.data_dir),
            "--db",
            server.db_url,
            "--password",
            password,
        ],
        check=True,
        capture_output=True,
    )
    org = add_org(api)
    mine = api.post(f"/v3/Organizations/{org['id']}/Action", json={"explore": {"type": "vex"}}).json()
    other_token = server.login(name, password)["access_token"]
    with server.client(other_token) as other:
        theirs = other.post(
            f"/v3/Organizations/{org['id']}/Action", json={"explore": {"type": "vesp"}}
        ).json()
        listed = other.get("/v3/RestoreSessions").json()
        assert [s["id"] for s in listed["results"]] == [theirs["id"]]
        assert other.get(f"/v3/RestoreSessions/{mine['id']}").status_code == 403
        assert other.post(f"/v3/RestoreSessions/{mine['id']}/Action", json={"stop": None}).status_code == 403
    ids = [s["id"] for s in api.get("/v3/RestoreSessions", params={"limit": 10000}).json()["results"]]
    assert mine["id"] in ids and theirs["id"] not in ids


def test_restore_sessions_page(api: httpx.Client) -> None:
    org = add_org(api)
    for _ in range(3):
        api.post(f"/v3/Organizations/{org['id']}/Action", json={"explore": {"type": "vex"}})
    first = api.get("/v3/RestoreSessions", params={"offset": 0, "limit": 2}).json()
    assert first["limit"] == 2 and len(first["results"]) == 2 and "next" in first["_links"]
    assert first["_links"]["self"]["href"].startswith(f"{api.base_url}/v3/restoresessions?")
    second = api.get("/v3/RestoreSessions", params={"offset": 2, "limit": 2}).json()
    assert not {s["id"] for s in first["results"]} & {s["id"] for s in second["results"]}


def test_concurrent_stops_all_succeed(api: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    org = add_org(api)
    s = api.post(f"/v3/Organizations/{org['id']}/Action", json={"explore": {"type": "vex"}}).json()
    headers = dict(api.headers)

    def stop(_: int) -> int:
        with httpx.Client(base_url=api.base_url, verify=False, headers=headers, timeout=30) as c:
            return c.post(f"/v3/RestoreSessions/{s['id']}/Action", json={"stop": None}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(stop, range(6))) == {200}
    events = api.get(f"/v3/RestoreSessions/{s['id']}/Events").json()["results"]
    assert [e["message"] for e in events] == ["Restore session started", "Restore session stopped"]
