"""The database layer against real SQLite files, and a PostgreSQL server going away."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, text
from sqlalchemy import exc as sa_exc

from mediagen.db.engine import Database, Pool, explain, masked_url
from mediagen.db.tables import Base, Job
from mediagen.errors import DatabaseUnavailable

from ..support.postgres import Cluster


def test_upgrade_creates_the_schema_and_is_repeatable(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    db.upgrade()
    assert {"jobs", "assets", "job_events", "alembic_version"} <= set(inspect(db.engine).get_table_names())


def _in_the_models(name: str | None, kind: str, _parent: object) -> bool:
    """The full-text indexes of prompts live outside the models on purpose: SQLite's FTS5 table
    (and its shadow tables), PostgreSQL's tsvector column and its GIN index."""
    prompt_words = name in ("prompt_words", "ix_jobs_prompt_words")
    return not (prompt_words or (kind == "table" and (name or "").startswith("jobs_fts")))


def test_migrations_match_the_models(settings) -> None:
    db = Database(settings.resolved_database_url)
    db.upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _in_the_models})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    with db.engine.connect() as conn:
        index = "SELECT count(*) FROM jobs_fts" if db.is_sqlite else "SELECT count(prompt_words) FROM jobs"
        assert conn.exec_driver_sql(index).scalar() == 0
    db.dispose()


def test_sqlite_runs_in_wal_with_a_busy_timeout(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_concurrent_read_then_write_transactions_do_not_lock_out(tmp_path) -> None:
    """Deferred read-then-write transactions fail with 'database is locked' at once under
    contention; write sessions begin IMMEDIATE and wait their turn instead."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    with db.write() as session:
        session.add(
            Job(
                id="counter",
                kind="video",
                status="queued",
                provider="local",
                model="m",
                prompt="p",
                params={},
            )
        )
    errors: list[Exception] = []

    def bump() -> None:
        for _ in range(50):
            try:
                with db.write() as session:
                    job = session.get(Job, "counter")
                    job.attempt += 1
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert session.get(Job, "counter").attempt == 200


def test_write_rolls_back_on_error(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    try:
        with db.write() as session:
            session.add(
                Job(
                    id="half",
                    kind="image",
                    status="queued",
                    provider="local",
                    model="m",
                    prompt="p",
                    params={},
                )
            )
            session.flush()
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    with db.engine.connect() as conn:
        assert conn.execute(text("select count(*) from jobs")).scalar() == 0


def test_password_is_masked() -> None:
    assert masked_url("postgresql://app:s3cret@db:5432/mediagen") == "postgresql://app:***@db:5432/mediagen"


def test_an_upgrade_from_empty_is_one_transaction(tmp_path) -> None:
    """Processes starting together queue on the write lock for the whole upgrade: were it released
    between revisions (Alembic's default on SQLite), a second starter would run the next revision
    too and fail with "table ... already exists"."""
    from sqlalchemy import event

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    commits = []
    event.listen(db.engine, "commit", lambda conn: commits.append(conn))
    db.upgrade()
    assert len(commits) == 1
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0010"


def test_a_full_database_reads_as_one_sentence_naming_it(tmp_path) -> None:
    """SQLITE_FULL, as a full disk gives it: here the file may not grow past the pages it has."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    db.dispose()
    event.listen(db.engine, "connect", lambda conn, _: conn.execute("PRAGMA max_page_count = 1"))
    with pytest.raises(sa_exc.OperationalError) as full, db.write() as session:
        session.add_all(
            Job(kind="image", status="queued", provider="local", model="m", prompt="p" * 4000, params={})
            for _ in range(50)
        )
    explained = explain(full.value, db.url)
    assert explained is not None and explained.exit_code == 1 and explained.http_status == 503
    assert str(explained) == (
        f"the database {tmp_path / 'x.db'} cannot grow: the disk it is on is full; free some space and try again"
    )
    assert explain(sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE")), db.url) is None  # a bug, not the disk


def test_upgrades_log_one_line_when_they_change_something_and_nothing_otherwise(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert db.upgrade("0007") == f"created the database {tmp_path / 'x.db'} at revision 0007"
    assert db.upgrade() == f"upgraded the database {tmp_path / 'x.db'} from revision 0007 to 0010"
    assert db.upgrade() is None and db.revision() == "0010"
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("mediagen.db.engine", f"created the database {tmp_path / 'x.db'} at revision 0007"),
        ("mediagen.db.engine", f"upgraded the database {tmp_path / 'x.db'} from revision 0007 to 0010"),
    ]


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of this module's own, to stop and start without disturbing other tests."""
    with Cluster.running() as cluster:
        yield cluster


def test_a_server_outage_is_refused_plainly_logged_once_and_the_pool_reconnects_by_itself(own_cluster, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mediagen.db.engine")
    db = Database(own_cluster.url(), pool=Pool(size=2, overflow=0))
    try:
        with db.write() as session:
            session.execute(text("SET LOCAL synchronous_commit = on"))  # the test cluster's default is off
            session.execute(text("CREATE TABLE IF NOT EXISTS kept (n int)"))
        # A transaction in flight when the server goes (every connection cut, as in a crash).
        with pytest.raises(DatabaseUnavailable) as cut, db.write() as session:
            session.execute(text("INSERT INTO kept VALUES (1)"))
            own_cluster.stop("immediate")
            session.execute(text("INSERT INTO kept VALUES (2)"))
        assert (cut.value.http_status, cut.value.exit_code, cut.value.code) == (503, 1, "database_unavailable")
        assert str(cut.value).startswith(f"the database {db.where} is out of reach (")
        for _ in range(5):  # everything meanwhile is refused the same way, and logs nothing more
            with pytest.raises(DatabaseUnavailable, match="out of reach"), db.read() as session:
                session.execute(text("SELECT 1"))
        assert db.reachability.down and db.reachability.outages == 1
        own_cluster.start()
        with db.read() as session:  # no restart of ours: the pool replaces the dead connections
            assert session.execute(text("SELECT count(*) FROM kept")).scalar() == 0  # the cut one rolled back
    finally:
        db.dispose()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "mediagen.db.engine"]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert said[0][1].startswith(f"the database {db.where} is out of reach (")
    assert said[1][1].startswith(f"the database {db.where} answers again, after ")
    assert not db.reachability.down
