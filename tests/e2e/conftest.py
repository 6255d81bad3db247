"""Fixtures of the end-to-end suite: the tenant emulator and the server as real processes (HTTPS
both ways), an organization pointing at the emulator and an EntireOrganization job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from m365vault.db.engine import make_engine, sqlite_url
from tests.support.product import (
    Emulator,
    Server,
    add_entire_org_job,
    organization_body,
    start_emulator,
    start_server,
)


@dataclass
class Product:
    emulator: Emulator
    server: Server
    api: httpx.Client
    org: dict[str, Any]
    job: dict[str, Any]
    db: Engine

    def action(self, action: str) -> httpx.Response:
        return self.api.post(f"/v3/Jobs/{self.job['id']}/action", json={action: None})

    def emulator_config(self, **config: Any) -> None:
        with self.emulator.admin() as admin:
            r = admin.post("/config", json=config)
            assert r.status_code == 200, r.text


def _product(workdir: Path) -> Iterator[Product]:
    emulator = start_emulator(workdir)
    try:
        server = start_server(workdir, emulator)
        try:
            with server.api() as api:
                r = api.post("/v3/Organizations", json=organization_body(emulator))
                assert r.status_code == 201, r.text
                org = r.json()
                job = add_entire_org_job(api, org["id"])
                db = make_engine(sqlite_url(server.data_dir))
                try:
                    yield Product(emulator, server, api, org, job, db)
                finally:
                    db.dispose()
        finally:
            code = server.stop()
            assert code in (0, -9), f"server exited with {code}:\n{server.process.log()[-3000:]}"
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """One emulator and one server for a module (tests in it run in order and build on each other)."""
    yield from _product(tmp_path_factory.mktemp("e2e"))
