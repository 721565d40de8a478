"""Fault injection against real worker processes: kill -9 mid-download, between upload and commit
and mid-poll; a worker frozen (SIGSTOP) past its lease; one slow download among other jobs; a tick
that raises under a real BackgroundScheduler; several pollers, a submitter and the CLI on one
SQLite file; processes starting together on a fresh data dir.

Every wait is a poll with a deadline on something observable (the fake provider's recorded
requests, the database, the media folder, a worker's log); nothing sleeps blindly and calls it an
assertion. A test that demonstrated a bug, since fixed, says so in a ``Was a BUG`` comment.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from mediagen.config import Settings
from mediagen.db.tables import Asset, Job, JobEvent, WorkerHeartbeat
from mediagen.errors import Conflict
from mediagen.jobs import actions, queries
from mediagen.jobs.status import FINAL_STATUSES, JobStatus
from mediagen.studio import Studio
from mediagen.worker import loop
from mediagen.worker.loop import Worker as InProcessWorker

from ..support.fake_providers import FakeProviders, Recorded, Reply

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

T = TypeVar("T")
FINAL = sorted(s.value for s in FINAL_STATUSES)
LEASE_S = 3  # short, so a dead worker's job frees up quickly
DOWNLOAD_TIMEOUT_S = 2  # the settings insist lease_s > download_timeout_s
CONTENT = "openai.videos.content"
# Notes actions.cancel_job adds after the "canceled by the user" transition (see _cancel_at_provider).
CANCEL_NOTES = ("canceled at the provider", "the provider cannot cancel", "the provider did not confirm")


# -- helpers --------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def provider_env(fake: FakeProviders) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": fake.OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',  # the fake on loopback stands in for public hosts
    }


def worker_env(fake: FakeProviders | None, data_dir: Path, **settings: Any) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGEN_", "OPENAI_", "MINIMAX_", "REPLICATE_"))}
    return {
        **base,
        **(provider_env(fake) if fake else {"MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]'}),
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        "MEDIAGEN_POLL_INTERVAL_S": "0.1",
        **{f"MEDIAGEN_{k.upper()}": str(v) for k, v in settings.items()},
    }


@dataclass
class Worker:
    """One ``python -m mediagen worker`` process; its stderr (the log) goes to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.kill()
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def outcomes(self) -> Counter[str]:
        return tick_outcomes(self.log())


def tick_outcomes(log_text: str) -> Counter[str]:
    """Sum of every ``worker tick: {...}`` and ``worker copy: {...}`` line a worker logged. A tick
    hands finished results to background copies ("copying"); the copy logs how it ended."""
    total: Counter[str] = Counter()
    for match in re.finditer(r"worker (?:tick|copy): (\{.*?\})", log_text):
        total.update(ast.literal_eval(match.group(1)))
    del total["copying"]
    return total


