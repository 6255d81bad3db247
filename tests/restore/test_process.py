"""The restore tree through a real server process over HTTPS: explore listings, a download, stop,
and the background task stopping idle sessions (a short --restore-idle-minutes)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365vault.bootstrap import ServerConfig, build_control
from m365vault.db.engine import make_engine
from tests.restore.conftest import ADMIN, MIME, PASSWORD, T1, T2, backup_synthetic, org_body
from tests.support.net import free_port
from tests.support.processes import ChildProcess

M365VAULT = str(Path(sys.executable).parent / "m365vault")


@dataclass
class Server:
    base: str
    client: httpx.Client
    org_id: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("restore-process")
    data_dir = tmp / "data"
    db_url = f"sqlite:///{tmp / 'config.db'}"
    port = free_port()
    argv = [
        M365VAULT,
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--db",
        db_url,
        "--restore-idle-minutes",
        "0.1",
        # No tenant behind this organization: explore and save read only the catalog and the
        # repository, so the connector's credential check is left unwired.
        "--bare",
    ]
    env = {"M365VAULT_ADMIN_USER": ADMIN, "M365VAULT_ADMIN_PASSWORD": PASSWORD}
    process = ChildProcess(argv, tmp / "server.log", env=env)
    base = f"https://127.0.0.1:{port}"
    try:
        process.wait_http(f"{base}/health", timeout=60)
        with httpx.Client(base_url=base, verify=False, timeout=30) as client:
            token = client.post(
                "/v3/Token", data={"grant_type": "password", "username": ADMIN, "password": PASSWORD}
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            org = client.post("/v3/Organizations", json=org_body("contoso.onmicrosoft.com")).json()
            repo = client.get("/v3/BackupRepositories").json()[0]
            engine = make_engine(db_url)
            control = build_control(ServerConfig(data_dir=data_dir, db_url=db_url), engine)
            password = control.repositories.password(uuid.UUID(repo["id"]))
            engine.dispose()
            asyncio.run(backup_synthetic(db_url, org["id"], repo["id"], repo["path"], password))
            yield Server(base, client, org["id"])
    finally:
        assert process.terminate() == 0, process.log_path.read_text()[-3000:]


def explore(server: Server, **body: Any) -> str:
    r = server.client.post(f"/v3/Organizations/{server.org_id}/Action", json={"explore": body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_explore_save_and_stop_over_https(server: Server) -> None:
    sid = explore(server, type="Vex", datetime=T2.isoformat(), showDeleted="true")
    tree = f"/v3/restoresessions/{sid}/organization"
    items = server.client.get(f"{tree}/mailboxes/u-alice/items", params={"folderid": "f-inbox"}).json()
    assert [i["id"] for i in items["results"]] == ["m1", "m2", "m4"]
    assert items["_links"]["self"]["href"].startswith(server.base.lower() + "/v3/restoresessions/")
    first = explore(server, type="vex", datetime=T1.strftime("%Y.%m.%d %H:%M:%S"))
    folders = server.client.get(f"/v3/RestoreSessions/{first}/Organization/Mailboxes/u-alice/Folders").json()
    assert [f["id"] for f in folders["results"]] == ["f-inbox", "f-sent", "f-proj", "f-cal", "f-con"]
    saved = server.client.post(f"{tree}/mailboxes/u-alice/items/m1/action", json={"saveToEml": None})
    assert saved.status_code == 200 and saved.content == MIME["m1"]
    assert server.client.post(f"/v3/RestoreSessions/{sid}/Action", json={"stop": None}).status_code == 200
    stopped = server.client.get(f"/v3/RestoreSessions/{sid}").json()
    assert stopped["state"] == "Stopped" and "endTime" in stopped
    r = server.client.get(f"{tree}/mailboxes")
    assert r.status_code == 400 and r.json()["message"]


def test_idle_session_stops_by_itself(server: Server) -> None:
    sid = explore(server, type="veod")
    assert server.client.get(f"/v3/RestoreSessions/{sid}/Organization/OneDrives").status_code == 200
    deadline = time.monotonic() + 20
    state = "Working"
    while time.monotonic() < deadline and state != "Stopped":
        time.sleep(0.5)
        state = server.client.get(f"/v3/RestoreSessions/{sid}").json()["state"]
    assert state == "Stopped"
    events = server.client.get(f"/v3/RestoreSessions/{sid}/Events").json()["results"]
    assert "without activity" in events[-1]["message"]


def test_paging_and_versions_over_https(server: Server) -> None:
    sid = explore(server, type="vex", datetime=T2.isoformat(), showAllVersions="true")
    walked: list[str] = []
    url: str | None = f"/v3/RestoreSessions/{sid}/Organization/Mailboxes/u-alice/Items?limit=3"
    while url is not None:
        page = server.client.get(url).json()
        assert page["limit"] == 3 and len(page["results"]) <= 3
        walked += [i["id"].split("~v")[0] for i in page["results"]]
        url = page["_links"].get("next", {}).get("href")
    assert walked == ["m1", "m2", "m2", "m3", "m5", "e1", "c1", "m4"]
    bad = server.client.get(
        f"/v3/RestoreSessions/{sid}/Organization/Mailboxes/u-alice/Items", params={"limit": "x"}
    )
    assert bad.status_code == 400 and "message" in bad.json()
    wrong = server.client.get(f"/v3/RestoreSessions/{sid}/Organization/Sites")
    assert wrong.status_code == 400
