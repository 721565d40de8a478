"""The APScheduler wiring: ticks run in the background, survive errors and leave a heartbeat."""

from __future__ import annotations

import logging
import time

import pytest

from mediagen import jobs, scheduler
from mediagen.models import WorkerHeartbeat
from mediagen.providers.base import PollResult, TaskState
from mediagen.states import JobStatus


def _beat(studio, worker_id: str) -> WorkerHeartbeat:
    with studio.db.read() as session:
        return session.get(WorkerHeartbeat, worker_id)


def test_a_failing_tick_is_recorded_and_the_next_one_runs(studio, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_tick(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(scheduler, "tick", broken_tick)
    assert scheduler.run_tick(studio, "w1") == {}
    beat = _beat(studio, "w1")
    assert beat.ticks == 1 and beat.last_error == "RuntimeError: database went away"

    monkeypatch.undo()
    scheduler.run_tick(studio, "w1")
    beat = _beat(studio, "w1")
    assert beat.ticks == 2 and beat.last_error is None


def test_background_scheduler_finishes_a_local_video(studio) -> None:
    job = jobs.submit_video(studio, "tide", params={"duration": 1, "size": "128x72"})
    running = scheduler.start_scheduler(studio)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not JobStatus(jobs.get_job(studio, job.id).status).is_final:
            time.sleep(0.1)
    finally:
        scheduler.stop_scheduler(studio, running)
    assert jobs.get_job(studio, job.id).status == JobStatus.SUCCEEDED
    beat = _beat(studio, running.mediagen_worker_id)
    assert beat.ticks >= 2 and beat.last_tick_at is not None and beat.stopped_at is not None


def test_a_busy_poller_ticks_back_to_back_quietly_and_stops_on_request(scripted, caplog) -> None:
    """While a job is in flight the poller's run outlives its interval: each poll comes one
    interval after the last, APScheduler's skipped overlapping runs are not logged as warnings,
    and stopping the scheduler ends the run (it used to be able to deadlock in shutdown)."""
    studio, provider = scripted
    studio.settings = studio.settings.model_copy(update={"poll_interval_s": 0.2})
    provider.script.append(PollResult(TaskState.RUNNING, 30))
    job = jobs.submit_video(studio, "a long clip", model="scripted-video")
    caplog.set_level(logging.INFO, logger="apscheduler")
    running = scheduler.start_scheduler(studio)
    try:
        deadline = time.monotonic() + 30
        while len(provider.polls) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop_scheduler(studio, running)
    assert len(provider.polls) >= 5 and set(provider.polls) == {"task-1"}
    assert jobs.get_job(studio, job.id).status == JobStatus.RUNNING
    assert not [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert _beat(studio, running.mediagen_worker_id).stopped_at is not None