@contextlib.contextmanager
def worker_pool(workdir: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``start(env, name)``; every one is stopped on the way out."""
    started: list[Worker] = []
    handles: list[Any] = []

    def start(env: dict[str, str], name: str) -> Worker:
        log_path = workdir / f"{name}.log"
        handle = log_path.open("wb")
        handles.append(handle)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediagen", "worker"],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
        started.append(Worker(proc, log_path))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for handle in handles:
            handle.close()


def open_studio(fake: FakeProviders | None, data_dir: Path, **settings: Any) -> Studio:
    """An in-process studio on ``data_dir``; provider keys and the outbound allow-list come from
    the environment, as in a deployment."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MEDIAGEN_"):
                patch.delenv(name)
        env = provider_env(fake) if fake else {"MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]'}
        for name, value in env.items():
            patch.setenv(name, value)
        return Studio.open(Settings(data_dir=data_dir, public_base_url="http://127.0.0.1:9/cdn", **settings))


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (hidden temp files included, so leaks show)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def spool_leftovers(data_dir: Path) -> list[str]:
    """Files in the download spool. A ``*.lock`` file is not a leftover: a fix may keep one per
    live process to mark the spool files it owns."""
    return [name for name in files_under(data_dir / "spool") if not name.endswith(".lock")]


def job_row(studio: Studio, job_id: str) -> Job:
    return queries.get_job(studio, job_id)


def final_event_counts(studio: Studio) -> dict[str, int]:
    """Per job: how many times its events enter a final status (exactly once for a finished job).

    Events also carry notes written after a transition with the job's status at the time (the
    poller's "submitted to ..." note, the cancel-at-provider note after "canceled by the user"), so
    a note right after a final event repeats that status; it is not a second finish. Any event after
    the first final one must be such a note.
    """
    with studio.db.read() as session:
        rows = session.execute(select(JobEvent.job_id, JobEvent.status, JobEvent.message).order_by(JobEvent.id))
        events: dict[str, list[tuple[str, str | None]]] = {}
        for job_id, status, message in rows:
            events.setdefault(job_id, []).append((status, message))
    counts = {}
    for job_id, seen in events.items():
        statuses = [status for status, _ in seen]
        entered = [i for i, s in enumerate(statuses) if s in FINAL and (i == 0 or statuses[i - 1] not in FINAL)]
        counts[job_id] = len(entered)
        if entered:
            first = entered[0]
            for status, message in seen[first + 1 :]:
                assert status == statuses[first] and (message or "").startswith(CANCEL_NOTES), (job_id, seen)
    return counts


def asset_rows(studio: Studio, job_id: str) -> list[Asset]:
    with studio.db.read() as session:
        return list(session.scalars(select(Asset).where(Asset.job_id == job_id).order_by(Asset.index)))


def lease_pid(job: Job) -> int | None:
    """The pid in a lease owner ``host:pid:suffix`` (see ``studio.new_owner_id``)."""
    return int(job.lease_owner.split(":")[1]) if job.lease_owner else None


def video_downloads(fake: FakeProviders) -> list[Recorded]:
    return [c for c in fake.calls(CONTENT) if c.query.get("variant") == "video"]


def as_utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


# -- a. kill -9 mid-download ----------------------------------------------------------------
@dataclass
class KillOutcome:
    data_dir: Path
    job: Job
    assets: list[Asset]
    final_events: int
    stored: list[str]
    spool_after_kill: list[str]
    spool_at_end: list[str]
    calls: dict[str, int]
    sent_at_kill: int
    mp4_size: int
    lease_pid_at_kill: int | None
    killed_pid: int
    attempt_at_kill: int
    killed_at: float
    extra: dict[str, Any] = field(default_factory=dict)


def _kill_mid_download(workdir: Path) -> KillOutcome:
    data_dir = workdir / "data"
    with FakeProviders() as fake, worker_pool(workdir) as start:
        # The first copy of the finished video trickles out over ~4 s; later copies are instant.
        fake.script(CONTENT, Reply(chunks=20, chunk_delay_s=0.2))
        studio = open_studio(fake, data_dir)
        try:
            job = actions.submit_video(studio, "kill me while downloading", model="sora-2")
            env = worker_env(fake, data_dir, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S)
            first = start(env, "worker-1")
            download = wait_for(
                lambda: next((c for c in video_downloads(fake) if c.sent > 0), None),
                30,
                "worker 1 to start downloading the video",
                every_s=0.005,
            )
            sent_at_kill = download.sent
            first.kill9()
            killed_at = time.time()
            at_kill = job_row(studio, job.id)
            spool_after_kill = spool_leftovers(data_dir)

            second = start(env, "worker-2")
            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "worker 2 to finish the job")
            wait_for(lambda: second.outcomes()["succeeded"], 10, "worker 2 to log its tick")
            outcome = KillOutcome(
                data_dir=data_dir,
                job=job_row(studio, job.id),
                assets=asset_rows(studio, job.id),
                final_events=final_event_counts(studio)[job.id],
                stored=files_under(data_dir / "media"),
                spool_after_kill=spool_after_kill,
                spool_at_end=[],
                calls={
                    "create": len(fake.calls("openai.videos.create")),
                    "video": len(video_downloads(fake)),
                    "thumbnail": len([c for c in fake.calls(CONTENT) if c.query.get("variant") == "thumbnail"]),
                },
                sent_at_kill=sent_at_kill,
                mp4_size=len(fake.mp4),
                lease_pid_at_kill=lease_pid(at_kill),
                killed_pid=first.pid,
                attempt_at_kill=at_kill.attempt,
                killed_at=killed_at,
                extra={
                    "status_at_kill": at_kill.status,
                    "assets_at_kill": len(at_kill.assets),
                    "worker_2_outcomes": second.outcomes(),
                },
            )
            # Work goes on (one more job through worker 2, claimed more than a lease after the kill),
            # so a cleanup that runs on a later tick has had its chance before the spool is checked.
            follow_up = actions.submit_video(studio, "after the crash", model="sora-2")
            wait_for(lambda: JobStatus(job_row(studio, follow_up.id).status).is_final, 30, "the follow-up job")
            assert job_row(studio, follow_up.id).status == JobStatus.SUCCEEDED
            assert time.time() - killed_at > LEASE_S
            outcome.spool_at_end = spool_leftovers(data_dir)
            return outcome
        finally:
            studio.close()


