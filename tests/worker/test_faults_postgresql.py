"""Faults of the database server, on PostgreSQL: the server restarted under load (workers
reconnect, every job ends once, no traceback storm); a task the provider accepts while the server
is away; a worker's connection cut in the middle of storing a result; and three workers with two
app replicas (``streamlit run``, no worker inside) under a minute of mixed load through the apps'
HTTP API: every job ends once, with one asset set, one final event and one webhook id.

The kill, freeze and start-up faults of tests/worker/test_faults.py run on PostgreSQL too.
Every wait is a poll with a deadline on something observable; a sleep is only ever the length of
a fault (how long the server stays away), never an assertion.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from mediagen.db.tables import Job, WebhookAttempt, WebhookDelivery, WorkerHeartbeat
from mediagen.jobs import actions
from mediagen.jobs.status import JobStatus
from mediagen.studio import Studio

from ..conftest import fresh_database
from ..support.fake_providers import FakeProviders, Reply
from ..support.job_checks import (
    CONTENT,
    SMALL_CLIP,
    SMALL_IMAGE,
    as_utc,
    assert_every_job_ended_once,
    asset_rows,
    final_event_counts,
    job_row,
    job_write_held,
    unfinished,
    video_downloads,
)
from ..support.postgres import Cluster
from ..support.servers import app_server
from ..support.webhook_receiver import Receiver
from ..support.worker_processes import (
    DOWNLOAD_TIMEOUT_S,
    LEASE_S,
    OUT_OF_REACH,
    files_under,
    open_studio,
    problem_lines,
    provider_env,
    wait_for,
    worker_env,
    worker_pool,
)

pytestmark = pytest.mark.e2e


# -- a. a worker's connection cut while it writes a result ------------------------------------
def backends_waiting_for_a_lock(studio: Studio) -> list[int]:
    with studio.db.read() as session:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return list(session.scalars(text(query)))


def test_a_connection_cut_while_a_result_is_written_defers_the_job_and_fails_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The server ends a worker's connection in the middle of the transaction that stores a result
    (an administrator's pg_terminate_backend, a failover): the job must not end "failed" for it."""
    data_dir = tmp_path / "data"
    with fresh_database(request, "postgresql") as database_url, FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script(CONTENT, Reply(chunks=10, chunk_delay_s=0.1))  # time to take the job's row
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "cut me off", model="sora-2")
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            worker = start(env, "worker")
            wait_for(lambda: any(c.sent for c in video_downloads(fake)), 30, "the worker to start downloading")
            with job_write_held(studio, job.id):
                [blocked] = wait_for(lambda: backends_waiting_for_a_lock(studio), 30, "the result's write to wait")
                with studio.db.read() as session:
                    assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": blocked})

            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "the job to end")
            job = job_row(studio, job.id)
            # Was a BUG: the cut write was taken for a bug in the job, which was failed with
            # "internal error: DatabaseUnavailable" on a fresh connection a moment later (and its
            # stored files removed). The step is deferred now, and the job goes on.
            assert (job.status, job.error_code) == (JobStatus.SUCCEEDED, None)
            assert [e.status for e in job.events] == ["queued", "queued", "running", "succeeded"]
            [asset] = asset_rows(studio, job.id)
            assert files_under(data_dir / "media") == sorted([asset.key, asset.thumbnail_key])
            assert len(video_downloads(fake)) == 2 and len(fake.calls("openai.videos.create")) == 1
            steps = worker.outcomes()
            assert (steps["deferred"], steps["succeeded"], steps["failed"], steps["stale"]) == (1, 1, 0, 0), steps
            assert problem_lines(worker.log()) == [OUT_OF_REACH]
        finally:
            studio.close()


# -- b. the server restarted under load ---------------------------------------------------------
OUTAGE_S = 4.0  # longer than a lease: leases run out while the server is away
# How many polls each fake OpenAI task answers "in progress" (~3 s of polling at 0.1 s), so every
# job is still in flight when the server goes away.
IN_PROGRESS_POLLS = 30


