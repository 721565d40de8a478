"""Fault injection against real worker processes, each on SQLite and on PostgreSQL: kill -9
mid-download, between upload and commit and mid-poll with three workers running; a worker frozen
(SIGSTOP) past its lease; processes starting together on a fresh database. On SQLite only (nothing
in them depends on the database): a burst of local videos across three workers, one slow download
among other jobs, a tick that raises under a real BackgroundScheduler, and several pollers, a
submitter and the CLI on one SQLite file. Faults of the database server itself, and app replicas
under load, are in test_faults_postgresql.py.

Each test that takes ``database_url`` (or ``kind``) runs once per database: the data dir's SQLite
file, or a fresh database on the session's PostgreSQL server handed to every process as
``MEDIAGEN_DATABASE_URL``. Every wait is a poll with a deadline on something observable (the fake
provider's recorded requests, the database, the media folder, a worker's log); nothing sleeps
blindly and calls it an assertion. A test that demonstrated a bug, since fixed, says so in a
``Was a BUG`` comment.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediagen.db.tables import Asset, Job, WorkerHeartbeat
from mediagen.errors import Conflict
from mediagen.jobs import actions
from mediagen.jobs.status import JobStatus
from mediagen.worker import housekeeping, loop
from mediagen.worker.loop import Worker as InProcessWorker

from ..conftest import DATABASES, fresh_database
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
    lease_holder,
    lease_pid,
    outcomes_of,
    unfinished,
    video_downloads,
)
from ..support.postgres import Cluster
from ..support.worker_processes import (
    DOWNLOAD_TIMEOUT_S,
    LEASE_S,
    files_under,
    open_studio,
    problem_lines,
    spool_leftovers,
    tick_outcomes,
    wait_for,
    worker_env,
    worker_pool,
)

pytestmark = pytest.mark.e2e


# -- a. kill -9 mid-download, three workers running -----------------------------------------
@dataclass
class KillOutcome:
    data_dir: Path
    job: Job
    assets: list[Asset]
    final_events: int
    stored: list[str]
    spool_at_kill: list[str]
    spool_at_end: list[str]
    calls: dict[str, int]
    sent_at_kill: int
    mp4_size: int
    lease_pid_at_kill: int | None
    killed_pid: int
    attempt_at_kill: int
    killed_at: float
    extra: dict[str, Any] = field(default_factory=dict)


def _kill_mid_download(workdir: Path, database_url: str | None) -> KillOutcome:
    data_dir = workdir / "data"
    with FakeProviders() as fake, worker_pool(workdir) as start:
        # The first copy of the finished video trickles out over ~4 s; later copies are instant.
        fake.script(CONTENT, Reply(chunks=20, chunk_delay_s=0.2))
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "kill me while downloading", model="sora-2")
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            workers = [start(env, f"worker-{n}") for n in (1, 2, 3)]
            download = wait_for(
                lambda: next((c for c in video_downloads(fake) if c.sent > 0), None),
                30,
                "a worker to start downloading the video",
                every_s=0.005,
            )
            sent_at_kill = download.sent
            killed = lease_holder(workers, job_row(studio, job.id))
            # Read before the kill: a survivor's sweep may clear a dead process's folder at once.
            spool_at_kill = spool_leftovers(data_dir)
            killed.kill9()
            killed_at = time.time()
            at_kill = job_row(studio, job.id)

            survivors = [w for w in workers if w is not killed]
            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "a survivor to finish the job")
            wait_for(lambda: outcomes_of(survivors)["succeeded"], 10, "the survivor to log its copy")
            outcome = KillOutcome(
                data_dir=data_dir,
                job=job_row(studio, job.id),
                assets=asset_rows(studio, job.id),
                final_events=final_event_counts(studio)[job.id],
                stored=files_under(data_dir / "media"),
                spool_at_kill=spool_at_kill,
                spool_at_end=[],
                calls={
                    "create": len(fake.calls("openai.videos.create")),
                    "video": len(video_downloads(fake)),
                    "thumbnail": len([c for c in fake.calls(CONTENT) if c.query.get("variant") == "thumbnail"]),
                },
                sent_at_kill=sent_at_kill,
                mp4_size=len(fake.mp4),
                lease_pid_at_kill=lease_pid(at_kill),
                killed_pid=killed.pid,
                attempt_at_kill=at_kill.attempt,
                killed_at=killed_at,
                extra={
                    "status_at_kill": at_kill.status,
                    "assets_at_kill": len(at_kill.assets),
                    "survivors_outcomes": outcomes_of(survivors),
                    "survivors_alive": [w.alive for w in survivors],
                },
            )
            # Work goes on (one more job through the survivors, claimed more than a lease after the
            # kill), so a cleanup that runs on a later tick has had its chance before the spool is checked.
            follow_up = actions.submit_video(studio, "after the crash", model="sora-2")
            wait_for(lambda: JobStatus(job_row(studio, follow_up.id).status).is_final, 30, "the follow-up job")
            assert job_row(studio, follow_up.id).status == JobStatus.SUCCEEDED
            assert time.time() - killed_at > LEASE_S
            # The sweep is a chore of every tick, once per poll interval per machine; a worker
            # killed while sweeping holds it up for the sweep's lease at most.
            deadline = time.monotonic() + housekeeping.SWEEP_LEASE_S + 10
            while (left := spool_leftovers(data_dir)) and time.monotonic() < deadline:
                time.sleep(0.1)
            outcome.spool_at_end = left
            return outcome
        finally:
            studio.close()


@pytest.fixture(scope="module", params=DATABASES)
def killed_mid_download(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KillOutcome:
    with fresh_database(request, request.param) as database_url:
        return _kill_mid_download(tmp_path_factory.mktemp(f"kill-download-{request.param}"), database_url)


def test_kill9_mid_download_a_surviving_worker_finishes_the_job_exactly_once(killed_mid_download) -> None:
    run = killed_mid_download
    # The kill landed mid-download: the killed worker held the lease and part of the body had gone out.
    assert run.lease_pid_at_kill == run.killed_pid
    assert 0 < run.sent_at_kill < run.mp4_size
    assert (run.extra["status_at_kill"], run.extra["assets_at_kill"]) == (JobStatus.RUNNING, 0)

    job = run.job
    assert job.status == JobStatus.SUCCEEDED and job.error_code is None
    assert job.attempt > run.attempt_at_kill and job.lease_owner is None
    assert [e.status for e in job.events] == ["queued", "queued", "running", "succeeded"]
    assert run.final_events == 1
    assert job.finished_at > as_utc(run.killed_at)

    [asset] = run.assets
    assert (asset.index, asset.content_type, asset.bytes) == (0, "video/mp4", run.mp4_size)
    stored = run.data_dir / "media" / asset.key
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == asset.sha256
    # Exactly the job's video and its thumbnail: no duplicate, no half-written upload left over.
    assert run.stored == sorted([asset.key, asset.thumbnail_key])
    # The create call was never re-sent; the video was fetched twice (killed, then complete).
    assert run.calls == {"create": 1, "video": 2, "thumbnail": 1}
    assert run.extra["survivors_outcomes"]["succeeded"] == 1
    assert run.extra["survivors_alive"] == [True, True]


def test_kill9_mid_download_leaves_no_spool_files(killed_mid_download) -> None:
    run = killed_mid_download
    assert run.job.status == JobStatus.SUCCEEDED
    # Was a BUG until 9e48664 (now the spool sweep, a chore of the workers' ticks): the spool file is a
    # NamedTemporaryFile only its own process deletes, so a worker killed mid-download left
    # spool/ingest-*.part behind for good.
    assert run.spool_at_kill, "the killed worker had a spool file open (this test's premise)"
    assert run.spool_at_end == [], f"spool files left by the killed worker (present at the kill: {run.spool_at_kill})"


# -- a2. kill -9 after the upload, before the result is written ------------------------------
def test_kill9_between_upload_and_commit_then_cancel_leaves_no_orphan_files(tmp_path: Path, database_url) -> None:
    """A worker dies after copying a result into storage but before writing the asset rows; the
    job then ends without a result (here the user cancels it). Its files must not stay behind."""
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script(CONTENT, Reply(chunks=10, chunk_delay_s=0.1))  # time to take the job's write lock
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "die before the commit", model="sora-2")
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            first = start(env, "worker-1")
            wait_for(lambda: any(c.sent for c in video_downloads(fake)), 30, "worker 1 to start downloading")
            # Worker 1 copies the result into storage, then waits to write the job.
            with job_write_held(studio, job.id):
                media = data_dir / "media"
                uploaded = wait_for(
                    lambda: len(u := [f for f in files_under(media) if f.endswith((".mp4", ".thumb.webp"))]) == 2 and u,
                    30,
                    "worker 1 to upload the video and its thumbnail",
                )
                first.kill9()
            assert len(uploaded) == 2
            at_kill = job_row(studio, job.id)
            assert (at_kill.status, at_kill.assets) == (JobStatus.RUNNING, [])

            canceled = actions.cancel_job(studio, job.id)
            assert canceled.status == JobStatus.CANCELED and asset_rows(studio, job.id) == []
            # Was a BUG: keys are deterministic per job, so ending without a result now clears what a
            # dead worker uploaded under them (cancel here; failed and timed_out share the path).
            assert files_under(data_dir / "media") == [], "files of a canceled job, owned by no asset row"
            assert final_event_counts(studio)[job.id] == 1
        finally:
            studio.close()


# -- b. kill -9 mid-poll, three workers running ----------------------------------------------
def test_kill9_mid_poll_a_surviving_worker_finishes_the_job_exactly_once(tmp_path: Path, database_url) -> None:
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script("openai.videos.get", Reply(delay_s=4.0))  # the first poll hangs; the kill lands in it
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "kill me while polling", model="sora-2")
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            workers = [start(env, f"worker-{n}") for n in (1, 2, 3)]
            wait_for(lambda: fake.calls("openai.videos.get"), 30, "the first poll", every_s=0.005)
            killed = lease_holder(workers, job_row(studio, job.id))
            killed.kill9()
            killed_at = time.time()
            at_kill = job_row(studio, job.id)
            assert lease_pid(at_kill) == killed.pid and at_kill.provider_job_id
            assert at_kill.status == JobStatus.QUEUED and at_kill.assets == []

            survivors = [w for w in workers if w is not killed]
            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "a survivor to finish the job")
            job = job_row(studio, job.id)

            assert job.status == JobStatus.SUCCEEDED and job.attempt > at_kill.attempt
            assert job.finished_at > as_utc(killed_at)
            assert [e.status for e in job.events] == ["queued", "queued", "running", "succeeded"]
            assert final_event_counts(studio)[job.id] == 1
            [asset] = asset_rows(studio, job.id)
            assert (asset.content_type, asset.bytes) == ("video/mp4", len(fake.mp4))
            assert asset.sha256 == hashlib.sha256(fake.mp4).hexdigest()
            assert files_under(data_dir / "media") == sorted([asset.key, asset.thumbnail_key])
            assert spool_leftovers(data_dir) == []
            # Polling again is safe; creating again is not, and did not happen.
            assert len(fake.calls("openai.videos.create")) == 1
            assert len(video_downloads(fake)) == 1
            assert all(c.path.endswith(job.provider_job_id) for c in fake.calls("openai.videos.get"))
            wait_for(lambda: outcomes_of(survivors)["succeeded"], 10, "the survivor to log its copy")
            assert outcomes_of(survivors)["succeeded"] == 1 and all(w.alive for w in survivors)
        finally:
            studio.close()


# -- b2. a burst of local videos across three workers -----------------------------------------
CLIPS = 12


def test_a_burst_of_local_videos_across_three_workers_renders_each_once(tmp_path: Path) -> None:
    """More local clips at once than one worker's render slots: the ones waiting for a slot in one
    worker are polled meanwhile by the others."""
    data_dir = tmp_path / "data"
    with worker_pool(tmp_path) as start:
        studio = open_studio(None, data_dir)
        try:
            env = worker_env(None, data_dir)
            workers = [start(env, f"worker-{n}") for n in (1, 2, 3)]
            clips = {
                actions.submit_video(
                    studio, f"clip {n}", model="local-video", params={**SMALL_CLIP, "seed": n}
                ).id: "local"
                for n in range(CLIPS)
            }
            wait_for(lambda: not unfinished(studio), 60, "every clip to end", every_s=0.1)
            # Was a BUG (3 runs out of 3: one or two clips failed with "render failed: [Errno 2] No such
            # file or directory: …/output.part"): a clip still waiting for a render slot in one worker
            # had no state on disk yet, so the next worker to poll it rendered it too, and the two
            # encoders wrote over each other. The render now holds a lock on its task from the start.
            assert_every_job_ended_once(studio, data_dir, clips, canceled=set())
            for worker in workers:
                assert problem_lines(worker.log()) == [], worker.log()[-3000:]
        finally:
            studio.close()


# -- c. a worker frozen past its lease ------------------------------------------------------
def test_a_worker_frozen_past_its_lease_has_its_late_result_dropped(tmp_path: Path, database_url) -> None:
    data_dir = tmp_path / "data"
    hold_s = 10.0  # worker 1's first poll is answered this late, after worker 2 has finished the job
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script("openai.videos.get", Reply(delay_s=hold_s))
        studio = open_studio(fake, data_dir, database_url=database_url)
        try:
            job = actions.submit_video(studio, "freeze me", model="sora-2")
            env = worker_env(
                fake, data_dir, database_url=database_url, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S
            )
            first = start(env, "worker-1")
            [poll] = wait_for(lambda: fake.calls("openai.videos.get"), 30, "worker 1's first poll", every_s=0.005)
            first.signal(signal.SIGSTOP)  # frozen with its poll in flight, holding the lease
            held = job_row(studio, job.id)
            assert lease_pid(held) == first.pid

            second = start(env, "worker-2")
            wait_for(
                lambda: JobStatus(job_row(studio, job.id).status).is_final,
                hold_s - 1.5,
                "worker 2 to finish the job while worker 1 is frozen",
            )
            won = job_row(studio, job.id)
            won_assets = asset_rows(studio, job.id)
            assert won.status == JobStatus.SUCCEEDED and won.attempt > held.attempt
            thawed_at = time.time()
            first.signal(signal.SIGCONT)

            # Worker 1 gets its (late) answer, "completed", copies the video again, and its write
            # is refused by the fencing token.
            wait_for(lambda: first.outcomes()["stale"], 30, "worker 1 to report its result as stale")
            late = [c for c in video_downloads(fake) if c.at > thawed_at]
            assert len(late) == 1 and poll.at < thawed_at < late[0].at

            job = job_row(studio, job.id)
            assert (job.status, job.attempt, job.finished_at) == (won.status, won.attempt, won.finished_at)
            assert job.finished_at < as_utc(thawed_at)
            assert [e.status for e in job.events] == ["queued", "queued", "running", "succeeded"]
            assert all(e.at < as_utc(thawed_at) for e in job.events)  # the stale worker wrote nothing
            assert final_event_counts(studio)[job.id] == 1
            assets = asset_rows(studio, job.id)
            assert [(a.id, a.key, a.sha256, a.created_at) for a in assets] == [
                (a.id, a.key, a.sha256, a.created_at) for a in won_assets
            ]
            [asset] = assets
            # Same deterministic keys: the late copy overwrote identical bytes and was not deleted
            # (the job the keys belong to did succeed), and nothing else was left behind.
            assert files_under(data_dir / "media") == sorted([asset.key, asset.thumbnail_key])
            stored = (data_dir / "media" / asset.key).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == asset.sha256 == hashlib.sha256(fake.mp4).hexdigest()
            assert spool_leftovers(data_dir) == []

            assert first.outcomes() == Counter({"submitted": 1, "stale": 1})
            assert second.outcomes()["succeeded"] == 1
            assert len(fake.calls("openai.videos.create")) == 1
        finally:
            studio.close()


# -- c2. one slow download and the other jobs ------------------------------------------------
def test_a_slow_download_does_not_stall_polling_of_other_jobs(tmp_path: Path) -> None:
    """While one job's result trickles in, the worker keeps polling its other jobs."""
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script(CONTENT, Reply(chunks=25, chunk_delay_s=0.2))  # ~5 s to copy job A's video
        fake.minimax_steps = ["Processing"]  # job B runs at the provider for as long as the test does
        env = {
            "MINIMAX_API_KEY": fake.MINIMAX_KEY,
            "MINIMAX_BASE_URL": fake.minimax_base,
        }
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            studio = open_studio(fake, data_dir)
        try:
            slow = actions.submit_video(studio, "slow to copy", model="sora-2")
            other = actions.submit_video(studio, "still running", model="T2V-01")
            worker = start({**worker_env(fake, data_dir, lease_s=20, download_timeout_s=15), **env}, "worker")
            wait_for(lambda: any(c.sent for c in video_downloads(fake)), 30, "job A's download to start")
            began = time.time()
            wait_for(lambda: JobStatus(job_row(studio, slow.id).status).is_final, 30, "job A to be stored")
            ended = time.time()
            assert job_row(studio, slow.id).status == JobStatus.SUCCEEDED and ended - began > 4
            assert job_row(studio, other.id).status == JobStatus.RUNNING
            during = [c for c in fake.calls("minimax.query") if began < c.at < ended]
            # Job B is due every 0.1 s; allow a generous half of that pace.
            expected = int((ended - began) / 0.1 / 2)
            # Was a BUG: the tick copied results itself and the next tick waited for it, so one slow
            # copy stopped the polling of the worker's other jobs. Copies now run in their own pool.
            assert len(during) >= expected, (
                f"job B was polled {len(during)} times in the {ended - began:.1f} s job A took to copy"
            )
            assert worker.proc.poll() is None
        finally:
            studio.close()