@pytest.fixture(scope="module")
def killed_mid_download(tmp_path_factory: pytest.TempPathFactory) -> KillOutcome:
    return _kill_mid_download(tmp_path_factory.mktemp("kill-download"))


def test_kill9_mid_download_the_next_worker_finishes_the_job_exactly_once(killed_mid_download) -> None:
    run = killed_mid_download
    # The kill landed mid-download: worker 1 held the lease and part of the body had gone out.
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
    assert run.extra["worker_2_outcomes"]["succeeded"] == 1


def test_kill9_mid_download_leaves_no_spool_files(killed_mid_download) -> None:
    run = killed_mid_download
    assert run.job.status == JobStatus.SUCCEEDED
    # Was a BUG until 9e48664 (ingest.sweep_spool, run by a claiming tick): the spool file is a
    # NamedTemporaryFile only its own process deletes, so a worker killed mid-download left
    # spool/ingest-*.part behind for good.
    assert run.spool_after_kill, "the killed worker had a spool file open (this test's premise)"
    assert run.spool_at_end == [], (
        f"spool files left by the killed worker (present right after the kill: {run.spool_after_kill})"
    )


# -- a2. kill -9 after the upload, before the result is written ------------------------------
def test_kill9_between_upload_and_commit_then_cancel_leaves_no_orphan_files(tmp_path: Path) -> None:
    """A worker dies after copying a result into storage but before writing the asset rows; the
    job then ends without a result (here the user cancels it). Its files must not stay behind."""
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script(CONTENT, Reply(chunks=10, chunk_delay_s=0.1))  # time to take the database lock
        studio = open_studio(fake, data_dir)
        try:
            job = actions.submit_video(studio, "die before the commit", model="sora-2")
            env = worker_env(fake, data_dir, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S)
            first = start(env, "worker-1")
            wait_for(lambda: any(c.sent for c in video_downloads(fake)), 30, "worker 1 to start downloading")
            # Hold SQLite's write lock: worker 1 copies the result into storage, then waits to commit.
            lock = sqlite3.connect(data_dir / "mediagen.db", isolation_level=None, timeout=30)
            try:
                lock.execute("BEGIN IMMEDIATE")
                media = data_dir / "media"
                uploaded = wait_for(
                    lambda: len(u := [f for f in files_under(media) if f.endswith((".mp4", ".thumb.webp"))]) == 2 and u,
                    30,
                    "worker 1 to upload the video and its thumbnail",
                )
                first.kill9()
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert len(uploaded) == 2
            at_kill = job_row(studio, job.id)
            assert (at_kill.status, at_kill.assets) == (JobStatus.RUNNING, [])

            canceled = actions.cancel_job(studio, job.id)
            assert canceled.status == JobStatus.CANCELED and asset_rows(studio, job.id) == []
            # Was a BUG: keys are deterministic per job, so ending without a result now clears what a
            # dead worker uploaded under them (cancel here; failed and timed_out share the path).
            assert files_under(data_dir / "media") == [], "files of a canceled job, owned by no asset row"
        finally:
            studio.close()