@pytest.fixture(scope="module")
def restartable_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of this module's own: stopping the session's would cut the other
    tests' fixtures off too."""
    with Cluster.running() as cluster:
        yield cluster


@contextlib.contextmanager
def server_away(cluster: Cluster) -> Iterator[float]:
    """The server stopped at once for the block (every connection cut, as in a crash of the
    server), then started again, also when the block fails, so the next test finds it up. Yields
    when it went away."""
    cluster.stop("immediate")
    try:
        yield time.time()
    finally:
        cluster.start()


def durable_database(cluster: Cluster) -> str:
    """The URL of a new database on ``cluster`` whose commits survive the server's crash, as on a
    production server. The test clusters run with ``synchronous_commit`` off (fast, and harmless
    while the server never crashes); under it an immediate stop loses the last commits (a run lost
    a job's "submitted" mark, and the task was sent to the provider again)."""
    name = cluster.create_database()
    cluster.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    return cluster.url(name)


def heartbeats(studio: Studio) -> dict[int, WorkerHeartbeat]:
    """Each worker's heartbeat, by its pid (worker ids are ``host:pid:suffix``)."""
    with studio.db.read() as session:
        return {int(b.worker_id.split(":")[1]): b for b in session.scalars(select(WorkerHeartbeat))}


def test_postgresql_restarted_under_load_workers_reconnect_and_every_job_ends_once(
    tmp_path: Path, restartable_cluster: Cluster
) -> None:
    cluster = restartable_cluster
    data_dir = tmp_path / "data"
    database_url = durable_database(cluster)
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.openai_video_steps = [
            ("queued", 0),
            *[("in_progress", 1 + 3 * i) for i in range(IN_PROGRESS_POLLS)],
            ("completed", 100),
        ]
        studio = open_studio(fake, data_dir, database_url=database_url)  # creates the schema
        try:
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            workers = [start(env, f"worker-{n}") for n in (1, 2, 3)]
            created = {actions.submit_video(studio, f"fake {n}", model="sora-2").id: "sora-2" for n in range(24)}
            for n in range(6):
                params = {**SMALL_CLIP, "seed": n}
                created[actions.submit_video(studio, f"clip {n}", model="local-video", params=params).id] = "local"

            def statuses() -> Counter[tuple[str, str]]:
                with studio.db.read() as session:
                    jobs = list(session.scalars(select(Job)))
                return Counter((created[j.id], str(j.status)) for j in jobs if j.provider_job_id)

            # Every job submitted; the provider's tasks all in progress (the local clips may be done).
            wait_for(lambda: statuses()[("sora-2", "running")] == 24, 30, "every task to be running at the provider")
            at_stop = statuses()
            with server_away(cluster) as down_at:
                time.sleep(OUTAGE_S)  # the fault itself, not an assertion: the server stays away this long
            up_at = time.time()
            for n in range(6):
                created[actions.submit_video(studio, f"after the restart {n}", model="sora-2").id] = "sora-2"

            wait_for(lambda: not unfinished(studio), 60, "every job to end", every_s=0.2)
            assert at_stop[("sora-2", "running")] == 24 and at_stop.total() == 30, at_stop
            assert up_at - down_at > OUTAGE_S
            assert_every_job_ended_once(studio, data_dir, created, canceled=set())
            # Nothing was sent to the provider twice: polling again is safe, creating again is not.
            assert len(fake.calls("openai.videos.create")) == Counter(created.values())["sora-2"]
            assert all(w.alive for w in workers)
            # Each worker reconnected: it ticked after the restart, and cleanly.
            wait_for(
                lambda: all(
                    (b := heartbeats(studio).get(w.pid)) and b.last_tick_at > as_utc(up_at) and b.last_error is None
                    for w in workers
                ),
                10,
                "a clean heartbeat from every worker after the restart",
            )
            # No traceback storm: each worker said once that the server was gone and once that it
            # was back, and nothing else above INFO.
            logs = {w.name: w.log() for w in workers}
            noise = {name: problem_lines(text) for name, text in logs.items()}
            assert noise == {name: [OUT_OF_REACH] for name in logs}, "\n\n".join(
                f"{n}:\n{t[-3000:]}" for n, t in logs.items()
            )
            assert all(text.count("answers again, after") == 1 for text in logs.values())
        finally:
            studio.close()


