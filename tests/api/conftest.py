"""Fixtures of the API suite: the server as a real uvicorn process over HTTPS (one per database for
the whole session), clients logged in to it, and in-process apps with a fake clock and fake ports."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from m365vault.db.engine import make_engine
from tests.support.net import free_port
from tests.support.postgres import temporary_database
from tests.support.processes import ChildProcess

ADMIN_USER = "vboadmin"
ADMIN_PASSWORD = "Correct-Horse-9"
M365VAULT = str(Path(sys.executable).parent / "m365vault")


@dataclass
class RunningServer:
    base_url: str
    db_url: str
    data_dir: Path
    process: ChildProcess
    engine: Engine

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, verify=False, headers=headers, timeout=30)

    def login(self, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        with self.client() as c:
            r = c.post("/v3/Token", data={"grant_type": "password", "username": user, "password": password})
        assert r.status_code == 200, r.text
        return dict(r.json())


def start_server(workdir: Path, db_url: str, *extra: str) -> tuple[ChildProcess, str]:
    port = free_port()
    data_dir = workdir / "data"
    argv = [M365VAULT, "serve", "--bare", "--data-dir", str(data_dir), "--port", str(port), "--db", db_url]
    argv += extra
    env = {"M365VAULT_ADMIN_USER": ADMIN_USER, "M365VAULT_ADMIN_PASSWORD": ADMIN_PASSWORD}
    proc = ChildProcess(argv, workdir / "server.log", env=env)
    scheme = "http" if "--http" in extra else "https"
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/health", timeout=60)
    except BaseException:
        proc.terminate()
        raise
    return proc, base


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The real server over HTTPS, on SQLite and on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(f"server-{request.param}")
    with temporary_database() if request.param == "postgresql" else _sqlite(workdir) as db_url:
        proc, base = start_server(workdir, db_url)
        engine = make_engine(db_url)
        try:
            yield RunningServer(base, db_url, workdir / "data", proc, engine)
        finally:
            engine.dispose()
            code = proc.terminate()
            assert code == 0, f"server exited with {code}:\n{proc.log_path.read_text()[-5000:]}"


class _sqlite:
    def __init__(self, workdir: Path) -> None:
        self.url = f"sqlite:///{workdir / 'config.db'}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="session")
def admin_tokens(server: RunningServer) -> dict[str, Any]:
    return server.login()


@pytest.fixture
def api(server: RunningServer, admin_tokens: dict[str, Any]) -> Iterator[httpx.Client]:
    """A client logged in as the administrator."""
    with server.client(admin_tokens["access_token"]) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