# -- d. a tick that raises under the real BackgroundScheduler ---------------------------------
def test_a_raising_tick_does_not_stop_the_background_scheduler(tmp_path: Path, monkeypatch) -> None:
    """tests/worker/test_loop.py calls run_tick by hand; this runs the real APScheduler job."""
    studio = open_studio(None, tmp_path / "data", poll_interval_s=0.05)
    real_tick = loop.tick
    healed = threading.Event()
    raised = itertools.count()

    def flaky_tick(*args: Any, **kwargs: Any) -> Counter[str]:
        if not healed.is_set():
            next(raised)
            raise RuntimeError("database went away")
        return real_tick(*args, **kwargs)

    monkeypatch.setattr(loop, "tick", flaky_tick)
    job = actions.submit_video(studio, "still ticking", model="local-video", params={"duration": 1, "size": "160x96"})
    running = InProcessWorker(studio)
    running.start()
    worker_id = running.worker_id

    def beat() -> WorkerHeartbeat | None:
        with studio.db.read() as session:
            return session.get(WorkerHeartbeat, worker_id)

    try:
        # Three failing ticks in a row, each recorded, and the scheduler keeps going.
        failing = wait_for(lambda: (b := beat()) is not None and b.ticks >= 3 and b, 20, "three failing ticks")
        assert failing.last_error == "RuntimeError: database went away"
        assert job_row(studio, job.id).status == JobStatus.QUEUED
        healed.set()
        wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 60, "the job to finish after healing")
        assert running.running
        after = wait_for(lambda: (b := beat()) is not None and b.last_error is None and b, 10, "a clean heartbeat")
    finally:
        running.stop()
    try:
        assert job_row(studio, job.id).status == JobStatus.SUCCEEDED
        assert next(raised) >= 3 and after.ticks > 3
        assert beat().stopped_at is not None
    finally:
        studio.close()