def test_a_task_accepted_while_postgresql_is_away_is_recorded_once_it_is_back(
    tmp_path: Path, restartable_cluster: Cluster
) -> None:
    """The provider accepts a task while the database is away: its task id exists only in the
    worker's memory. Losing it would leave the job "submitted, outcome unknown" (to be retried
    by hand, paying twice)."""
    cluster = restartable_cluster
    data_dir = tmp_path / "data"
    database_url = durable_database(cluster)
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script("openai.videos.create", Reply(delay_s=1.0))  # answered once the server is gone
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "accepted in the dark", model="sora-2")
            # The write is retried for up to a lease: one well past the outage, however slowly the
            # server starts again on a busy machine.
            env = worker_env(fake, data_dir, database_url=database_url, lease_s=20, download_timeout_s=2)
            worker = start(env, "worker")
            [create] = wait_for(lambda: fake.calls("openai.videos.create"), 30, "the worker to send the task")
            with server_away(cluster) as down_at:
                wait_for(lambda: create.answered_at, 10, "the provider to accept the task")
                time.sleep(1.0)  # the fault itself: the server stays away a while after the answer
            up_at = time.time()
            assert down_at < create.answered_at < up_at

            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "the job to end")
            job = job_row(studio, job.id)
            assert (job.status, job.error_code) == (JobStatus.SUCCEEDED, None)
            # Was a BUG: the write of the task id failed, the job kept "submitted" without one and
            # the next claim failed it as submit_outcome_unknown. The write is now retried.
            assert len(fake.calls("openai.videos.create")) == 1
            notes = [e.message for e in job.events if (e.message or "").startswith("submitted to")]
            assert notes == [f"submitted to openai as task {job.provider_job_id}"]
            assert all(c.path.endswith(job.provider_job_id) for c in fake.calls("openai.videos.get"))
            assert problem_lines(worker.log()) == [OUT_OF_REACH]
            assert final_event_counts(studio)[job.id] == 1
        finally:
            studio.close()


# -- c. three workers and two app replicas under mixed load ------------------------------------
LOAD_FOR_S = 60.0
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret-32by!").decode()


@dataclass
class Load:
    """What a load run asked the apps for, and what they answered."""

    created: dict[str, str] = field(default_factory=dict)  # job id -> model
    canceled: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)


def _one_request(http: httpx.Client, bases: list[str], n: int, webhook_url: str, load: Load) -> None:
    """Request ``n`` of the mix, to app ``n % 2``: an image (the app makes it while the caller
    waits), a video on the fake OpenAI provider or a local one (both with a webhook), and every
    tenth time a cancel, through the other app, of a video submitted a moment ago."""
    base = bases[n % 2]
    if n % 10 == 5 and len(load.videos) >= 2:
        victim = load.videos[-2]
        answer = http.delete(f"{bases[(n + 1) % 2]}/api/videos/tasks/{victim}")
        if answer.status_code == 204:
            load.canceled.add(victim)
        elif answer.status_code != 409:  # 409: it had already ended, which the race allows
            load.errors.append(f"cancel {victim}: {answer.status_code} {answer.text[:300]}")
        return
    if n % 6 == 0:
        body: dict[str, Any] = {"prompt": f"image {n}", "model": "local-image", **SMALL_IMAGE}
        answer = http.post(f"{base}/api/images/generate", json=body)
        if answer.status_code == 200:
            load.created[answer.json()["job_id"]] = "local-image"
        else:
            load.errors.append(f"image {n}: {answer.status_code} {answer.text[:300]}")
        return
    if n % 3 == 1:
        body = {"prompt": f"fake {n}", "model": "sora-2"}
    else:
        body = {"prompt": f"clip {n}", "model": "local-video", **SMALL_CLIP, "seed": n}
    answer = http.post(f"{base}/api/videos/generate", json={**body, "webhook_url": webhook_url})
    if answer.status_code == 202:
        task_id = answer.json()["task_id"]
        load.created[task_id] = body["model"]
        load.videos.append(task_id)
    else:
        load.errors.append(f"video {n}: {answer.status_code} {answer.text[:300]}")