# -- b. kill -9 mid-poll --------------------------------------------------------------------
def test_kill9_mid_poll_the_next_worker_finishes_the_job_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script("openai.videos.get", Reply(delay_s=4.0))  # the first poll hangs; the kill lands in it
        studio = open_studio(fake, data_dir)
        try:
            job = actions.submit_video(studio, "kill me while polling", model="sora-2")
            env = worker_env(fake, data_dir, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S)
            first = start(env, "worker-1")
            wait_for(lambda: fake.calls("openai.videos.get"), 30, "worker 1's first poll", every_s=0.005)
            first.kill9()
            killed_at = time.time()
            at_kill = job_row(studio, job.id)
            assert lease_pid(at_kill) == first.pid and at_kill.provider_job_id
            assert at_kill.status == JobStatus.QUEUED and at_kill.assets == []

            start(env, "worker-2")
            wait_for(lambda: JobStatus(job_row(studio, job.id).status).is_final, 30, "worker 2 to finish the job")
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
        finally:
            studio.close()


# -- c. a worker frozen past its lease ------------------------------------------------------
def test_a_worker_frozen_past_its_lease_has_its_late_result_dropped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    hold_s = 10.0  # worker 1's first poll is answered this late, after worker 2 has finished the job
    with FakeProviders() as fake, worker_pool(tmp_path) as start:
        fake.script("openai.videos.get", Reply(delay_s=hold_s))
        studio = open_studio(fake, data_dir)
        try:
            job = actions.submit_video(studio, "freeze me", model="sora-2")
            env = worker_env(fake, data_dir, lease_s=LEASE_S, download_timeout_s=DOWNLOAD_TIMEOUT_S)
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
SUBMIT_FOR_S = 45.0
SMALL_IMAGE = {"size": "256x256"}


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
                        params = {"duration": 1, "size": "160x96", "seed": n}
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
            assert len(created) > 150, "the submitter should have kept the pollers busy"

            with studio.db.read() as session:
                rows = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(created)))}
                assets = Counter(session.scalars(select(Asset.job_id)))
                keys = [k for a in session.scalars(select(Asset)) for k in (a.key, a.thumbnail_key)]
            assert set(rows) == set(created)
            statuses = Counter(str(j.status) for j in rows.values())
            assert set(statuses) <= {"succeeded", "canceled"}, {
                j.id: (j.status, j.error_message) for j in rows.values() if j.status not in ("succeeded", "canceled")
            }
            assert {j for j, r in rows.items() if r.status == "canceled"} == canceled
            counts = final_event_counts(studio)
            assert {job_id: counts[job_id] for job_id in created} == dict.fromkeys(created, 1)
            for job_id, row in rows.items():
                assert assets[job_id] == (1 if row.status == JobStatus.SUCCEEDED else 0), (job_id, row.status)
            # Every stored file belongs to an asset row, once: no orphan from a stale or canceled result.
            assert files_under(data_dir / "media") == sorted(keys) and len(set(keys)) == len(keys)
            assert spool_leftovers(data_dir) == []

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


# -- f. processes starting together on a fresh data dir ---------------------------------------
def test_processes_starting_together_on_a_fresh_data_dir_all_come_up(tmp_path: Path) -> None:
    """A worker and the app (or two workers) started at once on a new data dir both run the
    Alembic upgrade; every one of them must come up."""
    failures = []
    for round_ in range(3):
        data_dir = tmp_path / f"round-{round_}" / "data"
        env = worker_env(None, data_dir)
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
    assert failures == []