# -- e. several pollers and a submitter on one SQLite file ------------------------------------
SUBMIT_FOR_S = 30.0


def test_two_workers_and_the_in_process_poller_share_one_sqlite_file(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mediagen")
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        studio = open_studio(fake, data_dir, poll_interval_s=0.2)  # creates the schema before anyone else
        running = None
        try:
            env = worker_env(fake, data_dir, poll_interval_s=0.2)
            workers = [start(env, "worker-1"), start(env, "worker-2")]
            running = InProcessWorker(studio)
            running.start()

            created: dict[str, str] = {}  # job id -> kind of work
            canceled: set[str] = set()
            submit_errors: list[str] = []
            clis: list[subprocess.Popen[str]] = []  # a third process kind writing: the CLI
            ends = time.monotonic() + SUBMIT_FOR_S
            for n in itertools.count():
                if time.monotonic() > ends:
                    break
                if n % 40 == 20:
                    command = ["video", f"cli {n}", "--model", "local-video", "--duration", "1", "--size", "160x96"]
                    clis.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "mediagen", *command],
                            env=env,
                            cwd=tmp_path,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                        )
                    )
                try:
                    if n % 9 == 8:
                        image = actions.generate_image(studio, f"image {n}", model="local-image", params=SMALL_IMAGE)
                        created[image.id] = "local-image"
                    elif n % 4 == 3:
                        created[actions.submit_video(studio, f"fake {n}", model="sora-2").id] = "sora-2"
                    else:
                        params = {**SMALL_CLIP, "seed": n}
                        created[actions.submit_video(studio, f"clip {n}", model="local-video", params=params).id] = (
                            "local-video"
                        )
                    if n % 10 == 5:  # cancel one in flight: it races the pollers
                        victim = list(created)[-2]
                        with contextlib.suppress(Conflict):
                            actions.cancel_job(studio, victim)
                            canceled.add(victim)
                except Exception as exc:  # recorded, so the assertion below shows every one
                    submit_errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.1)
            cli_logs = []
            for cli in clis:
                out, err = cli.communicate(timeout=60)
                cli_logs.append(err)
                if cli.returncode == 0:
                    created[json.loads(out)["id"]] = "local-video"
                else:
                    submit_errors.append(f"CLI exit {cli.returncode}: {err[-2000:]}")

            def unfinished() -> list[str]:
                with studio.db.read() as session:
                    return list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))

            wait_for(lambda: not unfinished(), 60, "every job to end", every_s=0.2)
            running.stop()
            running = None
            for worker in workers:
                worker.stop()

            logs = {f"worker-{i + 1}": w.log() for i, w in enumerate(workers)}
            logs["in-process"] = caplog.text
            logs["cli"] = "\n".join(cli_logs)
            for name, text in logs.items():
                assert "database is locked" not in text, f"{name}:\n{text[-4000:]}"
                assert "OperationalError" not in text, f"{name}:\n{text[-4000:]}"
            assert submit_errors == []
            assert len(created) > 100, "the submitter should have kept the pollers busy"

            rows = assert_every_job_ended_once(studio, data_dir, created, canceled)

            # Each video success was applied by exactly one poller, and all three pollers did work.
            per_poller = {name: tick_outcomes(text)["succeeded"] for name, text in logs.items()}
            succeeded_videos = sum(1 for j in rows.values() if j.status == "succeeded" and j.kind == "video")
            assert sum(per_poller.values()) == succeeded_videos, per_poller
            del per_poller["cli"]
            assert all(per_poller.values()), per_poller
        finally:
            if running is not None:
                running.stop()
            studio.close()


