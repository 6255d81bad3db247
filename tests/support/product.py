"""The product as a user runs it: the tenant emulator and the server as child processes, and an
API client logged in to the server. Used by the end-to-end tests, the demo's test and benchmarks."""

from __future__ import annotations

import ssl
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.net import free_port
from tests.support.processes import ChildProcess

M365VAULT = str(Path(sys.executable).parent / "m365vault")
ADMIN_USER = "vboadmin"
ADMIN_PASSWORD = "Correct-Horse-9"
TENANT = "contoso.onmicrosoft.com"
CLIENT_SECRET = "e2e-client-secret-value"


@dataclass
class Emulator:
    process: ChildProcess
    base_url: str
    cert: Path
    client_id: str
    state_dir: Path

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/_emulator", verify=self.tls(), timeout=120)

    def graph(self) -> httpx.Client:
        """A Graph client with a token (to capture the tenant's state independently of the server)."""
        with httpx.Client(verify=self.tls(), timeout=60) as c:
            r = c.post(
                f"{self.base_url}/{TENANT}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": CLIENT_SECRET,
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
            r.raise_for_status()
            token = r.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.base_url}/v1.0",
            verify=self.tls(),
            timeout=60,
            headers={"Authorization": f"Bearer {token}", "Prefer": 'IdType="ImmutableId"'},
        )

    def stop(self) -> None:
        self.process.terminate()


def start_emulator(workdir: Path, scale: str = "small", seed: int = 1) -> Emulator:
    port = free_port()
    state = workdir / "emulator"
    client_id = str(uuid.UUID(int=seed + 0x1234))
    argv = [
        M365VAULT, "emulator", "--state-dir", str(state), "--port", str(port), "--scale", scale,
        "--seed", str(seed), "--tenant", TENANT, "--client-id", client_id, "--client-secret", CLIENT_SECRET,
    ]  # fmt: skip
    proc = ChildProcess(argv, workdir / "emulator.log")
    base = f"https://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/_emulator/health", timeout=180)
    except BaseException:
        proc.terminate()
        raise
    return Emulator(proc, base, state / "emulator-cert.pem", client_id, state)


class _AdminLogin(httpx.Auth):
    def __init__(self, server: Server) -> None:
        self._server = server

    def auth_flow(self, request: httpx.Request) -> Any:
        token = self._server._token or self._server.login()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._server.login()}"
            yield request


@dataclass
class Server:
    process: ChildProcess
    base_url: str
    data_dir: Path
    argv: list[str]
    workdir: Path
    restarts: int = 0
    _token: str | None = field(default=None, repr=False)

    def api(self) -> httpx.Client:
        """A client of the v3 API, logged in as the admin; it logs in again when its token expires
        (benchmarks run longer than a token lives)."""
        return httpx.Client(base_url=self.base_url, verify=False, timeout=60, auth=_AdminLogin(self))

    def login(self) -> str:
        with httpx.Client(base_url=self.base_url, verify=False, timeout=30) as c:
            r = c.post(
                "/v3/Token",
                data={"grant_type": "password", "username": ADMIN_USER, "password": ADMIN_PASSWORD},
            )
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (a crash)."""
        self.process.proc.kill()
        self.process.proc.wait(10)

    def restart(self) -> None:
        self.restarts += 1
        self.process = _spawn(self.argv, self.workdir / f"server-{self.restarts}.log", self.base_url)

    def stop(self) -> int:
        return self.process.terminate()


def _spawn(argv: list[str], log: Path, base: str) -> ChildProcess:
    env = {"M365VAULT_ADMIN_USER": ADMIN_USER, "M365VAULT_ADMIN_PASSWORD": ADMIN_PASSWORD}
    proc = ChildProcess(argv, log, env=env)
    try:
        proc.wait_http(f"{base}/health", timeout=90)
    except BaseException:
        proc.terminate()
        raise
    return proc


def start_server(workdir: Path, emulator: Emulator, *extra: str) -> Server:
    port = free_port()
    data = workdir / "data"
    argv = [
        M365VAULT, "serve", "--data-dir", str(data), "--port", str(port),
        "--graph-ca-file", str(emulator.cert), *extra,
    ]  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    return Server(_spawn(argv, workdir / "server.log", base), base, data, argv, workdir)


def organization_body(emulator: Emulator, secret: str = CLIENT_SECRET) -> dict[str, Any]:
    settings = {
        "useApplicationOnlyAuth": True,
        "officeOrganizationName": TENANT,
        "applicationId": emulator.client_id,
        "applicationSecret": secret,
    }
    return {
        "type": "Office365",
        "region": "Worldwide",
        "isExchangeOnline": True,
        "isSharePointOnline": True,
        "exchangeOnlineSettings": settings,
        "sharePointOnlineSettings": dict(settings),
        "graphEndpoint": emulator.base_url,
        "authorityEndpoint": emulator.base_url,
    }


def default_repository_id(api: httpx.Client) -> str:
    repos = api.get("/v3/BackupRepositories").json()
    return str(next(r for r in repos if r["name"] == "Default Backup Repository")["id"])


def add_entire_org_job(api: httpx.Client, org_id: str, name: str = "Entire organization") -> dict[str, Any]:
    body = {
        "name": name,
        "backupType": "EntireOrganization",
        "repositoryId": default_repository_id(api),
        "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "03:00:00"},
    }
    r = api.post(f"/v3/Organizations/{org_id}/Jobs", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(interval)


def last_session(api: httpx.Client, job_id: str) -> dict[str, Any] | None:
    r = api.get(f"/v3/Jobs/{job_id}/JobSessions")
    r.raise_for_status()
    body = r.json()
    sessions = body.get("results", body) if isinstance(body, dict) else body
    if not sessions:
        return None
    return dict(max(sessions, key=lambda s: s["creationTime"]))


def wait_session_end(api: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        session = last_session(api, job_id)
        return session if session and session["status"] != "Running" else None

    return dict(wait_for(ended, timeout, "the job session's end", interval=0.5))


def wait_new_session(
    api: httpx.Client, job_id: str, previous_id: str | None, timeout: float = 30
) -> dict[str, Any]:
    """The job's newest session once it is not `previous_id` any more."""

    def fresh() -> dict[str, Any] | None:
        session = last_session(api, job_id)
        return session if session is not None and session["id"] != previous_id else None

    return dict(wait_for(fresh, timeout, "a new job session"))
