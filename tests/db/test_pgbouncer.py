"""The studio through PgBouncer in transaction mode, as a scaled-out deployment may run it: each
transaction may run on another server connection, so nothing may live in a server session from
one transaction to the next (prepared statements, session advisory locks, LISTEN)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from mediagen.config import Settings
from mediagen.db.engine import Database, Pool
from mediagen.db.tables import Job, WorkerHeartbeat
from mediagen.jobs import actions, browse, queries
from mediagen.jobs.status import JobStatus
from mediagen.studio import Studio

from ..support.pgbouncer import pgbouncer
from ..support.postgres import Cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def through_pgbouncer(postgres: Cluster, migrated_template: str) -> Iterator[str]:
    """A fresh migrated database on the session's cluster, reached through PgBouncer: its URL."""
    name = postgres.create_database(template=migrated_template)
    try:
        with pgbouncer(postgres) as port:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"
    finally:
        postgres.drop_database(name)


@pytest.mark.parametrize("prepared", [False, True], ids=["default", "prepared-statements-on"])
def test_a_statement_run_often_still_works_on_another_server_connection(through_pgbouncer, prepared) -> None:
    """psycopg prepares a statement on the server once a connection has run it five times in
    committed transactions (a worker's claims and writes). Behind a transaction-mode pooler the next
    transaction may get another server connection, which never saw it: with prepared statements on
    (MEDIAGEN_DB_PREPARED_STATEMENTS) that fails, so they are off by default."""
    ours = Database(through_pgbouncer, pool=Pool(prepared_statements=prepared))
    another_client = Database(through_pgbouncer)
    queued = select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)

    def count() -> int | None:
        with ours.write() as session:
            return session.scalar(queued)

    try:
        for _ in range(6):
            assert count() == 0
        # PgBouncer hands out the server connection released last: another client's open transaction
        # takes the one our statements ran on, so our next transaction runs on another.
        with another_client.write() as session:
            session.execute(select(func.count()).select_from(Job))
            if prepared:
                with pytest.raises(sa_exc.DBAPIError, match='prepared statement "_pg3_0" does not exist'):
                    count()
            else:
                assert count() == 0
    finally:
        ours.dispose()
        another_client.dispose()


@pytest.mark.e2e
def test_a_worker_and_the_app_core_work_through_pgbouncer_in_transaction_mode(through_pgbouncer, tmp_path) -> None:
    data_dir = tmp_path / "data"
    studio = Studio.open(
        Settings(data_dir=data_dir, database_url=through_pgbouncer, public_base_url="http://127.0.0.1:9/cdn"),
        role="app",
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEDIAGEN_")},
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_DATABASE_URL": through_pgbouncer,
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        "MEDIAGEN_POLL_INTERVAL_S": "0.1",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "mediagen", "worker"], env=env, cwd=tmp_path, stderr=log)
    try:
        images = [actions.generate_image(studio, f"harbour {i}", params={"size": "256x256"}) for i in range(3)]
        videos = [actions.submit_video(studio, f"tide {i}", params={"duration": 1, "size": "128x72"}) for i in range(4)]
        deadline = time.monotonic() + 90
        while not all(JobStatus(queries.get_job(studio, v.id).status).is_final for v in videos):
            assert time.monotonic() < deadline, "the worker did not finish the videos through PgBouncer"
            time.sleep(0.1)  # the same statements, again and again, as a page that follows progress
        finished = [queries.get_job(studio, job.id) for job in images + videos]
        assert [(job.status, len(job.assets)) for job in finished] == [(JobStatus.SUCCEEDED, 1)] * 7
        page = browse.page_of_jobs(studio, browse.JobFilters(kinds=["video"]))
        assert sorted(job.id for job in page.jobs) == sorted(v.id for v in videos)
        with studio.db.read() as session:
            beat = session.scalars(select(WorkerHeartbeat)).one()
        assert beat.ticks >= 1 and beat.last_error is None
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0
        studio.close()
    log_text = log_path.read_text()
    assert " ERROR " not in log_text and "Traceback" not in log_text, log_text
