"""`m365vault demo`: the whole product on one machine, ready to try.

Starts the tenant emulator and the server as child processes (HTTPS both ways, the server trusting
the emulator's certificate), adds the emulated organization, creates an EntireOrganization job on
the default repository, runs it once to the end, then prints the URL, the credentials and curl
commands for the job actions, and serves until Ctrl-C or SIGTERM (children are stopped by PID).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import typer

from m365vault.clock import utcnow

TENANT = "contoso.onmicrosoft.com"
ADMIN = "admin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Child:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children itself
            )

    def wait_ready(self, url: str, verify: Any, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.name} exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, verify=verify, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the {self.name} did not answer within {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _remembered(path: Path, size: int) -> str:
    if path.is_file():
        return path.read_text().strip()
    value = secrets.token_urlsafe(size)
    path.touch(mode=0o600)
    path.write_text(value)
    return value


@contextlib.contextmanager
def _children() -> Iterator[list[_Child]]:
    started: list[_Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def demo(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where to keep everything (default: a temp dir)"
    ),
    port: int = typer.Option(4443, "--port", help="The server's port"),
    scale: str = typer.Option("small", "--scale", help="Emulated tenant size: small | medium | large"),
) -> None:
    """Run the emulator and the server, back up the emulated tenant once, and keep serving."""
    root = data_dir.resolve() if data_dir else Path(tempfile.mkdtemp(prefix="m365vault-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, "-m", "m365vault"]
    # Kept in the demo dir so a second `demo --data-dir DIR` finds the same tenant and server.
    secret = _remembered(root / "demo-app-secret", 24)
    client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"m365vault-demo:{root}"))
    password = _remembered(root / "demo-admin-password", 12)
    stop_requested = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    with _children() as children:
        try:
            emulator_port = _free_port()
            state = root / "emulator"
            emulator = _Child(
                "emulator",
                [*me, "emulator", "--state-dir", str(state), "--port", str(emulator_port), "--scale", scale,
                 "--tenant", TENANT, "--client-id", client_id, "--client-secret", secret],
                root / "emulator.log",
            )  # fmt: skip
            children.append(emulator)
            graph = f"https://127.0.0.1:{emulator_port}"
            typer.echo(f"Starting the tenant emulator ({scale}) at {graph} ...")
            emulator.wait_ready(f"{graph}/_emulator/health", verify=False)
            cert = state / "emulator-cert.pem"
            server = _Child(
                "server",
                [*me, "serve", "--data-dir", str(root / "server"), "--port", str(port),
                 "--graph-ca-file", str(cert)],
                root / "server.log",
                env={"M365VAULT_ADMIN_USER": ADMIN, "M365VAULT_ADMIN_PASSWORD": password},
            )  # fmt: skip
            children.append(server)
            url = f"https://127.0.0.1:{port}"
            typer.echo(f"Starting the server at {url} ...")
            server.wait_ready(f"{url}/health", verify=False)
            job_id = _first_backup(url, password, graph, client_id, secret)
            _print_help(url, password, job_id)
            while not stop_requested:
                for child in children:
                    if child.proc.poll() is not None:
                        raise RuntimeError(f"the {child.name} exited; see {child.log}")
                time.sleep(1)
        except KeyboardInterrupt:
            typer.echo("\nStopping ...")
        except RuntimeError as exc:
            typer.echo(f"demo failed: {exc}", err=True)
            raise typer.Exit(1) from exc


def _first_backup(url: str, password: str, graph: str, client_id: str, secret: str) -> str:
    with httpx.Client(base_url=url, verify=False, timeout=120) as api:
        token = api.post(
            "/v3/Token", data={"grant_type": "password", "username": ADMIN, "password": password}
        )
        token.raise_for_status()
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        app = {"useApplicationOnlyAuth": True, "officeOrganizationName": TENANT, "applicationId": client_id,
               "applicationSecret": secret}  # fmt: skip
        orgs = api.get("/v3/Organizations").json()
        org = next((o for o in orgs if o["name"] == TENANT), None)
        if org is None:
            r = api.post(
                "/v3/Organizations",
                json={
                    "type": "Office365",
                    "region": "Worldwide",
                    "isExchangeOnline": True,
                    "isSharePointOnline": True,
                    "exchangeOnlineSettings": app,
                    "sharePointOnlineSettings": dict(app),
                    "graphEndpoint": graph,
                    "authorityEndpoint": graph,
                },
            )
            if r.status_code != 201:
                raise RuntimeError(f"adding the organization failed: {r.text}")
            org = r.json()
        jobs = api.get(f"/v3/Organizations/{org['id']}/Jobs").json()
        job = next((j for j in jobs if j["backupType"] == "EntireOrganization"), None)
        if job is None:
            repos = api.get("/v3/BackupRepositories").json()
            repo = next(r for r in repos if r["name"] == "Default Backup Repository")
            r = api.post(
                f"/v3/Organizations/{org['id']}/Jobs",
                json={
                    "name": "Entire organization",
                    "backupType": "EntireOrganization",
                    "repositoryId": repo["id"],
                    "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "03:00:00"},
                },
            )
            if r.status_code != 201:
                raise RuntimeError(f"creating the job failed: {r.text}")
            job = r.json()
        typer.echo("Backing up the emulated organization once ...")
        started = time.monotonic()
        r = api.post(f"/v3/Jobs/{job['id']}/action", json={"start": None})
        if r.status_code != 200:
            raise RuntimeError(f"starting the job failed: {r.text}")
        time.sleep(0.5)
        while True:
            sessions = api.get(f"/v3/Jobs/{job['id']}/JobSessions").json()
            latest = max(sessions, key=lambda s: s["creationTime"])
            if latest["status"] != "Running":
                break
            time.sleep(1)
        stats = latest.get("statistics") or {}
        typer.echo(
            f"Backup ended {latest['status']} in {time.monotonic() - started:.0f}s: "
            f"{stats.get('processedObjects', 0)} items, {stats.get('transferredDataBytes', 0) / 1e6:.1f} MB"
        )
        return str(job["id"])


def _print_help(url: str, password: str, job_id: str) -> None:
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    read_token = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    token = (
        f"TOKEN=$(curl -sk -X POST {url}/v3/Token -d grant_type=password -d username={ADMIN} "
        f"-d password={shlex.quote(password)} | {read_token})"
    )
    action = (
        f"curl -sk -X POST {url}/v3/Jobs/{job_id}/action "
        '-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d'
    )
    explore = json.dumps({"explore": {"datetime": now, "type": "vex"}})
    typer.echo(
        f"""
m365vault is serving at {url}/v3 (Swagger UI: {url}/swagger; self-signed certificate, hence -k)
Administrator: {ADMIN}  password: {password}

{token}
{action} '{{"enable": null}}'
{action} '{{"start": null}}'
{action} '{{"stop": null}}'
{action} '{{"disable": null}}'
{action} '{explore}'

Press Ctrl-C to stop.
"""
    )


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)
