"""Engine and sessions, SQLite tuned for several writers, a bounded pool of connections to a
database server (and what happens while that server is out of reach), Alembic upgrades, and what
the database's own failures (a damaged or missing file, a full disk) read as for people.

Connections to a server (PostgreSQL) are the scarce resource when the studio scales out: each
process holds at most ``Pool.size + Pool.overflow`` of them, for the length of one short
transaction at a time (no connection is held while a provider, storage or a person is waited on),
and keeps no session state across transactions (no session advisory locks, no LISTEN, no
prepared statements unless asked for), so a transaction-mode pooler such as PgBouncer may sit in
between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..errors import DatabaseError, DatabaseMissing, DatabaseUnavailable

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
# A server that does not answer at all (a host gone from the network) fails a connection attempt
# after this long, instead of holding the thread for the operating system's minutes.
CONNECT_TIMEOUT_S = 10
# PostgreSQL keeps the first 63 bytes of an application_name.
APPLICATION_NAME_MAX = 63


@dataclass(frozen=True)
class Pool:
    """How many connections one process may hold to a database server, and how long a thread
    waits for a free one (``MEDIAGEN_DB_*``; the README's "Scaling out" sizes them)."""

    size: int = 5
    overflow: int = 5
    timeout_s: float = 30.0
    prepared_statements: bool = False


def make_engine(url: str, *, pool: Pool | None = None, application_name: str | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _server_engine(parsed, pool or Pool(), application_name)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _tune_sqlite(engine)
    return engine


def _server_engine(url: URL, pool: Pool, application_name: str | None) -> Engine:
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if application_name:  # pg_stat_activity shows which process holds which connection
        connect_args["application_name"] = application_name[:APPLICATION_NAME_MAX]
    if url.get_driver_name() == "psycopg" and not pool.prepared_statements:
        # psycopg prepares a statement on the server once a connection has run it 5 times; behind
        # a transaction-mode pooler the next transaction may run on a server connection that never
        # saw it ("prepared statement does not exist").
        connect_args["prepare_threshold"] = None
    return create_engine(
        url,
        pool_size=pool.size,
        max_overflow=pool.overflow,
        pool_timeout=pool.timeout_s,
        # A connection the server dropped (a restart, an idle timeout) is found out and replaced
        # when it is taken from the pool, before a transaction runs on it.
        pool_pre_ping=True,
        connect_args=connect_args,
    )


class Reachability:
    """Whether the database server answers, as this process last saw it.

    The first failure of an outage is logged once, as one warning naming the database and the
    reason; every failure meanwhile raises ``DatabaseUnavailable`` and logs nothing more, so
    callers need not log it either; the first new connection afterwards logs that it is back and
    after how long. ``outages`` counts them, so a worker can tell it has to take stock.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.outages = 0
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def lost(self, reason: str) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self.outages += 1
        log.warning("the database %s is out of reach (%s); work waits and goes on when it answers", self.where, reason)

    def answered(self) -> None:
        if self._down_since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            away_s, self._down_since = time.monotonic() - self._down_since, None
        log.info("the database %s answers again, after %.1f s out of reach", self.where, away_s)


# SQLSTATE classes and codes that say the server cannot be used now, not that a statement is
# wrong: connection exceptions (08…), the server shutting down or starting up (57P01-57P03), and
# no connection slot free (53300). libpq's own failures (refused, cut) carry no SQLSTATE.
_UNREACHABLE_CODES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _server_unreachable(context: ExceptionContext) -> bool:
    if context.is_disconnect:
        return True
    import psycopg  # the driver of every server URL; imported only once something failed

    original = context.original_exception
    if not isinstance(original, psycopg.OperationalError):
        return False
    return original.sqlstate is None or original.sqlstate.startswith("08") or original.sqlstate in _UNREACHABLE_CODES


def _watch_server(engine: Engine, reachability: Reachability) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # The pool's own liveness check handles a dropped connection by opening another.
        if context.is_pre_ping or not _server_unreachable(context):
            return
        reason = _first_line(context.original_exception)
        reachability.lost(reason)
        raise DatabaseUnavailable(
            f"the database {reachability.where} is out of reach ({reason}); try again shortly"
        ) from context.sqlalchemy_exception

    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_conn: Any, _record: Any) -> None:
        reachability.answered()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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

    def __init__(self, url: str, *, pool: Pool | None = None, application_name: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool=pool, application_name=application_name)
        self.reachability = Reachability(self.where)
        if not self.is_sqlite:
            _watch_server(self.engine, self.reachability)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_settings(cls, settings: Settings, *, application_name: str | None = None) -> Database:
        pool = Pool(
            settings.db_pool_size,
            settings.db_max_overflow,
            settings.db_pool_timeout_s,
            settings.db_prepared_statements,
        )
        return cls(settings.resolved_database_url, pool=pool, application_name=application_name)

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

    @property
    def where(self) -> str:
        """The database as people know it: its file, or its URL without the password."""
        return where(self.engine.url)

    def upgrade(self, revision: str = "head", *, earlier_media: Path | None = None) -> str | None:
        """Bring the schema to ``revision``; what changed, in a sentence (also logged at INFO),
        or None when it was there already. With ``earlier_media``, a SQLite file missing beside
        media of earlier jobs is refused (``refuse_lost``) instead of made anew. The database's
        own failures raise ``DatabaseError`` naming it (``explain``)."""
        try:
            if earlier_media is not None:
                refuse_lost(self.engine.url, earlier_media)
            return upgrade(self.engine, revision)
        except sa_exc.DBAPIError as exc:
            explained = explain(exc, self.engine.url)
            if explained is None:
                raise
            raise explained from exc

    def revision(self) -> str | None:
        """The revision the schema is at (None before the first upgrade)."""
        with _alembic_quiet(), self.engine.connect() as conn:
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; cheap when it is already there. Alembic's own lines stay
    out of the log: one line says what changed, when something did, and is returned."""
    applied: list[Any] = []  # alembic.runtime.migration.MigrationInfo, one per revision run
    with _alembic_quiet():
        from alembic import command  # its first import logs a line per plugin

        cfg = alembic_config(engine)
        cfg.attributes["on_version_apply"] = lambda *, step, **_: applied.append(step)
        command.upgrade(cfg, revision)
    if not applied:
        return None
    before, after = applied[0].source_revision_ids, applied[-1].destination_revision_ids
    if before:
        note = f"upgraded the database {where(engine.url)} from revision {before[0]} to {after[0]}"
    else:
        note = f"created the database {where(engine.url)} at revision {after[0]}"
    log.info("%s", note)
    return note


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's INFO lines ("Context impl SQLiteImpl.", "Will assume transactional DDL.") say
    nothing an operator needs; someone who set a level for Alembic on purpose keeps it."""
    alembic_log = logging.getLogger("alembic")
    chosen = alembic_log.level
    if chosen == logging.NOTSET:
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(chosen)


def where(url: URL | str) -> str:
    """The database as people know it: its file (SQLite), or its URL without the password."""
    parsed = make_url(url) if isinstance(url, str) else url
    file = sqlite_file(parsed)
    return str(file) if file else parsed.render_as_string(hide_password=True)


def sqlite_file(url: URL | str) -> Path | None:
    """The file of a SQLite database; None for one in memory or on a server."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def refuse_lost(url: URL | str, earlier_media: Path) -> None:
    """Refuse to make a new SQLite file where one has been: beside files in ``earlier_media``
    (the media of earlier jobs) or beside its own write-ahead log. It was deleted or moved (a
    running app may go on using the deleted file, unseen); a new one would quietly start an empty
    studio whose jobs that app never sees. ``python -m mediagen db create`` makes one on purpose."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        trace = f"its write-ahead log {wal} is still there"
    elif earlier_media.is_dir() and any(p.is_file() for p in earlier_media.rglob("*")):
        trace = f"{earlier_media} holds media of earlier jobs"
    else:
        return  # a new data dir: the database is made as usual
    raise DatabaseMissing(
        f"the database {path} is missing, but {trace}: it was deleted or moved. Restore it (from a backup), "
        "or set MEDIAGEN_DATA_DIR (or MEDIAGEN_DATABASE_URL) to where it is; to start a new, empty "
        "database here on purpose, run: python -m mediagen db create"
    )


# SQLite's primary result codes for a database file its surroundings broke (not a query we got
# wrong), and what to do about each.
_DAMAGED = (
    "is not a SQLite database, or is damaged: restore it from a backup, or set MEDIAGEN_DATA_DIR to another folder"
)
_SQLITE_TROUBLE = {
    5: f"stayed locked by another process for {SQLITE_BUSY_TIMEOUT_MS // 1000} s; try again",  # SQLITE_BUSY
    8: "is read-only here: this user needs write access to it and to its folder",  # SQLITE_READONLY
    10: "could not be read or written (a disk I/O error); check the disk it is on",  # SQLITE_IOERR
    11: _DAMAGED,  # SQLITE_CORRUPT
    13: "cannot grow: the disk it is on is full; free some space and try again",  # SQLITE_FULL
    14: "cannot be opened: check that its folder exists and this user may write there",  # SQLITE_CANTOPEN
    26: _DAMAGED,  # SQLITE_NOTADB
}


def explain(exc: BaseException, url: URL | str) -> DatabaseError | None:
    """What a failure of the database itself (a damaged file, a full disk, a server out of
    reach) reads as for people, naming the database; None for anything else, which is a bug."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        problem = _SQLITE_TROUBLE.get(code & 0xFF)  # the low byte: SQLITE_IOERR_WRITE is an SQLITE_IOERR
        return DatabaseError(f"the database {where(url)} {problem}") if problem else None
    if isinstance(exc, sa_exc.OperationalError):  # a database server: down, out of reach, out of space
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        return DatabaseError(f"the database {where(url)} could not be used: {reason}")
    return None


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def dialect_insert(session: Session) -> Any:
    """``insert`` of the session's dialect, which has ``on_conflict_do_update`` / ``_do_nothing``
    (PostgreSQL and SQLite spell upserts the same way)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
