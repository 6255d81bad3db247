"""SQLAlchemy models and Alembic migrations for the configuration and catalog database.

SQLite (WAL) in the data dir by default, PostgreSQL for scale-out. Migrations run at start.
"""
