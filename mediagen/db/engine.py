"""Engine and sessions, SQLite tuned for several writers, and Alembic upgrades."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves; pysqlite's implicit BEGIN is always DEFERRED.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads then writes fails with "database is locked" at once,
        # whatever busy_timeout says; IMMEDIATE takes the write lock up front and waits for it.
        options = conn.get_execution_options()
        if options.get("write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get("one_statement", False):
            conn.exec_driver_sql("BEGIN")
        # One statement reads one snapshot by itself: no BEGIN (and no round trip) for it.


class Database:
    """One engine per process plus the two kinds of session the core uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def peek(self) -> Iterator[Session]:
        """A session for a read of one statement (a status poll): on SQLite it skips the
        explicit BEGIN a multi-statement read needs for one snapshot."""
        with (
            self.engine.connect() as conn,
            Session(bind=conn.execution_options(one_statement=True), expire_on_commit=False) as session,
        ):
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    def upgrade(self) -> None:
        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; cheap when it is already there."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def dialect_insert(session: Session) -> Any:
    """``insert`` of the session's dialect, which has ``on_conflict_do_update`` / ``_do_nothing``
    (PostgreSQL and SQLite spell upserts the same way)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
