"""The §1 wire conventions, over the real server: path case, lenient input, output form, links,
collection shapes, error bodies, and no 5xx whatever the input."""

from __future__ import annotations

import itertools
import re
import uuid

import httpx
import pytest

from tests.api.builders import add_job, add_org, default_repository
from tests.api.conftest import RunningServer

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


@pytest.mark.parametrize(
    "path", ["/v3/Jobs", "/v3/jobs", "/V3/JOBS", "/v3/jObS/", "/v3/BACKUPREPOSITORIES", "/v3/proxies"]
)
def test_paths_are_case_insensitive(api: httpx.Client, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 200 and isinstance(r.json(), list)


def test_path_parameters_keep_their_value(api: httpx.Client) -> None:
    org = add_org(api)
    job = add_job(api, org["id"], default_repository(api)["id"])
    assert api.get(f"/V3/JOBS/{job['id'].upper()}").json()["id"] == job["id"]
    assert api.get(f"/v3/organizations/{org['id']}/JOBS").json()[0]["id"] == job["id"]
    assert api.post(f"/v3/jobs/{job['id']}/ACTION", json={"disable": None}).status_code == 200


def test_input_keys_booleans_numbers_enums(api: httpx.Client) -> None:
    org = add_org(api)
    repo = default_repository(api)
    r = api.post(
        f"/v3/organizations/{org['id']}/jobs",
        json={
            "NAME": f"lenient-{uuid.uuid4().hex[:6]}",
            "BackupType": "entireORGANIZATION",
            "REPOSITORYID": repo["id"].upper(),
            "schedulepolicy": {
                "TYPE": "periodically",
                "PeriodicallyEvery": "minutes15",
                "RetryNumber": "5",
                "retryenabled": "True",
                "backupWindowEnabled": "false",
            },
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["backupType"] == "EntireOrganization"
    assert job["schedulePolicy"]["type"] == "Periodically"
    assert job["schedulePolicy"]["periodicallyEvery"] == "Minutes15"
    assert job["schedulePolicy"]["retryNumber"] == 5 and job["schedulePolicy"]["retryEnabled"] is True


def test_output_form(api: httpx.Client) -> None:
    org = add_org(api)
    job = add_job(api, org["id"], default_repository(api)["id"])
    r = api.get(f"/v3/Jobs/{job['id']}")
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert all(v is not None for v in body.values())  # nulls left out
    assert TIMESTAMP.match(body["nextRun"])
    session = api.post(f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex"}}).json()
    assert TIMESTAMP.match(session["creationTime"])


def test_links_follow_the_request_host(server: RunningServer, api: httpx.Client) -> None:
    org = add_org(api)
    r = api.get(f"/v3/Organizations/{org['id']}", headers={"Host": "Backup.EXAMPLE.local:4443"})
    links = r.json()["_links"]
    assert links["self"]["href"] == f"https://backup.example.local:4443/v3/organizations/{org['id']}"
    assert all(v["href"] == v["href"].lower() for v in links.values())
    assert api.base_url.scheme == "https"


def test_collection_shapes(api: httpx.Client) -> None:
    org = add_org(api)
    job = add_job(api, org["id"], default_repository(api)["id"])
    bare = [
        "/v3/Organizations",
        f"/v3/Organizations/{org['id']}/Jobs",
        "/v3/Jobs",
        f"/v3/Jobs/{job['id']}/JobSessions",
        "/v3/Proxies",
        "/v3/BackupRepositories",
        f"/v3/Organizations/{org['id']}/UsedRepositories",
        f"/v3/Jobs/{job['id']}/SelectedItems",
        f"/v3/Jobs/{job['id']}/ExcludedItems",
        "/v3/JobSessions",
    ]
    for path in bare:
        assert isinstance(api.get(path).json(), list), path
    page = api.get("/v3/RestoreSessions").json()
    assert set(page) == {"offset", "limit", "results", "_links"} and page["limit"] == 30
    # offset/limit on bare arrays too.
    orgs = api.get("/v3/Organizations").json()
    assert api.get("/v3/Organizations", params={"offset": 1, "limit": 1}).json() == orgs[1:2]
    assert api.get("/v3/organizations", params={"OFFSET": 1, "Limit": 1}).json() == orgs[1:2]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v3/Jobs/not-a-guid", 400),
        ("GET", "/v3/Nothing", 404),
        ("GET", "/v3/Jobs/3396ba22-21b1-4666-a631-0edfc12a59cd/Nothing", 404),
        ("DELETE", "/v3/Jobs", 405),
        ("PATCH", "/v3/Organizations", 405),
        ("GET", "/v3/Jobs/3396ba22-21b1-4666-a631-0edfc12a59cd/Action", 405),
        ("GET", "/v3/Jobs?limit=0", 400),
        ("GET", "/v3/Jobs?offset=-1", 400),
        ("GET", "/v3/RestoreSessions?limit=abc", 400),
    ],
)
def test_error_bodies(api: httpx.Client, method: str, path: str, status: int) -> None:
    r = api.request(method, path)
    assert r.status_code == status
    body = r.json()
    assert list(body) == ["message"] and body["message"]


def test_malformed_json_and_wrong_types(api: httpx.Client) -> None:
    for content in (b"{", b"{'single': 'quotes'}", b"\xff\xfe", b"[1, 2]", b"42"):
        r = api.post("/v3/Proxies", content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, content
        assert "message" in r.json()
    r = api.post("/v3/Proxies", json={"hostName": 42})
    assert r.status_code == 400 and "hostName" in r.json()["message"]
    r = api.post("/v3/Proxies", json={"hostName": "x", "HOSTNAME": "y"})
    assert r.status_code == 400 and "more than once" in r.json()["message"]


GARBAGE = [
    b"",
    b"null",
    b"{}",
    b"[]",
    b'"text"',
    b"1e999",
    b'{"a": {"b": [null, {}]}}',
    b"\x00\x01",
    b"{" * 50,
    b'{"type": null, "name": [], "id": {}}',
    b'{"explore": {"type": ["vex"]}}',
    b'{"stop": {"x": 1}}',
    b"[" * 20000 + b"]" * 20000,  # nesting deeper than the JSON parser's recursion
    b'{"a":' * 20000 + b"1" + b"}" * 20000,
    b'{"name": "\\ud800", "hostName": "\\ud800"}',  # a lone surrogate cannot be stored
    b'{"grant_type": "password", "username": "\\ud800", "password": "x"}',
    b'{"explore": {"type": "vex", "datetime": "0001-01-01T00:00:00+01:00"}}',
]


def test_no_input_yields_a_5xx(api: httpx.Client) -> None:
    org = add_org(api)
    job = add_job(api, org["id"], default_repository(api)["id"])
    paths = [
        "/v3/Organizations",
        f"/v3/Organizations/{org['id']}",
        f"/v3/Organizations/{org['id']}/Jobs",
        f"/v3/Organizations/{org['id']}/Action",
        f"/v3/Jobs/{job['id']}",
        f"/v3/Jobs/{job['id']}/Action",
        f"/v3/Jobs/{job['id']}/SelectedItems",
        f"/v3/Jobs/{job['id']}/ExcludedItems",
        "/v3/Proxies",
        "/v3/BackupRepositories",
        "/v3/ExclusionSettings",
        "/v3/VBOEmailSettings",
        "/v3/VEXEmailSettings",
        f"/v3/RestoreSessions/{uuid.uuid4()}/Action",
        "/v3/Token",
    ]
    for path, method, body in itertools.product(paths, ("POST", "PUT"), GARBAGE):
        r = api.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (method, path, body, r.status_code, r.text)


def test_unstorable_values_are_400_on_every_database(api: httpx.Client, server: RunningServer) -> None:
    long = "x" * 5000
    cases = [
        ("/v3/Proxies", {"hostName": long}),
        ("/v3/Proxies", {"hostName": "nul\u0000host"}),
        ("/v3/Proxies", {"hostName": "h-" + uuid.uuid4().hex, "throttlingValue": 10**12}),
        ("/v3/BackupRepositories", {"name": long, "path": "/tmp/x"}),
        ("/v3/BackupRepositories", {"name": "n", "path": "/tmp/" + long}),
    ]
    org = add_org(api)
    cases.append((f"/v3/Organizations/{org['id']}/Jobs", {"name": long, "backupType": "EntireOrganization"}))
    for path, body in cases:
        r = api.post(path, json=body)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
    with server.client() as c:
        for name in (long, "nul\u0000name"):
            r = c.post("/v3/Token", data={"grant_type": "password", "username": name, "password": "x"})
            assert r.status_code == 400 and "error" in r.json()
