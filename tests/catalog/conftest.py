"""Fixtures of the catalog suite: a migrated database (SQLite and PostgreSQL) and its writer/reader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from m365vault.catalog import CatalogReader, CatalogWriter, ObjectKind, ObjectRef
from m365vault.db.engine import make_engine
from m365vault.db.migrate import upgrade

ORG = "6b1f4bde-4cf1-4bb0-9d1c-2b1e9d7d0001"
REPO = "0a4c0c4e-8d4b-44a5-9a93-5e1f4c1b0002"
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def run(n: int) -> datetime:
    """The time of backup run number n (one a day)."""
    return T0 + timedelta(days=n)


@dataclass
class Catalog:
    engine: Engine
    writer: CatalogWriter
    reader: CatalogReader

    def mailbox(self, external_id: str = "user-1", seen_at: datetime = T0, **kwargs: object) -> ObjectRef:
        return self.writer.ensure_object(
            ORG,
            REPO,
            ObjectKind.MAILBOX,
            external_id,
            seen_at=seen_at,
            name=external_id,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def catalog(db_url: str) -> Iterator[Catalog]:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield Catalog(engine, CatalogWriter(engine), CatalogReader(engine))
    finally:
        engine.dispose()