# -- f. processes starting together on a fresh database ---------------------------------------
@pytest.mark.parametrize("kind", DATABASES)
def test_processes_starting_together_on_a_fresh_database_all_come_up(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A worker and the app (or two workers) started at once on a new database both run the
    Alembic upgrade; every one of them must come up."""
    failures = []
    for round_ in range(3):
        data_dir = tmp_path / f"round-{round_}" / "data"
        database_url = None
        if kind == "postgresql":  # an empty database, not a copy of the migrated template
            cluster: Cluster = request.getfixturevalue("postgres")
            database_url = cluster.url(cluster.create_database())
        env = worker_env(None, data_dir, database_url=database_url)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mediagen", "worker", "--once"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                errors = [line for line in err.splitlines() if "Error" in line]
                last = errors[0] if errors else err.strip()[-300:]
                failures.append(f"round {round_}: exit {proc.returncode}: {last}")
    # Was a BUG until 9e48664 (migrations/env.py now takes the write lock up front): the upgrade ran
    # in a deferred transaction that read alembic_version and then wrote, so a concurrent starter
    # failed at once with "database is locked" instead of waiting for busy_timeout.
    # Was a BUG on PostgreSQL (9 of 12 failed: "duplicate key value violates unique constraint"):
    # every starter created the tables at once; the upgrade now takes an advisory lock first.
    assert failures == []
