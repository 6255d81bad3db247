"""Jobs, job items and job actions over the real server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import insert

from m365vault.db.config_tables import JobSession
from tests.api.builders import add_job, add_org, default_repository, user_item
from tests.api.conftest import RunningServer, unique


@pytest.fixture
def org(api: httpx.Client) -> dict:
    return add_org(api)


@pytest.fixture
def repo_id(api: httpx.Client) -> str:
    return str(default_repository(api)["id"])


def test_create_job_shape(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(
        api, org["id"], repo_id, schedulePolicy={"Type": "DAILY", "dailyType": "friday", "dailyTime": "08:00"}
    )
    assert job["backupType"] == "SelectedItems" and job["isEnabled"] is True
    assert job["schedulePolicy"]["dailyType"] == "Friday" and job["schedulePolicy"]["dailyTime"] == "08:00:00"
    assert job["schedulePolicy"]["retryNumber"] == 3
    next_run = datetime.fromisoformat(job["nextRun"].replace("0Z", "+00:00"))
    assert next_run.weekday() == 4 and (next_run.hour, next_run.minute) == (8, 0)
    assert "lastRun" not in job and "lastStatus" not in job
    links = job["_links"]
    assert links["self"]["href"] == f"{api.base_url}/v3/jobs/{job['id']}"
    assert links["organization"]["href"].endswith(f"/v3/organizations/{org['id']}")
    assert links["backupRepository"]["href"].endswith(f"/v3/backuprepositories/{repo_id}")
    assert api.get(f"/v3/Jobs/{job['id']}").json() == job
    assert job in api.get("/v3/Jobs").json()
    assert api.get(f"/v3/Organizations/{org['id']}/Jobs").json() == [job]


def test_job_rules(api: httpx.Client, org: dict, repo_id: str) -> None:
    base = {"name": unique("j"), "repositoryId": repo_id}
    cases = [
        ({**base, "backupType": "SelectedItems"}, "selected item"),
        ({**base, "backupType": "SelectedItems", "selectedItems": []}, "selected item"),
        ({**base}, "backupType"),
        ({"name": unique("j"), "backupType": "EntireOrganization"}, "repositoryId"),
        ({**base, "backupType": "EntireOrganization", "repositoryId": str(uuid.uuid4())}, "repository"),
        ({**base, "backupType": "Everything"}, "backupType"),
        ({**base, "backupType": "EntireOrganization", "runNow": "true"}, "backup engine"),
        (
            {**base, "backupType": "EntireOrganization", "schedulePolicy": {"type": "periodically"}},
            "periodicallyEvery",
        ),
        (
            {**base, "backupType": "EntireOrganization", "schedulePolicy": {"retryNumber": "many"}},
            "retryNumber",
        ),
        (
            {
                **base,
                "backupType": "EntireOrganization",
                "schedulePolicy": {"backupWindowSettings": {"backupWindow": [True]}},
            },
            "168",
        ),
        ({**base, "backupType": "SelectedItems", "selectedItems": [{"type": "user"}]}, "user"),
        ({**base, "backupType": "SelectedItems", "selectedItems": [user_item("a"), user_item("a")]}, "twice"),
    ]
    for body, words in cases:
        r = api.post(f"/v3/Organizations/{org['id']}/Jobs", json=body)
        assert r.status_code in (400, 501), (body, r.text)
        assert words.lower() in r.json()["message"].lower(), (body, r.json())
    assert api.get(f"/v3/Organizations/{org['id']}/Jobs").json() == []
    # One entire-organization job per organization.
    add_job(api, org["id"], repo_id, backupType="entireorganization", selectedItems=None)
    r = api.post(
        f"/v3/Organizations/{org['id']}/Jobs",
        json={"name": unique("j"), "backupType": "EntireOrganization", "repositoryId": repo_id},
    )
    assert r.status_code == 400 and "entire-organization" in r.json()["message"]
    # Job names are unique (in any case).
    first = api.get(f"/v3/Organizations/{org['id']}/Jobs").json()[0]
    r = api.post(
        f"/v3/Organizations/{org['id']}/Jobs",
        json={
            "name": first["name"].upper(),
            "backupType": "SelectedItems",
            "repositoryId": repo_id,
            "selectedItems": [user_item()],
        },
    )
    assert r.status_code == 400 and "already exists" in r.json()["message"]


def test_edit_job_partially(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(api, org["id"], repo_id)
    r = api.put(
        f"/v3/Jobs/{job['id']}", json={"description": "changed", "schedulePolicy": {"retryEnabled": "false"}}
    )
    assert r.status_code == 200 and r.content == b""
    got = api.get(f"/v3/Jobs/{job['id']}").json()
    assert got["description"] == "changed" and got["name"] == job["name"]
    assert got["schedulePolicy"]["retryEnabled"] is False and got["schedulePolicy"]["dailyType"] == "Workdays"
    # Changing the timing needs the type.
    r = api.put(f"/v3/Jobs/{job['id']}", json={"schedulePolicy": {"dailyTime": "01:00:00"}})
    assert r.status_code == 400 and "type" in r.json()["message"]
    r = api.put(
        f"/v3/Jobs/{job['id']}",
        json={"schedulePolicy": {"type": "Periodically", "periodicallyEvery": "hours2"}},
    )
    assert r.status_code == 200
    got = api.get(f"/v3/Jobs/{job['id']}").json()
    assert got["schedulePolicy"]["periodicallyEvery"] == "Hours2" and "dailyTime" not in got["schedulePolicy"]
    assert api.put(f"/v3/Jobs/{uuid.uuid4()}", json={"description": "x"}).status_code == 404
    assert api.put(f"/v3/Jobs/{job['id']}", json={"backupType": "Nope"}).status_code == 400


def test_job_items(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(api, org["id"], repo_id)
    selected = api.get(f"/v3/Jobs/{job['id']}/SelectedItems").json()
    assert len(selected) == 1
    item = selected[0]
    assert item["type"] == "User" and item["mailbox"] is True and item["oneDrive"] is False
    assert item["user"]["displayName"] == "Adele"
    assert api.get(f"/v3/Jobs/{job['id']}/selecteditems/{item['id']}").json() == item
    # The last selected item of a SelectedItems job cannot go.
    r = api.delete(f"/v3/Jobs/{job['id']}/SelectedItems/{item['id']}")
    assert r.status_code == 400
    r = api.post(f"/v3/Jobs/{job['id']}/SelectedItems", json=[{"type": "PersonalSites"}])
    assert r.status_code == 200, r.text
    assert api.delete(f"/v3/Jobs/{job['id']}/SelectedItems/{item['id']}").status_code == 200
    assert len(api.get(f"/v3/Jobs/{job['id']}/SelectedItems").json()) == 1
    # Excluded items: add, replace, remove.
    r = api.post(f"/v3/Jobs/{job['id']}/ExcludedItems", json=[user_item()])
    excluded = r.json()[0]
    replacement = {"type": "Group", "group": {"id": "g-1", "displayName": "Sales"}, "groupSite": "true"}
    assert (
        api.put(f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}", json=replacement).status_code == 200
    )
    got = api.get(f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}").json()
    assert got["type"] == "Group" and got["groupSite"] is True and "user" not in got
    # The v3-documented form: the job id plus items to append.
    r = api.put(
        f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}",
        json={
            "Id": job["id"],
            "ItemsToAppend": [user_item(), {"type": "site", "site": {"url": "https://x/sites/a"}}],
        },
    )
    assert r.status_code == 200, r.text
    assert len(api.get(f"/v3/Jobs/{job['id']}/ExcludedItems").json()) == 3
    assert api.put(f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}", json={}).status_code == 400
    missing = api.put(
        f"/v3/Jobs/{job['id']}/ExcludedItems/{uuid.uuid4()}", json={"ItemsToAppend": [user_item()]}
    )
    assert missing.status_code == 404
    for other in api.get(f"/v3/Jobs/{job['id']}/ExcludedItems").json():
        if other["id"] != excluded["id"]:
            assert api.delete(f"/v3/Jobs/{job['id']}/ExcludedItems/{other['id']}").status_code == 200
    assert api.delete(f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}").status_code == 200
    assert api.get(f"/v3/Jobs/{job['id']}/ExcludedItems").json() == []
    assert api.get(f"/v3/Jobs/{job['id']}/ExcludedItems/{excluded['id']}").status_code == 404
    assert api.post(f"/v3/Jobs/{job['id']}/ExcludedItems", json=[]).status_code == 400
    assert api.post(f"/v3/Jobs/{job['id']}/ExcludedItems", json={"type": "User"}).status_code == 400
    assert api.post(f"/v3/Jobs/{job['id']}/ExcludedItems", json=[{"type": "Team"}]).status_code == 400
    assert api.get(f"/v3/Jobs/{uuid.uuid4()}/SelectedItems").status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "exactly one action"),
        ("null", "exactly one action"),
        ("[]", "exactly one action"),
        ('"enable"', "exactly one action"),
        ("{}", "exactly one action"),
        ('{"enable": null', "not valid JSON"),
        ('{"enable": null, "disable": null}', "exactly one"),
        ('{"enable": null, "ENABLE": null}', "more than once"),
        ('{"run": null}', "Unknown action"),
        ('{"enable": 1}', "takes no value"),
        ('{"explore": null}', "explore"),
        ('{"explore": {"type": "vet"}}', "vet"),
        ('{"explore": {"datetime": "2019-04-12T10:54:40Z"}}', "type"),
        ('{"explore": {"type": "vex", "datetime": "yesterday"}}', "datetime"),
        ('{"explore": {"type": "vex", "datetime": "2019-13-45 10:00:00"}}', "datetime"),
        ('{"explore": {"type": "vex", "showDeleted": "perhaps"}}', "showDeleted"),
        ('{"explore": {"type": "vex", "colour": "red"}}', "colour"),
        ('{"explore": {"type": "vex", "TYPE": "vesp"}}', "more than once"),
    ],
)
def test_malformed_actions_are_400_and_change_nothing(
    api: httpx.Client, org: dict, repo_id: str, body: str, words: str
) -> None:
    job = add_job(api, org["id"], repo_id)
    sessions_before = api.get("/v3/RestoreSessions", params={"limit": 10000}).json()["results"]
    r = api.post(f"/v3/Jobs/{job['id']}/Action", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert words.lower() in r.json()["message"].lower()
    assert api.get(f"/v3/Jobs/{job['id']}").json() == job
    assert api.get("/v3/RestoreSessions", params={"limit": 10000}).json()["results"] == sessions_before


def test_unknown_organization_comes_before_run_now(api: httpx.Client, repo_id: str) -> None:
    body = {"name": unique("j"), "backupType": "EntireOrganization", "repositoryId": repo_id, "runNow": True}
    assert api.post(f"/v3/Organizations/{uuid.uuid4()}/Jobs", json=body).status_code == 404
    assert api.put(f"/v3/Jobs/{uuid.uuid4()}", json={"runNow": True}).status_code == 404


def test_actions_on_unknown_job_are_404(api: httpx.Client) -> None:
    for action in ("enable", "disable", "start", "stop"):
        r = api.post(f"/v3/Jobs/{uuid.uuid4()}/Action", json={action: None})
        assert r.status_code == 404, r.text
    r = api.post(f"/v3/Jobs/{uuid.uuid4()}/Action", json={"explore": {"type": "vex"}})
    assert r.status_code == 404


def test_enable_disable_are_idempotent(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(api, org["id"], repo_id)
    for action, enabled in [("disable", False), ("Disable", False), ("ENABLE", True), ("enable", True)]:
        r = api.post(f"/V3/jobs/{job['id']}/action", json={action: None})
        assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
        got = api.get(f"/v3/Jobs/{job['id']}").json()
        assert got["isEnabled"] is enabled
        assert ("nextRun" in got) is enabled


def test_explore_formats(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(api, org["id"], repo_id)
    cases = [
        ({"datetime": "2019-04-12 10:54:40.279", "type": "vesp"}, "2019-04-12T10:54:40.2790000Z", "Vesp"),
        ({"datetime": "2019.04.12 22:07:39", "type": "VeOd"}, "2019-04-12T22:07:39.0000000Z", "Veod"),
        ({"datetime": "2019-04-12T12:00:00+02:00", "type": "vex"}, "2019-04-12T10:00:00.0000000Z", "Vex"),
        (
            {"datetime": "2019-04-12", "type": "vex", "showAllVersions": True},
            "2019-04-12T00:00:00.0000000Z",
            "Vex",
        ),
    ]
    for explore, point, kind in cases:
        r = api.post(f"/v3/Jobs/{job['id']}/Action", json={"explore": explore})
        assert r.status_code == 201, r.text
        assert r.json()["pointInTime"] == point and r.json()["type"] == kind
    before = datetime.now(UTC)
    r = api.post(f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex", "datetime": ""}})
    assert r.status_code == 201
    pinned = datetime.fromisoformat(r.json()["pointInTime"].replace("0Z", "+00:00"))
    assert abs((pinned - before).total_seconds()) < 60


def test_running_job_cannot_be_deleted_or_started_and_stop_needs_the_engine(
    server: RunningServer, api: httpx.Client, org: dict, repo_id: str
) -> None:
    job = add_job(api, org["id"], repo_id)
    with server.engine.begin() as db:
        db.execute(
            insert(JobSession).values(
                id=uuid.uuid4(),
                job_id=uuid.UUID(job["id"]),
                status="Running",
                creation_time=datetime.now(UTC),
                progress=0,
                statistics={},
                retry_count=0,
            )
        )
    r = api.delete(f"/v3/Jobs/{job['id']}")
    assert r.status_code == 400 and "running" in r.json()["message"]
    r = api.post(f"/v3/Jobs/{job['id']}/Action", json={"start": None})
    assert r.status_code == 501  # no engine on this server, whatever the job's state
    r = api.post(f"/v3/Jobs/{job['id']}/Action", json={"stop": None})
    assert r.status_code == 501 and "backup engine" in r.json()["message"]
    assert api.get(f"/v3/Jobs/{job['id']}").status_code == 200


def test_delete_job(api: httpx.Client, org: dict, repo_id: str) -> None:
    job = add_job(api, org["id"], repo_id)
    r = api.delete(f"/v3/Jobs/{job['id']}")
    assert r.status_code == 200 and r.content == b""
    assert api.get(f"/v3/Jobs/{job['id']}").status_code == 404
    assert api.get(f"/v3/Jobs/{job['id']}/SelectedItems").status_code == 404
    assert api.delete(f"/v3/Jobs/{job['id']}").status_code == 404
