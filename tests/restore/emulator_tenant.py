"""The emulated tenant of the restore suite's emulator tests: the emulator over HTTPS as a child
process, the server in process with an organization pointing at it, and an initialised repository."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m365vault.db.engine import make_engine
from m365vault.m365 import ClientSecret, GraphClient, TenantSettings, enumeration
from m365vault.repository import Repository
from m365vault.repository.backends.location import open_backend
from tests.restore.backup import Backup
from tests.restore.conftest import Env, default_repository, init_repository, org_body, start_env
from tests.support.net import free_port
from tests.support.processes import ChildProcess

TENANT = "fabrikam.onmicrosoft.com"
CLIENT_ID = "0a1b2c3d-0000-4000-8000-0000000e57e0"
SECRET = "restore-test-secret"


@dataclass
class Tenant:
    base: str
    cert: Path
    env: Env
    users: list[dict[str, Any]]  # licensed users: mailbox and OneDrive

    def settings(self) -> TenantSettings:
        return TenantSettings(
            tenant=TENANT,
            client_id=CLIENT_ID,
            credential=ClientSecret(SECRET),
            graph_endpoint=self.base,
            authority_endpoint=self.base,
            verify=str(self.cert),
        )

    def run(self, work: Any) -> Any:
        """Run `work(client)` against the tenant (a fresh loop per call, as the test is sync)."""

        async def go() -> Any:
            async with GraphClient.for_tenant(self.settings()) as client:
                return await work(client)

        return asyncio.run(go())

    async def backup(self, work: Any) -> Any:
        engine = make_engine(self.env.db_url)
        repo = await Repository.open(
            await open_backend(self.env.repository_path), self.env.repository_password
        )
        try:
            async with GraphClient.for_tenant(self.settings()) as client:
                backup = Backup(engine, repo, self.env.org_id, self.env.repository_id)
                return await work(client, backup)
        finally:
            await repo.close()
            engine.dispose()


@contextmanager
def emulated_tenant(tmp: Path) -> Iterator[Tenant]:
    state = tmp / "emulator"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "m365vault",
        "emulator",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        SECRET,
        "--seed",
        "7",
        "--scale",
        "small",
    ]
    process = ChildProcess(argv, tmp / "emulator.log")
    base = f"https://127.0.0.1:{port}"
    try:
        process.wait_http(f"{base}/_emulator/health", timeout=60)
        cert = state / "emulator-cert.pem"
        client, clock, tokens = start_env(tmp, f"sqlite:///{tmp / 'config.db'}", graph_verify=str(cert))
        try:
            org = client.post(
                "/v3/Organizations", json=org_body(TENANT, graph=base, client_id=CLIENT_ID, secret=SECRET)
            )
            assert org.status_code == 201, org.text
            repo_id, path, password = default_repository(client, client.app.state.control)  # type: ignore[attr-defined]
            asyncio.run(_init(path, password))
            env = Env(
                client,
                clock,
                org.json()["id"],
                repo_id,
                path,
                password,
                f"sqlite:///{tmp / 'config.db'}",
                tokens,
            )
            probe = Tenant(base, cert, env, [])
            probe.users = probe.run(_licensed_users)
            assert len(probe.users) >= 2
            yield probe
        finally:
            client.__exit__(None, None, None)
    finally:
        process.terminate()


async def _init(path: str, password: str) -> None:
    repo = await init_repository(path, password)
    await repo.close()


async def _licensed_users(client: GraphClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in enumeration.list_users(client):
        for user in page.items:
            if user.get("userType") == "Guest":
                continue
            if await enumeration.get_mailbox_settings(client, user["id"]) is None:
                continue
            if await enumeration.get_user_drive(client, user["id"]) is None:
                continue
            found.append(user)
            if len(found) == 2:
                return found
    return found
