"""Alembic environment: the engine comes from mediagen (``config.attributes['engine']``)
or, when run by the ``alembic`` command, from the mediagen settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from mediagen.db.tables import Base

config = context.config
# The advisory lock every upgrade on PostgreSQL takes (any fixed number; this one spells "mgup").
UPGRADE_LOCK_KEY = 0x6D677570


def _engine():
    engine = config.attributes.get("engine")
    if engine is None:
        from mediagen.config import Settings
        from mediagen.db.engine import make_engine

        engine = make_engine(Settings().resolved_database_url)
    return engine


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        # Take the write lock up front (BEGIN IMMEDIATE on SQLite): processes starting together on
        # a fresh data dir then queue for it instead of failing with "database is locked".
        connection = connection.execution_options(write=True)
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            # One transaction for the whole upgrade. Alembic otherwise commits after each revision
            # on SQLite, releasing the lock between revisions: a second starter then ran the next
            # revision too and one of them failed with "table ... already exists".
            transactional_ddl=True,
            # mediagen.db.engine.upgrade counts the revisions run, for its one line in the log.
            on_version_apply=config.attributes.get("on_version_apply"),
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # PostgreSQL's counterpart of BEGIN IMMEDIATE above: processes starting together on a
                # new database queue here, and each reads the revision only once it holds the lock.
                # A transaction-level lock, so it ends with the upgrade (and works through PgBouncer).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `python -m mediagen db upgrade`")
run_migrations_online()
