"""Fixtures every suite may use. Suites add their own in their folder's conftest.py.

Nothing here is skipped silently: the services CI has (PostgreSQL, SeaweedFS) must be there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import temporary_database
from tests.support.seaweed import S3Server, start_seaweed


@pytest.fixture
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite (a file in tmp_path) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm365vault.db'}"
    else:
        with temporary_database() as url:
            yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server for this test worker."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        server.process.wait_http(f"{server.endpoint}/healthz", timeout=60)
        yield server
    finally:
        server.process.terminate()
