"""A ``python -m mediagen worker`` process on PostgreSQL, as scaled out: it holds at most its pool's
connections however many polls it has in flight, holds none in a transaction while a provider is
waited on, and rides out the server going away under load: it reconnects by itself, loses no job,
and logs one line when the outage starts and one when it ends (no traceback per tick).

Each test runs a fake OpenAI provider on loopback and a real worker process against a database of
its own; the restart test has a cluster of its own, so stopping it disturbs no other test."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from mediagen.config import Settings
from mediagen.db.engine import Database
from mediagen.db.tables import JobEvent
from mediagen.jobs import actions, queries
from mediagen.jobs.status import FINAL_STATUSES, JobStatus
from mediagen.studio import Studio

from ..support.fake_providers import FakeProviders
from ..support.postgres import Cluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
POLL = "openai.videos.get"


@dataclass
class Setup:
    url: str
    data_dir: Path
    fake: FakeProviders


@contextlib.contextmanager
def _setup(cluster: Cluster, template: str | None, tmp_path: Path) -> Iterator[Setup]:
    name = cluster.create_database(template=template)
    if template is None:
        database = Database(cluster.url(name))
        database.upgrade()
        database.dispose()
    try:
        with FakeProviders() as fake:
            yield Setup(cluster.url(name), tmp_path / "data", fake)
    finally:
        cluster.drop_database(name)


def _studio(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> Studio:
    """The app's side: submits jobs and reads them, on the same database as the worker."""
    monkeypatch.setenv("OPENAI_API_KEY", setup.fake.OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", setup.fake.openai_base)
    settings = Settings(
        data_dir=setup.data_dir,
        database_url=setup.url,
        public_base_url="http://127.0.0.1:9/cdn",
        outbound_allow=["127.0.0.1/32"],
    )
    return Studio.open(settings, role="app")


@contextlib.contextmanager
def _worker(setup: Setup, log_path: Path, **settings: Any) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGEN_", "OPENAI_"))},
        "PYTHONPATH": str(ROOT),
        "OPENAI_API_KEY": setup.fake.OPENAI_KEY,
        "OPENAI_BASE_URL": setup.fake.openai_base,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',
        "MEDIAGEN_DATA_DIR": str(setup.data_dir),
        "MEDIAGEN_DATABASE_URL": setup.url,
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        **{f"MEDIAGEN_{k.upper()}": str(v) for k, v in settings.items()},
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mediagen", "worker"], env=env, stderr=log, cwd=log_path.parent)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()


def _wait_until(what: str, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.1)


def _all_final(studio: Studio, job_ids: list[str]) -> bool:
    return all(JobStatus(queries.get_job(studio, job_id, story=False).status).is_final for job_id in job_ids)


@dataclass
class Sample:
    connections: int
    oldest_transaction_s: float


class ConnectionWatch:
    """Samples pg_stat_activity every few milliseconds: the worker's connections (by the
    application_name each process gives its own) and how long its oldest open transaction is."""

    def __init__(self, cluster: Cluster, database: str) -> None:
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._conninfo = f"host=127.0.0.1 port={cluster.port} user=postgres dbname={database}"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            while not self._stop.wait(0.005):
                row = conn.execute(
                    "SELECT count(*), coalesce(max(extract(epoch FROM now() - xact_start)), 0) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'mediagen-worker-%' AND datname = current_database()"
                ).fetchone()
                assert row is not None
                self.samples.append(Sample(int(row[0]), float(row[1])))


def test_a_worker_holds_at_most_its_pool_and_no_transaction_while_a_provider_answers(
    postgres: Cluster, migrated_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 polls in flight, each answered after 1.5 s, over a pool of 2 + 1 connections: the worker
    never holds more than 3, never keeps a transaction open across a provider call (none lasts
    near 1.5 s), and every job still ends."""
    with _setup(postgres, migrated_template, tmp_path) as setup:
        setup.fake.route_delay_s[POLL] = 1.5
        setup.fake.openai_video_steps = [("in_progress", 50), ("completed", 100)]
        studio = _studio(setup, monkeypatch)
        try:
            jobs = [actions.submit_video(studio, f"harbour {i}", model="sora-2").id for i in range(32)]
            database = setup.url.rsplit("/", 1)[1]
            with (
                ConnectionWatch(postgres, database) as watch,
                _worker(setup, tmp_path / "worker.log", db_pool_size=2, db_max_overflow=1, poll_concurrency=16),
            ):
                _wait_until("every job to end", lambda: _all_final(studio, jobs), 120)
            assert {queries.get_job(studio, job_id).status for job_id in jobs} == {JobStatus.SUCCEEDED}
            assert len(setup.fake.calls(POLL)) >= 64  # polls in flight together, for seconds
            busiest = max(sample.connections for sample in watch.samples)
            longest = max(sample.oldest_transaction_s for sample in watch.samples)
            assert 1 <= busiest <= 3, busiest
            assert longest < 1.0, f"a transaction stayed open {longest:.2f} s: across a provider call"
        finally:
            studio.close()


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A cluster for this module's restarts alone."""
    with Cluster.running() as cluster:
        yield cluster


LINE = re.compile(r"^(\S+ \S+) (\w+) (\S+): (.*)$")


def _log_lines(text: str) -> list[tuple[float, str, str, str]]:
    """(time, level, logger, message) of each log line; traceback lines are not log lines."""
    lines = []
    for raw in text.splitlines():
        if match := LINE.match(raw):
            at = time.mktime(time.strptime(match[1].split(",")[0], "%Y-%m-%d %H:%M:%S"))
            lines.append((at + int(match[1].split(",")[1]) / 1000, match[2], match[3], match[4]))
    return lines


def test_postgresql_going_away_under_load_loses_nothing_and_logs_one_line_each_way(
    own_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is stopped (every connection cut, as in a crash) for 4 s while 40 jobs are in
    flight, then started again. The worker keeps its default 10-minute lease, so jobs whose step
    the outage cut off finish only because the worker hands them back when the server answers."""
    with _setup(own_cluster, None, tmp_path) as setup:
        setup.fake.route_delay_s[POLL] = 0.2
        setup.fake.openai_video_steps = [("in_progress", 10 * i) for i in range(1, 9)] + [("completed", 100)]
        studio = _studio(setup, monkeypatch)
        log_path = tmp_path / "worker.log"
        try:
            jobs = [actions.submit_video(studio, f"tide {i}", model="sora-2").id for i in range(40)]
            with _worker(setup, log_path, poll_interval_s=0.3):
                _wait_until("polls under way", lambda: len(setup.fake.calls(POLL)) >= 60, 60)
                own_cluster.stop("immediate")
                stopped_at = time.time()
                time.sleep(4)  # about 13 poll intervals without a database
                own_cluster.start()
                _wait_until("every job to end after the outage", lambda: _all_final(studio, jobs), 90)
            finished = [queries.get_job(studio, job_id) for job_id in jobs]
            with studio.db.read() as session:
                finals = session.scalars(
                    select(JobEvent.job_id).where(JobEvent.status.in_([s.value for s in FINAL_STATUSES]))
                ).all()
        finally:
            studio.close()

    assert [(job.status, len(job.assets)) for job in finished] == [(JobStatus.SUCCEEDED, 1)] * 40
    assert sorted(finals) == sorted(jobs)  # one final event each
    lines = _log_lines(log_path.read_text())
    gone = [line for line in lines if "is out of reach" in line[3]]
    back = [line for line in lines if "answers again" in line[3]]
    assert len(gone) == 1 and gone[0][1] == "WARNING" and gone[0][2] == "mediagen.db.engine", gone
    assert len(back) == 1 and re.search(r"after [3-9]\.\d s out of reach", back[0][3]), back
    # No tick, chore or heartbeat logs anything while the server is away: whatever was in flight
    # when it went may say so once, at the start; nothing repeats as the ticks go by.
    quiet_from = max(gone[0][0], stopped_at) + 1.0
    during = [line for line in lines if quiet_from <= line[0] < back[0][0] and line[1] in ("WARNING", "ERROR")]
    assert during == [], during
    assert not [
        line
        for line in lines
        if line[2] in ("mediagen.worker.loop", "mediagen.worker.housekeeping") and line[1] == "ERROR"
    ]
