"""Start the Graph tenant emulator (`m365vault emulator`) as a real process for a test.

emu = start_emulator(tmp_path / "state")          # plain HTTP, small tenant, fixed credentials
try:
    token = emu.token(); ... httpx.get(f"{emu.graph}/users", headers={"Authorization": f"Bearer {token}"})
finally:
    emu.process.terminate()
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.net import free_port
from tests.support.processes import ChildProcess

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "emulator-test-secret"
SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class Emulator:
    base: str  # e.g. http://127.0.0.1:PORT (login endpoints live here, Graph under /v1.0)
    process: ChildProcess
    state_dir: Path

    @property
    def graph(self) -> str:
        return f"{self.base}/v1.0"

    @property
    def authority(self) -> str:
        return f"{self.base}/{TENANT}"

    @property
    def token_url(self) -> str:
        return f"{self.base}/{TENANT}/oauth2/v2.0/token"

    @property
    def certificate(self) -> Path:
        """The self-signed server certificate (HTTPS emulators) to pin."""
        return self.state_dir / "emulator-cert.pem"

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
        """A Graph client with a fresh bearer token (base_url = the Graph root)."""
        return httpx.Client(
            base_url=self.graph, headers={"Authorization": f"Bearer {self.token()}"}, timeout=60, verify=False
        )

    def admin(self, method: str, name: str, body: object = None) -> httpx.Response:
        """Call the admin API: health, config, activity, expire, certificates, tenant."""
        return httpx.request(method, f"{self.base}/_emulator/{name}", json=body, timeout=120, verify=False)


def start_emulator(
    state_dir: Path, *extra: str, https: bool = False, seed: int = 7, scale: str = "small"
) -> Emulator:
    """Start an emulator on a free loopback port and wait until it is healthy."""
    port = free_port()
    argv = [sys.executable, "-m", "m365vault", "emulator", "--port", str(port), "--state-dir", str(state_dir),
            "--tenant", TENANT, "--client-id", CLIENT_ID, "--client-secret", SECRET, "--seed", str(seed),
            "--scale", scale, *extra]  # fmt: skip
    if not https:
        argv.append("--http")
    proc = ChildProcess(argv, state_dir.parent / f"{state_dir.name}.log")
    base = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/_emulator/health", timeout=60)
    except BaseException:
        proc.terminate()
        raise
    return Emulator(base, proc, state_dir)
