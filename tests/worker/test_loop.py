"""A worker: ticks run in the background (APScheduler), survive errors and leave a heartbeat."""

from __future__ import annotations

import logging
import time

import pytest

from mediagen.db.tables import WorkerHeartbeat
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.providers.base import PollResult, TaskState
from mediagen.worker import loop
from mediagen.worker.loop import Worker


def _beat(studio, worker_id: str) -> WorkerHeartbeat:
    with studio.db.read() as session:
        return session.get(WorkerHeartbeat, worker_id)


def test_a_failing_tick_is_recorded_and_the_next_one_runs(studio, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_tick(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(loop, "tick", broken_tick)
    report = Worker(studio, "w1").run_tick()
    assert report.counts() == {} and not report.busy
    beat = _beat(studio, "w1")
    assert beat.ticks == 1 and beat.last_error == "RuntimeError: database went away"

    monkeypatch.undo()
    Worker(studio, "w1").run_tick()
    beat = _beat(studio, "w1")
    assert beat.ticks == 2 and beat.last_error is None


def test_a_background_worker_finishes_a_local_video(studio) -> None:
    job = actions.submit_video(studio, "tide", params={"duration": 1, "size": "128x72"})
    running = Worker(studio)
    running.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not JobStatus(queries.get_job(studio, job.id).status).is_final:
            time.sleep(0.1)
    finally:
        running.stop()
    assert queries.get_job(studio, job.id).status == JobStatus.SUCCEEDED
    beat = _beat(studio, running.worker_id)
    assert beat.ticks >= 2 and beat.last_tick_at is not None and beat.stopped_at is not None


def test_a_busy_worker_ticks_back_to_back_quietly_and_stops_on_request(scripted, caplog) -> None:
    """While a job is in flight the worker's run outlives its interval: each poll comes one
    interval after the last, APScheduler's skipped overlapping runs are not logged as warnings,
    nor are polls that found the job still running (the job's progress shows them), and
    stopping the scheduler ends the run (it used to be able to deadlock in shutdown)."""
    studio, provider = scripted
    studio.settings = studio.settings.model_copy(update={"poll_interval_s": 0.2})
    provider.script.append(PollResult(TaskState.RUNNING, 30))
    job = actions.submit_video(studio, "a long clip", model="scripted-video")
    caplog.set_level(logging.INFO, logger="apscheduler")
    caplog.set_level(logging.INFO, logger="mediagen.worker.loop")
    running = Worker(studio)
    running.start()
    try:
        deadline = time.monotonic() + 30
        while len(provider.polls) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop()
    assert len(provider.polls) >= 5 and set(provider.polls) == {"task-1"}
    assert queries.get_job(studio, job.id).status == JobStatus.RUNNING
    assert not [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    ticks = [r.getMessage() for r in caplog.records if r.name == loop.__name__ and r.levelno >= logging.INFO]
    assert ticks and all("'submitted': 1" in tick for tick in ticks), ticks  # the news: it went to the provider
    assert _beat(studio, running.worker_id).stopped_at is not None


def test_a_new_job_is_taken_up_within_one_poll_interval_idle_or_busy(scripted) -> None:
    """Polling is the floor every deployment has (no LISTEN/NOTIFY, which a transaction-mode
    pooler would break): a job submitted at any moment is claimed by the next look for due work,
    at most one interval later, whether the worker was idle or polling other jobs meanwhile."""
    studio, provider = scripted
    interval = 1.0
    studio.settings = studio.settings.model_copy(update={"poll_interval_s": interval})
    provider.script.append(PollResult(TaskState.RUNNING, 30))  # every job keeps running: the worker stays busy
    running = Worker(studio)
    running.start()
    waits: list[float] = []
    try:
        deadline = time.monotonic() + 10
        while _beat(studio, running.worker_id) is None:  # idle: it has looked once and found nothing
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for offset in (0.35, 0.8, 0.55, 0.15):  # submitted at different points of the cycle
            time.sleep(offset)
            before = len(provider.submits)
            actions.submit_video(studio, f"clip after {offset}", model="scripted-video")
            submitted = time.monotonic()
            while len(provider.submits) == before:
                assert time.monotonic() - submitted < 5 * interval, "the job was not taken up"
                time.sleep(0.01)
            waits.append(time.monotonic() - submitted)
    finally:
        running.stop()
    # One interval, and a little for the claim and the submit call themselves.
    assert max(waits) <= interval + 0.3, waits
