"""The poller's tick against a real SQLite database, real storage and a scripted provider."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mediagen.db.tables import Asset, Job, utcnow
from mediagen.errors import ProviderError
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.providers.base import MediaSource, PollResult, TaskState
from mediagen.worker.step import Observed, advance, write_observed
from mediagen.worker.sweep import claim_due, tick

from ..conftest import stored_files

RUNNING_30 = PollResult(TaskState.RUNNING, 30)


def _done(mp4: bytes) -> PollResult:
    return PollResult(TaskState.SUCCEEDED, 100, outputs=[MediaSource(data=mp4)], usage={"seconds": 1})


def _tick_until(studio, job_id: str, predicate, limit_s: float = 20.0) -> Job:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        tick(studio)
        job = queries.get_job(studio, job_id)
        if predicate(job):
            return job
        time.sleep(studio.settings.poll_interval_s)
    raise AssertionError(f"job {job_id} never reached the expected state; last: {job.status}")


def _queue(studio) -> Job:
    return actions.submit_video(studio, "a scripted clip", model="scripted-video")


def _set(studio, job_id: str, **values) -> None:
    with studio.db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def test_video_job_goes_queued_running_succeeded(scripted, small_mp4) -> None:
    studio, provider = scripted
    provider.script.extend([PollResult(TaskState.QUEUED), RUNNING_30, _done(small_mp4)])
    job = _queue(studio)
    assert job.status == JobStatus.QUEUED and provider.submits == []

    job = _tick_until(studio, job.id, lambda j: j.provider_job_id is not None)
    assert job.provider_job_id == "task-1" and job.status == JobStatus.QUEUED
    job = _tick_until(studio, job.id, lambda j: j.status == JobStatus.RUNNING)
    assert job.progress == 30 and job.started_at is not None
    job = _tick_until(studio, job.id, lambda j: j.status == JobStatus.SUCCEEDED)

    assert job.progress == 100 and job.finished_at is not None and job.usage == {"seconds": 1}
    [asset] = job.assets
    assert asset.content_type == "video/mp4" and asset.bytes == len(small_mp4)
    assert (studio.settings.media_dir / asset.key).read_bytes() == small_mp4
    assert stored_files(studio) == sorted([asset.key, asset.thumbnail_key])
    assert [e.status for e in job.events] == ["queued", "queued", "running", "succeeded"]
    assert provider.discarded == ["task-1"]
    assert job.lease_owner is None and job.next_poll_at is None


def test_stale_worker_result_is_dropped(scripted, small_mp4) -> None:
    studio, provider = scripted
    provider.script.append(_done(small_mp4))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-x", status=JobStatus.RUNNING)

    now = utcnow()
    [stale] = claim_due(studio, "worker-a", now)
    # Worker A stalls past its lease; worker B claims the job again and bumps the token.
    later = now + timedelta(seconds=studio.settings.lease_s + 1)
    [fresh] = claim_due(studio, "worker-b", later)
    assert fresh.attempt == stale.attempt + 1

    assert advance(studio, stale) == "stale"
    stalled = queries.get_job(studio, job.id)
    assert stalled.status == JobStatus.RUNNING and stalled.assets == []

    assert advance(studio, fresh) == "succeeded"
    done = queries.get_job(studio, job.id)
    assert done.status == JobStatus.SUCCEEDED and len(done.assets) == 1
    # Same deterministic keys: the winner's upload replaced the stale one's, nothing doubled.
    assert stored_files(studio) == sorted([done.assets[0].key, done.assets[0].thumbnail_key])
    with studio.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Asset)) == 1


def test_a_held_lease_is_not_claimed_twice_until_it_expires(scripted) -> None:
    studio, _ = scripted
    job = _queue(studio)
    now = utcnow()
    assert [c.job_id for c in claim_due(studio, "a", now)] == [job.id]
    assert claim_due(studio, "b", now) == []
    assert claim_due(studio, "b", now + timedelta(seconds=studio.settings.lease_s - 1)) == []
    [claim] = claim_due(studio, "b", now + timedelta(seconds=studio.settings.lease_s + 1))
    assert claim.attempt == 2


def test_deadline_times_out_and_cancels_at_provider(scripted) -> None:
    studio, provider = scripted
    provider.script.append(RUNNING_30)
    job = _queue(studio)
    _set(
        studio,
        job.id,
        provider_job_id="task-9",
        status=JobStatus.RUNNING,
        deadline_at=utcnow() - timedelta(seconds=1),
    )
    assert tick(studio)["timed_out"] == 1
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.TIMED_OUT and job.error_code == "timed_out"
    assert "ran for" in job.error_message and "deadline" in job.error_message
    assert provider.cancels == ["task-9"] and provider.polls == []


def test_unknown_submit_outcome_is_never_resent(scripted) -> None:
    studio, provider = scripted
    job = _queue(studio)
    _set(studio, job.id, submitted_at=utcnow() - timedelta(minutes=5))
    tick(studio)
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.FAILED and job.error_code == "submit_outcome_unknown"
    assert "Retry" in job.error_message
    assert provider.submits == []


def test_transient_poll_error_backs_off_then_recovers(scripted, small_mp4) -> None:
    studio, provider = scripted
    provider.script.extend([ProviderError("HTTP 503 from provider", retryable=True), _done(small_mp4)])
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    before = utcnow()
    assert tick(studio)["backoff"] == 1
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.RUNNING and job.transient_errors == 1
    assert job.next_poll_at > before
    assert "trying again" in job.events[-1].message
    job = _tick_until(studio, job.id, lambda j: JobStatus(j.status).is_final)
    assert job.status == JobStatus.SUCCEEDED and job.transient_errors == 0


def test_retry_after_from_provider_sets_next_poll(scripted) -> None:
    studio, provider = scripted
    provider.script.append(ProviderError("rate limited", retryable=True, retry_after_s=30))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    before = utcnow()
    tick(studio)
    delay = (queries.get_job(studio, job.id).next_poll_at - before).total_seconds()
    assert 30 * 0.8 - 1 <= delay <= 30 * 1.2 + 1


def test_final_provider_error_fails_the_job_with_its_message(scripted) -> None:
    studio, provider = scripted
    provider.script.append(ProviderError("content policy: prompt was blocked", code="content_policy"))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    tick(studio)
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.FAILED and job.error_code == "content_policy"
    assert job.error_message == "content policy: prompt was blocked"


def test_provider_failure_state_is_recorded(scripted) -> None:
    studio, provider = scripted
    provider.script.append(PollResult(TaskState.FAILED, error_code="1027", error_message="sensitive output"))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1")
    tick(studio)
    job = queries.get_job(studio, job.id)
    assert (job.status, job.error_code, job.error_message) == (JobStatus.FAILED, "1027", "sensitive output")


def test_undecodable_output_fails_and_leaves_no_files(scripted) -> None:
    studio, provider = scripted
    provider.script.append(PollResult(TaskState.SUCCEEDED, outputs=[MediaSource(data=b"\x00garbage" * 100)]))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    tick(studio)
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.FAILED and job.error_code == "invalid_output"
    assert "not a recognisable image or video" in job.error_message
    assert job.assets == [] and stored_files(studio) == []


def test_cancel_racing_completion_ends_in_one_final_state(scripted, small_mp4) -> None:
    studio, provider = scripted
    provider.script.append(_done(small_mp4))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    [claim] = claim_due(studio, "worker", utcnow())
    actions.cancel_job(studio, job.id)  # the user cancels while the worker is downloading
    assert advance(studio, claim) == "stale"
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.CANCELED and job.assets == []
    assert [(e.status, e.message) for e in job.events][1:] == [
        ("canceled", "canceled by the user"),
        ("canceled", "canceled at the provider"),
    ]
    assert "succeeded" not in [e.status for e in job.events]
    assert stored_files(studio) == [] and provider.cancels == ["task-1"]


def test_a_crashing_provider_fails_only_its_job(scripted) -> None:
    studio, provider = scripted
    provider.script.append(RuntimeError("boom"))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    outcomes = tick(studio)
    assert outcomes["failed"] == 1
    job = queries.get_job(studio, job.id)
    assert job.error_code == "internal_error" and "RuntimeError: boom" in job.error_message


def test_image_left_running_by_a_dead_process_times_out(scripted) -> None:
    studio, _ = scripted
    with studio.db.write() as session:
        session.add(
            Job(
                id="orphan",
                kind="image",
                status="running",
                provider="scripted",
                model="scripted-image",
                prompt="p",
                params={},
                deadline_at=utcnow() - timedelta(seconds=1),
            )
        )
    tick(studio)
    job = queries.get_job(studio, "orphan")
    assert job.status == JobStatus.TIMED_OUT and "deadline" in job.error_message


@pytest.mark.parametrize("retryable", [True, False])
def test_submit_errors(scripted, retryable: bool) -> None:
    studio, provider = scripted
    provider.submit_error = ProviderError("provider said no", code="bad_request", retryable=retryable)
    job = _queue(studio)
    tick(studio)
    job = queries.get_job(studio, job.id)
    if retryable:  # refused before acceptance: queued again, and submitted_at cleared so it is resent
        assert job.status == JobStatus.QUEUED and job.submitted_at is None and job.transient_errors == 1
    else:
        assert job.status == JobStatus.FAILED and job.error_message == "provider said no"


def test_local_video_end_to_end(studio) -> None:
    job = actions.submit_video(studio, "waves", params={"duration": 1, "size": "160x96"})
    job = _tick_until(studio, job.id, lambda j: JobStatus(j.status).is_final, limit_s=60)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    [asset] = job.assets
    assert (asset.width, asset.height, asset.content_type) == (160, 96, "video/mp4")
    assert asset.duration_s == pytest.approx(1.0, abs=0.1)
    assert not (studio.settings.data_dir / "local-provider" / job.provider_job_id).exists()


def test_a_stale_worker_never_deletes_the_winners_objects(scripted, small_mp4) -> None:
    """Keys are deterministic per job: the late worker wrote the same keys the winner did."""
    studio, provider = scripted
    provider.script.append(_done(small_mp4))
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-x", status=JobStatus.RUNNING)
    now = utcnow()
    [stale] = claim_due(studio, "worker-a", now)
    [fresh] = claim_due(studio, "worker-b", now + timedelta(seconds=studio.settings.lease_s + 1))
    assert advance(studio, fresh) == "succeeded"
    assert advance(studio, stale) == "stale"
    done = queries.get_job(studio, job.id)
    assert stored_files(studio) == sorted([done.assets[0].key, done.assets[0].thumbnail_key])


def test_one_tick_sweeps_a_backlog_bigger_than_a_claim_batch(scripted, monkeypatch) -> None:
    """With 2 threads a batch is 8 claims; 30 due jobs are still all submitted by one tick, each
    exactly once, because the tick keeps claiming until nothing is due."""
    studio, provider = scripted
    studio.settings = studio.settings.model_copy(update={"poll_concurrency": 2, "poll_interval_s": 5.0})
    provider.script.append(RUNNING_30)
    queued = [_queue(studio).id for _ in range(30)]
    outcomes = tick(studio)
    assert sum(outcomes.values()) == 30
    assert len(provider.submits) == 30
    with studio.db.read() as session:
        submitted = session.scalar(select(func.count()).select_from(Job).where(Job.provider_job_id.is_not(None)))
    assert submitted == len(queued)
    assert tick(studio) == {}  # nothing is due again before the poll interval


def test_still_running_answers_are_written_together_each_fenced(scripted) -> None:
    """A sweep's "still running" answers are written in one transaction; the one whose job was
    canceled meanwhile is dropped, and each next poll is due one interval after its poll was sent."""
    studio, provider = scripted
    provider.script.append(RUNNING_30)
    first, second = _queue(studio), _queue(studio)
    for job in (first, second):
        _set(studio, job.id, provider_job_id=f"task-{job.id}", status=JobStatus.QUEUED)
    claims = claim_due(studio, "worker", utcnow())
    observed = [advance(studio, claim) for claim in claims]
    assert all(isinstance(seen, Observed) for seen in observed)
    actions.cancel_job(studio, second.id)

    assert write_observed(studio, observed) == {"running": 1, "stale": 1}
    running, canceled = queries.get_job(studio, first.id), queries.get_job(studio, second.id)
    [seen] = [seen for seen in observed if seen.claim.job_id == first.id]
    assert running.status == JobStatus.RUNNING and running.progress == 30 and running.lease_owner is None
    assert running.next_poll_at == seen.polled_at + timedelta(seconds=studio.settings.poll_interval_s)
    assert canceled.status == JobStatus.CANCELED and canceled.progress == 0


def test_a_tick_that_keeps_polling_polls_each_job_as_it_comes_due(scripted, monkeypatch) -> None:
    """Run by the scheduler, a tick keeps going while jobs come due: a running job is polled again
    each interval within the one tick, never before it is due."""
    studio, provider = scripted
    studio.settings = studio.settings.model_copy(update={"poll_interval_s": 0.3})
    provider.script.append(RUNNING_30)
    job = _queue(studio)
    _set(studio, job.id, provider_job_id="task-1", status=JobStatus.RUNNING)
    polled_at: list[float] = []
    poll = provider.poll
    monkeypatch.setattr(provider, "poll", lambda *args: (polled_at.append(time.monotonic()), poll(*args))[1])

    outcomes = tick(studio, keep_polling_s=1.0)
    assert outcomes["running"] == len(polled_at) >= 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(polled_at)]
    assert all(gap >= 0.3 - 0.01 for gap in gaps), gaps
