"""One real emulator process (plain HTTP) per test session, and Graph clients for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.processes import ChildProcess

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "emulator-test-secret"
SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class Emu:
    base: str
    process: ChildProcess
    state_dir: Path

    @property
    def graph(self) -> str:
        return f"{self.base}/v1.0"

    @property
    def token_url(self) -> str:
        return f"{self.base}/{TENANT}/oauth2/v2.0/token"

    def token(self) -> str:
        r = httpx.post(
            self.token_url,
            data={
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "grant_type": "client_credentials",
                "scope": SCOPE,
            },
            verify=False,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.graph, headers={"Authorization": f"Bearer {self.token()}"}, timeout=60, verify=False
        )

    def admin(self, method: str, name: str, body: object = None) -> httpx.Response:
        return httpx.request(method, f"{self.base}/_emulator/{name}", json=body, timeout=120, verify=False)


def start_emulator(state_dir: Path, *extra: str, https: bool = False, seed: int = 7) -> Emu:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "m365vault",
        "emulator",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        SECRET,
        "--seed",
        str(seed),
        "--scale",
        "small",
        *extra,
    ]
    if not https:
        argv.append("--http")
    proc = ChildProcess(argv, state_dir.parent / f"{state_dir.name}.log")
    base = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/_emulator/health", timeout=60)
    except BaseException:
        proc.terminate()
        raise
    return Emu(base, proc, state_dir)


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    e = start_emulator(tmp_path_factory.mktemp("emulator") / "state")
    try:
        yield e
    finally:
        e.process.terminate()


@pytest.fixture
def graph(emu: Emu) -> Iterator[httpx.Client]:
    with emu.client() as c:
        yield c


@pytest.fixture(scope="session")
def mailbox_user(emu: Emu) -> dict:
    with emu.client() as c:
        users = c.get("/users", params={"$select": "id,userPrincipalName,mail,userType"}).json()["value"]
    return next(u for u in users if u["mail"] and u["userType"] == "Member")


def drain(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None, params: dict | None = None
) -> tuple[list[dict], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict] = []
    pages = 0
    r = client.get(url, headers=headers, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items.extend(body["value"])
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            r = client.get(body["@odata.nextLink"], headers=headers)
            continue
        return items, body["@odata.deltaLink"], pages
