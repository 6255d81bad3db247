"""The founding document's five example requests, replayed verbatim against the real server:
same method, path (including the job id), headers and bodies as printed in the seed."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, update

from m365vault.db.config_tables import Job, JobSession
from tests.api.builders import add_org, default_repository
from tests.api.conftest import RunningServer

SEED_JOB_ID = "3396ba22-21b1-4666-a631-0edfc12a59cd"
SEED_PATH = f"/v3/Jobs/{SEED_JOB_ID}/Action"
# The bodies exactly as the seed prints them (blank lines included).
EXAMPLE_BODIES = {
    "enable": '{\n\n "enable": null\n\n}',
    "start": '{\n\n "start": null\n\n}',
    "stop": '{\n\n "stop": null\n\n}',
    "disable": '{\n\n "disable": null\n\n}',
    "explore": '{\n\n "explore": {"datetime": "2019-04-12T10:54:40.2794046Z", "type": "vex"}\n\n}',
}


def _seed_job(server: RunningServer, api: httpx.Client) -> None:
    """Give the server a job with the seed's id (ids are server-made, so this one goes in directly)."""
    with server.engine.begin() as db:
        if db.scalar(select(func.count()).select_from(Job).where(Job.id == uuid.UUID(SEED_JOB_ID))):
            return
    org = add_org(api)
    repo = default_repository(api)
    r = api.post(
        f"/v3/Organizations/{org['id']}/Jobs",
        json={
            "name": f"seed-{org['id'][:8]}",
            "backupType": "EntireOrganization",
            "repositoryId": repo["id"],
        },
    )
    assert r.status_code == 201, r.text
    with server.engine.begin() as db:
        db.execute(update(Job).where(Job.id == uuid.UUID(r.json()["id"])).values(id=uuid.UUID(SEED_JOB_ID)))


def _replay(server: RunningServer, token: str, action: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Host": "support.east.local:4443"}
    with server.client() as c:
        return c.post(SEED_PATH, content=EXAMPLE_BODIES[action], headers=headers)


def _job(api: httpx.Client) -> dict[str, Any]:
    r = api.get(f"/v3/Jobs/{SEED_JOB_ID}")
    assert r.status_code == 200
    return dict(r.json())


def test_the_five_seed_requests(
    server: RunningServer, api: httpx.Client, admin_tokens: dict[str, Any]
) -> None:
    _seed_job(server, api)
    token = admin_tokens["access_token"]

    # Example 1: enable -> 200, empty body.
    r = _replay(server, token, "enable")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == "0"
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert _job(api)["isEnabled"] is True

    # Example 2: start -> the backup engine is not wired into this server: 501, and nothing runs.
    before = _job(api)
    r = _replay(server, token, "start")
    assert r.status_code == 501
    assert "backup engine" in r.json()["message"]
    with server.engine.begin() as db:
        sessions = db.scalar(
            select(func.count()).select_from(JobSession).where(JobSession.job_id == uuid.UUID(SEED_JOB_ID))
        )
    assert sessions == 0
    assert _job(api) == before

    # Example 3: stop on a job that is not running -> 400 with a message.
    r = _replay(server, token, "stop")
    assert r.status_code == 400
    assert "not running" in r.json()["message"]

    # Example 4: disable -> 200, empty body; isEnabled false and no next run.
    r = _replay(server, token, "disable")
    assert r.status_code == 200 and r.content == b""
    job = _job(api)
    assert job["isEnabled"] is False and "nextRun" not in job

    # Example 5: explore -> 201 with the new restore session, linked on the host the client used.
    r = _replay(server, token, "explore")
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["type"] == "Vex" and session["state"] == "Working"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", session["creationTime"])
    assert session["pointInTime"] == "2019-04-12T10:54:40.2794040Z"
    assert (
        session["_links"]["self"]["href"]
        == f"https://support.east.local:4443/v3/restoresessions/{session['id']}"
    )
    assert "endTime" not in session
    listed = api.get("/v3/RestoreSessions", params={"limit": 1000}).json()["results"]
    assert session["id"] in [s["id"] for s in listed]
