"""Fixtures named after what they give. Each test gets its own data dir and SQLite file."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediagen import server
from mediagen.config import Settings
from mediagen.db.engine import Database
from mediagen.errors import ProviderError
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.providers import PROVIDERS, configured_catalog, read_provider_settings
from mediagen.providers.local import encode_mp4
from mediagen.providers.local_art import render_png
from mediagen.studio import Studio
from mediagen.worker.loop import Worker
from mediagen.worker.sweep import tick

from .support.fakes import ScriptedProvider, scripted_entry
from .support.postgres import Cluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's own MEDIAGEN_* variables and .env out of the tests."""
    for name in list(os.environ):
        if name.startswith("MEDIAGEN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the whole test session."""
    with Cluster.running() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def migrated_template(postgres: Cluster) -> str:
    """A database at the newest revision: each test's database is a copy of it (a file copy on
    the server, much faster than running the migrations again)."""
    name = postgres.create_database()
    database = Database(postgres.url(name))
    database.upgrade()
    database.dispose()
    return name


DATABASES = ["sqlite", "postgresql"]


@contextlib.contextmanager
def fresh_database(request: pytest.FixtureRequest, kind: str) -> Iterator[str | None]:
    """The URL of a database of ``kind`` for one test (or one module's scenario): None for the
    data dir's SQLite file, or a fresh migrated database on the session's PostgreSQL server,
    dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    name = cluster.create_database(template=request.getfixturevalue("migrated_template"))
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``one_database`` run on SQLite only: what they check does not depend on the
    database, and the database-bound code under them runs on both in its own tests."""
    on_postgresql = [
        item
        for item in items
        if item.get_closest_marker("one_database")
        and getattr(getattr(item, "callspec", None), "params", {}).get("database_url") == "postgresql"
    ]
    if on_postgresql:
        config.hook.pytest_deselected(items=on_postgresql)
        items[:] = [item for item in items if item not in on_postgresql]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database a test's studio uses: the data dir's SQLite file (None), or a fresh database
    of its own on the session's PostgreSQL server."""
    with fresh_database(request, request.param) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_base_url="http://127.0.0.1:9/cdn",
        poll_interval_s=0.05,
        outbound_allow=["127.0.0.1/32"],  # the loopback fakes stand in for public hosts
    )


@pytest.fixture
def studio(settings: Settings) -> Iterator[Studio]:
    opened = Studio.open(settings)
    yield opened
    opened.close()


def stored_files(studio: Studio) -> list[str]:
    """Every object in local storage, as keys (temp files included, so leaks show)."""
    root = studio.settings.media_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def run_to_end(studio: Studio, job_id: str, limit_s: float = 30) -> Any:
    """Tick a worker until the job ends; the job as it ended."""
    deadline = time.monotonic() + limit_s
    while not JobStatus(queries.get_job(studio, job_id).status).is_final:
        assert time.monotonic() < deadline, f"job {job_id} did not end in {limit_s} s"
        tick(studio, worker_id="w")
        time.sleep(0.05)
    return queries.get_job(studio, job_id)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[tuple[Studio, ScriptedProvider]]:
    """A studio whose registry also holds the scripted provider."""
    provider = ScriptedProvider()
    monkeypatch.setitem(PROVIDERS, "scripted", scripted_entry(provider))
    opened = Studio.open(settings)
    yield opened, provider
    opened.close()


@pytest.fixture(scope="session")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    target = tmp_path_factory.mktemp("media") / "small.mp4"
    assert encode_mp4(target, "fixture clip", 1, 160, 96, 12)
    return target.read_bytes()


@pytest.fixture(scope="session")
def small_png() -> bytes:
    return render_png("fixture picture", 1, 256, 256)


@pytest.fixture
def app(studio: Studio) -> Iterator[Any]:
    """The whole dashboard under Streamlit's AppTest, on this test's studio."""
    from streamlit.testing.v1 import AppTest

    server.use(studio)
    test = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    test.run()
    assert not test.exception, test.exception
    yield test
    server.use(None)


@pytest.fixture
def scripted_failure(monkeypatch: pytest.MonkeyPatch, studio: Studio):
    """Make a failed image job in ``studio`` with the given reason, through the real use case."""
    provider = ScriptedProvider()
    monkeypatch.setitem(PROVIDERS, "scripted", scripted_entry(provider))
    studio.provider_settings = read_provider_settings()
    studio.catalog = configured_catalog(studio.provider_settings)

    def fail(reason: str):
        provider.image_answer = ProviderError(reason, code="content_policy")
        return actions.generate_image(studio, "broken", model="scripted-image")

    return fail


def housekeeping(studio: Studio, worker_id: str = "w") -> Counter[str]:
    """One tick of a worker (as its schedule runs it): what its housekeeping did."""
    return Worker(studio, worker_id).run_tick().housekeeping
