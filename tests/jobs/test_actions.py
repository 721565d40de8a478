"""Use cases against a real SQLite database and real local storage."""

from __future__ import annotations

import pytest
from PIL import Image
from sqlalchemy import func, select

from mediagen.db.tables import Job, JobEvent
from mediagen.errors import Conflict, InvalidInput, NotFound, ProviderError
from mediagen.jobs import actions, queries
from mediagen.jobs.schema import JobOut
from mediagen.jobs.status import JobStatus
from mediagen.providers.base import ImageResult, MediaSource

from ..conftest import stored_files


def _count(studio, model) -> int:
    with studio.db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_generate_image_stores_real_pngs_with_urls(studio) -> None:
    job = actions.generate_image(studio, "  a lighthouse at dusk ", params={"size": "512x256", "n": 2, "seed": 7})
    assert job.status == JobStatus.SUCCEEDED and job.prompt == "a lighthouse at dusk"
    assert job.params == {"size": "512x256", "n": 2, "seed": 7}
    assert [e.status for e in job.events] == ["queued", "running", "succeeded"]
    assert len(job.assets) == 2
    for index, asset in enumerate(job.assets):
        assert asset.key == f"image/{job.created_at:%Y/%m/%d}/{job.id}-{index}.png"
        with Image.open(studio.settings.media_dir / asset.key) as image:
            assert image.size == (512, 256)
    data = JobOut.of(job, studio.storage).data()
    assert data["assets"][0]["url"] == f"http://127.0.0.1:9/cdn/{job.assets[0].key}"
    assert data["assets"][0]["thumbnail_url"].endswith(".thumb.webp")
    assert len(stored_files(studio)) == 4


@pytest.mark.parametrize(
    ("prompt", "params", "field"),
    [
        ("", {}, "prompt"),
        ("   \n\t", {}, "prompt"),
        ("x" * 4001, {}, "prompt"),
        ("ok", {"size": "100x100"}, "size"),
        ("ok", {"size": "big"}, "size"),
        ("ok", {"n": 5}, "n"),
        ("ok", {"n": 0}, "n"),
        ("ok", {"colour": "red"}, "colour"),
    ],
)
def test_invalid_image_input_names_the_field_and_creates_nothing(studio, prompt, params, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        actions.generate_image(studio, prompt, params=params)
    assert caught.value.field == field
    assert _count(studio, Job) == 0 and _count(studio, JobEvent) == 0
    assert stored_files(studio) == []


def test_unknown_model_lists_the_allowed_ones(studio) -> None:
    with pytest.raises(InvalidInput, match=r"model: .*'dall-e-9'.*allowed: local-image"):
        actions.generate_image(studio, "x", model="dall-e-9")
    with pytest.raises(InvalidInput, match="allowed: local-video"):
        actions.submit_video(studio, "x", model="local-image")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"duration": 11}, "duration"),
        ({"size": "1920x1080"}, "size"),
        ({"size": "641x360"}, "size"),
        ({"duration": 0}, "duration"),
    ],
)
def test_invalid_video_input_creates_nothing(studio, params, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        actions.submit_video(studio, "waves", params=params)
    assert caught.value.field == field and _count(studio, Job) == 0


def test_provider_failure_is_recorded_with_its_reason(scripted) -> None:
    studio, provider = scripted
    provider.image_answer = ProviderError("OPENAI_API_KEY was rejected", code="auth")
    job = actions.generate_image(studio, "x", model="scripted-image")
    assert job.status == JobStatus.FAILED
    assert (job.error_code, job.error_message) == ("auth", "OPENAI_API_KEY was rejected")
    assert stored_files(studio) == []


def test_non_media_output_fails_and_keeps_nothing(scripted, small_png) -> None:
    studio, provider = scripted
    # The first output is fine, the second is not: the first one's files must go too.
    provider.image_answer = ImageResult([MediaSource(data=small_png), MediaSource(data=b"<html>oops</html>")])
    job = actions.generate_image(studio, "x", model="scripted-image")
    assert job.status == JobStatus.FAILED and job.error_code == "invalid_output"
    assert job.assets == [] and stored_files(studio) == []


def test_submit_video_queues_and_returns_at_once(studio) -> None:
    job = actions.submit_video(studio, "waves", params={"duration": 2, "size": "320x180"})
    assert job.status == JobStatus.QUEUED and job.provider_job_id is None
    assert job.params == {"duration": 2, "size": "320x180"}
    assert job.deadline_at is not None and job.next_poll_at is not None


def test_cancel_queued_video_and_refuse_cancelling_twice(studio) -> None:
    job = actions.submit_video(studio, "waves")
    canceled = actions.cancel_job(studio, job.id)
    assert canceled.status == JobStatus.CANCELED and canceled.attempt == job.attempt + 1
    assert canceled.finished_at is not None and canceled.error_message == "canceled by the user"
    with pytest.raises(Conflict, match="has already been canceled"):
        actions.cancel_job(studio, job.id)
    with pytest.raises(NotFound):
        actions.cancel_job(studio, "missing")


@pytest.mark.parametrize(
    ("status", "ended"),
    [
        ("succeeded", "has already succeeded"),
        ("failed", "has already failed"),
        ("canceled", "has already been canceled"),
        ("timed_out", "has already timed out"),
    ],
)
def test_cancelling_an_ended_job_says_how_it_ended(studio, status, ended) -> None:
    job = actions.submit_video(studio, "waves")
    with studio.db.write() as session:
        session.get(Job, job.id).status = status
    with pytest.raises(Conflict, match=f"^job {job.id} {ended}; only queued or running jobs can be canceled$"):
        actions.cancel_job(studio, job.id)


def test_retry_makes_a_linked_job_with_the_same_parameters(studio) -> None:
    old = actions.cancel_job(studio, actions.submit_video(studio, "waves", params={"duration": 3}).id)
    new = actions.retry_job(studio, old.id)
    assert new.id != old.id and new.retried_from == old.id
    assert (new.prompt, new.params, new.model) == (old.prompt, old.params, old.model)
    assert new.status == JobStatus.QUEUED
    assert queries.get_job(studio, old.id).status == JobStatus.CANCELED  # the old one keeps its outcome
    assert new.events[0].message == f"retry of {old.id}"


def test_retry_of_a_failed_image_runs_it_again(scripted, small_png) -> None:
    studio, provider = scripted
    provider.image_answer = ProviderError("server error", retryable=True)
    failed = actions.generate_image(studio, "x", model="scripted-image")
    provider.image_answer = ImageResult([MediaSource(data=small_png)])
    again = actions.retry_job(studio, failed.id)
    assert again.status == JobStatus.SUCCEEDED and again.retried_from == failed.id


def test_retry_refuses_active_or_succeeded_jobs(studio) -> None:
    queued = actions.submit_video(studio, "waves")
    with pytest.raises(Conflict, match="is queued"):
        actions.retry_job(studio, queued.id)


def test_list_jobs_filters_and_orders_newest_first(studio) -> None:
    first = actions.submit_video(studio, "one")
    second = actions.generate_image(studio, "two", params={"size": "256x256"})
    assert [j.id for j in queries.list_jobs(studio)] == [second.id, first.id]
    assert [j.id for j in queries.list_jobs(studio, kind="video")] == [first.id]
    assert [j.id for j in queries.list_jobs(studio, status="succeeded")] == [second.id]
    assert len(queries.list_jobs(studio, limit=1)) == 1
    with pytest.raises(InvalidInput, match="status"):
        queries.list_jobs(studio, status="done")
