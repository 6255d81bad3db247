"""The shared test services answer: PostgreSQL databases come and go, SeaweedFS speaks S3."""

from __future__ import annotations

import sqlalchemy as sa

from m365vault.db.engine import make_engine
from m365vault.db.migrate import upgrade
from tests.support.seaweed import S3Server


def test_migrations_apply_on_both_databases(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        heads = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert heads, "alembic recorded no revision"
    engine.dispose()


def test_seaweed_answers_s3(s3_server: S3Server) -> None:
    import httpx

    # Unsigned requests are refused: the server enforces SigV4 auth.
    response = httpx.get(s3_server.endpoint + "/")
    assert response.status_code == 403
