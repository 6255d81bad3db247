"""Alembic environment: runs online against the connection handed in by db.migrate, or an
engine built from the configured URL (for the alembic command line)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from m365vault.db import models  # noqa: F401  (registers every table on Base.metadata)
from m365vault.db.base import Base
from m365vault.db.engine import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not configured"
    with make_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