def test_three_workers_and_two_app_replicas_under_mixed_load_end_every_job_once(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"  # every process's storage, standing in for S3
    receiver = Receiver(WEBHOOK_SECRET)
    with contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        database_url = stack.enter_context(fresh_database(request, "postgresql"))
        fake = stack.enter_context(FakeProviders())
        start = stack.enter_context(worker_pool(tmp_path))
        for name, value in provider_env(fake).items():  # the apps are started with this environment
            monkeypatch.setenv(name, value)
        shared = {"database_url": database_url, "webhook_secret": WEBHOOK_SECRET}
        apps = []
        for n in (1, 2):
            (tmp_path / f"app-{n}").mkdir()
            app = app_server(tmp_path / f"app-{n}", data_dir=data_dir, worker_in_app="false", **shared)
            apps.append(stack.enter_context(app))
        workers = [start(worker_env(fake, data_dir, **shared), f"worker-{n}") for n in (1, 2, 3)]
        studio = open_studio(fake, data_dir, **shared)
        stack.callback(studio.close)

        load = Load()
        ends = time.monotonic() + LOAD_FOR_S
        with httpx.Client(timeout=60) as http:
            for n in itertools.count():
                if time.monotonic() > ends:
                    break
                _one_request(http, [app.base for app in apps], n, receiver.url, load)
                time.sleep(0.1)
        assert load.errors == []
        assert len(load.created) > 150 and len(load.canceled) > 10, (len(load.created), len(load.canceled))

        wait_for(lambda: not unfinished(studio), 60, "every job to end", every_s=0.2)
        rows = assert_every_job_ended_once(studio, data_dir, load.created, load.canceled)
        assert Counter(load.created.values()).keys() == {"local-image", "sora-2", "local-video"}
        # Each video success was applied by exactly one worker (the apps run none), and each worker did work.
        per_worker = {w.name: w.outcomes()["succeeded"] for w in workers}
        succeeded_videos = sum(1 for j in rows.values() if j.status == JobStatus.SUCCEEDED and j.kind == "video")
        assert sum(per_worker.values()) == succeeded_videos and all(per_worker.values()), per_worker
        # Every image was made by the app that was asked, while the caller waited.
        assert {rows[j].status for j, model in load.created.items() if model == "local-image"} == {"succeeded"}

        # One webhook per video, sent once, and the receiver got every id.
        def deliveries() -> list[WebhookDelivery]:
            with studio.db.read() as session:
                return list(session.scalars(select(WebhookDelivery)))

        wait_for(lambda: all(d.status != "pending" for d in deliveries()), 30, "every webhook to be sent")
        sent = deliveries()
        with studio.db.read() as session:
            attempts = session.scalar(select(func.count()).select_from(WebhookAttempt))
        videos = {j for j, model in load.created.items() if model != "local-image"}
        assert sorted(d.job_id for d in sent) == sorted(videos)
        assert {d.status for d in sent} == {"delivered"}
        assert {d.job_id: d.event for d in sent} == {j: f"job.{rows[j].status}" for j in videos}
        received = receiver.by_id()  # deduplicated by webhook-id, as receivers are told to
        assert {i: (m["type"], m["data"]["id"]) for i, m in received.items()} == {
            d.id: (d.event, d.job_id) for d in sent
        }
        assert len(receiver.ids()) == attempts == len(sent)  # each sent once: none needed a retry

        # Quiet logs: no traceback nor warning from any worker or app.
        for worker in workers:
            assert problem_lines(worker.log()) == [], f"{worker.name}:\n{worker.log()[-3000:]}"
        for n, app in enumerate(apps, 1):
            assert "Traceback" not in app.log_path.read_text(), f"app {n}:\n{app.log_path.read_text()[-3000:]}"
