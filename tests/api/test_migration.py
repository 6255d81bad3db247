"""The configuration migration creates exactly the tables the models describe, on both databases,
and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from m365vault.db import migrate, models
from m365vault.db.engine import make_engine


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), models.Base.metadata) == []
        assert {"jobs", "restore_sessions", "api_tokens"} <= set(inspect(engine).get_table_names())
        cfg = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001_base")
        assert "jobs" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
