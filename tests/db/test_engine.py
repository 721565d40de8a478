"""The database layer against real SQLite files."""

from __future__ import annotations

import logging
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, text
from sqlalchemy import exc as sa_exc

from mediagen.db.engine import Database, explain, masked_url
from mediagen.db.tables import Base, Job


def test_upgrade_creates_the_schema_and_is_repeatable(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    db.upgrade()
    assert {"jobs", "assets", "job_events", "alembic_version"} <= set(inspect(db.engine).get_table_names())


def test_migrations_match_the_models(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        # The FTS5 index of prompts (and its shadow tables) lives outside the models on purpose.
        context = MigrationContext.configure(
            conn,
            opts={"include_name": lambda name, kind, _parent: not (kind == "table" and name.startswith("jobs_fts"))},
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM jobs_fts").scalar() == 0


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
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0008"


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
    assert db.upgrade() == f"upgraded the database {tmp_path / 'x.db'} from revision 0007 to 0008"
    assert db.upgrade() is None and db.revision() == "0008"
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("mediagen.db.engine", f"created the database {tmp_path / 'x.db'} at revision 0007"),
        ("mediagen.db.engine", f"upgraded the database {tmp_path / 'x.db'} from revision 0007 to 0008"),
    ]
