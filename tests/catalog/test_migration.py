"""The catalog migration creates exactly the schema the table declarations describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from m365vault.db.base import Base
from m365vault.db.engine import make_engine
from m365vault.db.migrate import upgrade


def test_migration_matches_the_declared_catalog_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        catalog_diff = [d for d in diff if "catalog_" in repr(d)]
        assert catalog_diff == [], "\n".join(repr(d)[:160] for d in catalog_diff)
    finally:
        engine.dispose()
