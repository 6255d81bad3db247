"""A real emulator process over HTTPS (MSAL needs an https authority) for the connector's
integration tests, and connector settings that trust its self-signed certificate."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365vault.m365.settings import ClientSecret, TenantSettings, tls_verification
from tests.support.net import free_port
from tests.support.processes import ChildProcess

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "0a1b2c3d-0000-4000-8000-00000000c0de"
SECRET = "connector-test-secret"
DEFAULT_CONFIG: dict[str, Any] = {
    "latencyMs": 0,
    "faultRate": 0.0,
    "throttle": {
        "enabled": False,
        "mailboxConcurrency": 4,
        "mailboxRequestsPer10Min": 10_000,
        "sharePointResourceUnitsPerMinute": 1_200,
    },
    "tokenLifetimeSeconds": 3599,
    "deltaDuplicates": False,
    "enforceUploadFragmentMultiple": False,
}


@dataclass
class Emulator:
    base: str
    cert: Path
    process: ChildProcess

    def settings(self) -> TenantSettings:
        return TenantSettings(
            tenant=TENANT,
            client_id=CLIENT_ID,
            credential=ClientSecret(SECRET),
            graph_endpoint=self.base,
            authority_endpoint=self.base,
            verify=str(self.cert),
        )

    def admin(self, method: str, name: str, body: object = None) -> Any:
        response = httpx.request(
            method,
            f"{self.base}/_emulator/{name}",
            json=body,
            timeout=120,
            verify=tls_verification(str(self.cert)),
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("connector-emulator") / "state"
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
        "11",
        "--scale",
        "small",
    ]
    process = ChildProcess(argv, state.parent / "emulator.log")
    base = f"https://127.0.0.1:{port}"
    try:
        process.wait_http(f"{base}/_emulator/health", timeout=60)
        yield Emulator(base, state / "emulator-cert.pem", process)
    finally:
        process.terminate()


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, with its knobs reset after each test."""
    emulator.admin("POST", "config", DEFAULT_CONFIG)
    try:
        yield emulator
    finally:
        emulator.admin("POST", "config", DEFAULT_CONFIG)
