"""Each real provider client against the loopback fake of its API: success paths through the CLI
and every error class ending in the right job state with the right message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from mediagen.config import Settings
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.providers.base import TaskState
from mediagen.studio import Studio
from mediagen.worker.sweep import tick

from ..conftest import stored_files
from ..support.fake_providers import FakeProviders, Reply

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


def _env(fake: FakeProviders) -> dict[str, str]:
    return fake.environment()


@pytest.fixture
def studio(fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    for name, value in _env(fake).items():
        monkeypatch.setenv(name, value)
    opened = Studio.open(
        Settings(
            data_dir=tmp_path / "data",
            public_base_url="http://127.0.0.1:9/cdn",
            poll_interval_s=0.05,
            provider_timeout_s=2.0,
        )
    )
    yield opened
    opened.close()


def _run_video(studio: Studio, job_id: str, limit_s: float = 30.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        tick(studio)
        job = queries.get_job(studio, job_id)
        if JobStatus(job.status).is_final:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job.status}")


def _cli(fake: FakeProviders, tmp_path: Path, *args: str) -> dict:
    env = {
        **os.environ,
        **_env(fake),
        "MEDIAGEN_DATA_DIR": str(tmp_path / "cli"),
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_POLL_INTERVAL_S": "0.1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mediagen", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _no_secret_anywhere(studio: Studio, fake: FakeProviders) -> None:
    with studio.db.engine.connect() as conn:
        dump = "\n".join(
            str(row)
            for table in ("jobs", "job_events", "assets")
            for row in conn.execute(text(f"select * from {table}"))
        )
    for secret in (fake.OPENAI_KEY, fake.MINIMAX_KEY, fake.REPLICATE_TOKEN):
        assert secret not in dump


# -- success paths through the CLI ----------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "count", "content_type"),
    [
        (["image", "an otter", "--model", "dall-e-3", "--size", "1024x1792"], 1, "image/png"),
        (["image", "an otter", "--model", "gpt-image-1", "--n", "2"], 2, "image/png"),
        (["image", "an otter", "--model", "fake/image-model", "--n", "2"], 2, "image/png"),
        (["video", "waves", "--model", "sora-2", "--duration", "8", "--wait"], 1, "video/mp4"),
        (["video", "waves", "--model", "MiniMax-Hailuo-02", "--duration", "6", "--wait"], 1, "video/mp4"),
        (["video", "waves", "--model", "fake/video-model", "--duration", "3", "--wait"], 1, "video/mp4"),
    ],
    ids=[
        "openai-dall-e-3",
        "openai-gpt-image-1",
        "replicate-image",
        "openai-sora-2",
        "minimax",
        "replicate-video",
    ],
)
def test_cli_success_paths(fake, tmp_path, args, count, content_type) -> None:
    job = _cli(fake, tmp_path, *args)
    assert job["status"] == "succeeded", job
    assert len(job["assets"]) == count
    for asset in job["assets"]:
        assert asset["content_type"] == content_type and asset["thumbnail_url"].endswith(".thumb.webp")
        stored = tmp_path / "cli" / "media" / asset["url"].split("/cdn/", 1)[1]
        assert stored.stat().st_size == asset["bytes"] > 0
    assert job["provider_job_id"] or job["kind"] == "image"


def test_openai_provenance_and_requests(studio, fake) -> None:
    job = actions.generate_image(studio, "an otter", model="dall-e-3", params={"quality": "hd"})
    assert job.status == JobStatus.SUCCEEDED
    assert job.revised_prompt == "revised: an otter" and job.provider_request_id.startswith("req_")
    [call] = fake.calls("openai.images")
    assert call.json == {
        "model": "dall-e-3",
        "prompt": "an otter",
        "n": 1,
        "size": "1024x1024",
        "quality": "hd",
        "style": "vivid",
        "response_format": "url",
    }
    assert call.headers["authorization"] == f"Bearer {fake.OPENAI_KEY}"
    # The image URL is a CDN link: our key must not travel with it.
    assert "authorization" not in fake.calls("media")[0].headers

    gpt = actions.generate_image(studio, "an otter", model="gpt-image-1")
    assert gpt.usage["total_tokens"] > 0


def test_openai_video_multipart_content_and_cancel(studio, fake) -> None:
    job = _run_video(studio, actions.submit_video(studio, "waves", model="sora-2-pro", params={"size": "1792x1024"}).id)
    assert job.status == JobStatus.SUCCEEDED and job.provider_request_id
    [create] = fake.calls("openai.videos.create")
    assert create.form == {"model": "sora-2-pro", "prompt": "waves", "seconds": "4", "size": "1792x1024"}
    assert create.headers["content-type"].startswith("multipart/form-data")
    variants = sorted(c.query.get("variant") for c in fake.calls("openai.videos.content"))
    assert variants == ["thumbnail", "video"]
    assert all(c.headers["authorization"] == f"Bearer {fake.OPENAI_KEY}" for c in fake.calls("openai.videos.content"))

    fake.openai_video_steps = [("in_progress", 10)]
    queued = actions.submit_video(studio, "to cancel", model="sora-2")
    tick(studio)
    actions.cancel_job(studio, queued.id)
    [delete] = fake.calls("openai.videos.delete")
    assert delete.path.endswith(queries.get_job(studio, queued.id).provider_job_id)


# -- errors users can act on ----------------------------------------------------------------
def _openai_error(status: int, message: str, code: str | None = None, **headers: str) -> Reply:
    return Reply(
        status,
        json={"error": {"message": message, "type": "x", "param": None, "code": code}},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("replies", "code", "phrase", "calls"),
    [
        (
            [_openai_error(429, "You exceeded your quota", "insufficient_quota")],
            "quota",
            "quota exhausted",
            1,
        ),
        (
            [_openai_error(400, "Your request was rejected by the safety system", "content_policy_violation")],
            "content_policy",
            "rejected by the safety system",
            1,
        ),
        (
            [Reply(400, json={"error": {"message": "Invalid size", "param": "size", "code": None}})],
            "bad_request",
            "Invalid size (field: size)",
            1,
        ),
        ([_openai_error(503, "overloaded")] * 3, "server_error", "overloaded", 3),
        (
            [Reply(200, json={"data": [{"b64_json": "not base64!!"}]})],
            "invalid_output",
            "not valid base64",
            1,
        ),
    ],
    ids=["quota", "content-policy", "bad-request", "5xx-burst", "malformed-output"],
)
def test_openai_image_errors(studio, fake, replies, code, phrase, calls) -> None:
    fake.script("openai.images", *replies)
    job = actions.generate_image(studio, "x", model="gpt-image-1")
    assert (job.status, job.error_code) == (JobStatus.FAILED, code)
    assert phrase in job.error_message
    assert len(fake.calls("openai.images")) == calls
    assert stored_files(studio) == []


def test_rejected_key_names_the_variable_and_never_leaks(studio, fake, monkeypatch) -> None:
    monkeypatch.setattr(fake, "OPENAI_KEY", "sk-the-real-one")  # the studio's key is now wrong
    job = actions.generate_image(studio, "x", model="dall-e-2")
    assert job.status == JobStatus.FAILED and job.error_code == "auth"
    assert job.error_message.startswith("OPENAI_API_KEY was rejected by OpenAI")
    _no_secret_anywhere(studio, fake)


def test_rate_limit_is_retried_after_retry_after_ms(studio, fake) -> None:
    fake.script(
        "openai.images",
        _openai_error(429, "Rate limit reached", "rate_limit_exceeded", **{"retry-after-ms": "300"}),
    )
    started = time.monotonic()
    job = actions.generate_image(studio, "x", model="dall-e-2")
    assert job.status == JobStatus.SUCCEEDED
    assert len(fake.calls("openai.images")) == 2 and time.monotonic() - started >= 0.3


def test_a_create_that_times_out_is_not_resent(studio, fake) -> None:
    fake.script("openai.images", Reply(delay_s=3.0))  # longer than provider_timeout_s
    job = actions.generate_image(studio, "x", model="dall-e-2")
    assert (job.status, job.error_code) == (JobStatus.FAILED, "outcome_unknown")
    assert "not sent again" in job.error_message
    assert len(fake.calls("openai.images")) == 1


@pytest.mark.parametrize("problem", ["not-media", "expired", "truncated"])
def test_bad_downloads_fail_cleanly(studio, fake, problem) -> None:
    if problem == "not-media":
        fake.image_output = b"<html>nope</html>"
    elif problem == "expired":
        fake.media_ttl_s = 0
    else:
        fake.script("media", Reply(truncate=True))
    job = actions.generate_image(studio, "x", model="dall-e-2")
    assert job.status == JobStatus.FAILED and job.error_message
    assert stored_files(studio) == []


def test_openai_video_failure_is_reported(studio, fake) -> None:
    fake.openai_video_steps = [("queued", 0), ("failed", 0)]
    job = _run_video(studio, actions.submit_video(studio, "x", model="sora-2").id)
    assert job.status == JobStatus.FAILED and job.error_message == "OpenAI: fake failure"


# -- MiniMax --------------------------------------------------------------------------------
def _minimax(code: int, message: str) -> Reply:
    return Reply(200, json={"task_id": "", "base_resp": {"status_code": code, "status_msg": message}})


def test_minimax_rate_limit_in_a_200_body_is_retried_later(studio, fake) -> None:
    fake.script("minimax.create", _minimax(1002, "rate limit exceeded"))
    job = actions.submit_video(studio, "x", model="MiniMax-Hailuo-02")
    tick(studio)
    waiting = queries.get_job(studio, job.id)
    assert waiting.status == JobStatus.QUEUED and waiting.transient_errors == 1
    assert "rate limit" in waiting.events[-1].message
    assert waiting.next_poll_at > waiting.events[-1].at
    with studio.db.write() as session:  # skip the backoff wait
        session.execute(text("update jobs set next_poll_at = created_at where id = :id"), {"id": job.id})
    assert _run_video(studio, job.id).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("code", "kind", "phrase"),
    [
        (1008, "quota", "balance is insufficient"),
        (1026, "content_policy", "content policy"),
        (1004, "auth", "MINIMAX_API_KEY was rejected"),
        (2013, "bad_request", "refused the parameters"),
    ],
)
def test_minimax_final_errors(studio, fake, code, kind, phrase) -> None:
    fake.script("minimax.create", _minimax(code, "provider says no"))
    job = _run_video(studio, actions.submit_video(studio, "x", model="T2V-01").id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, kind)
    assert phrase in job.error_message and "provider says no" in job.error_message


def test_minimax_success_without_file_id_is_not_final(studio, fake) -> None:
    fake.script(
        "minimax.query",
        Reply(
            200,
            json={
                "task_id": "1",
                "status": "Success",
                "file_id": "",
                "base_resp": {"status_code": 0, "status_msg": "ok"},
            },
        ),
    )
    job = _run_video(studio, actions.submit_video(studio, "x", model="MiniMax-Hailuo-2.3").id)
    assert job.status == JobStatus.SUCCEEDED
    download = fake.calls("media")[-1]
    assert "authorization" not in download.headers  # presigned link on another host


def test_minimax_cancel_is_local_and_says_so(studio, fake) -> None:
    fake.minimax_steps = ["Processing"]
    job = actions.submit_video(studio, "x", model="T2V-01")
    tick(studio)
    canceled = actions.cancel_job(studio, job.id)
    assert canceled.status == JobStatus.CANCELED
    assert "cannot cancel" in canceled.events[-1].message


# -- Replicate ------------------------------------------------------------------------------
def test_replicate_image_waits_and_records_headers(studio, fake) -> None:
    job = actions.generate_image(studio, "x", model="fake/image-model", params={"n": 2, "aspect_ratio": "16:9"})
    assert job.status == JobStatus.SUCCEEDED and len(job.assets) == 2
    [create] = fake.calls("replicate.create")
    assert create.headers["prefer"].startswith("wait") and create.headers["cancel-after"] == "300s"
    assert create.json == {"input": {"prompt": "x", "num_outputs": 2, "aspect_ratio": "16:9", "output_format": "webp"}}


def test_replicate_throttle_is_retried(studio, fake) -> None:
    fake.script(
        "replicate.create",
        Reply(429, json={"detail": "Request was throttled."}, headers={"retry-after": "0.2"}),
    )
    job = actions.generate_image(studio, "x", model="fake/image-model")
    assert job.status == JobStatus.SUCCEEDED and len(fake.calls("replicate.create")) == 2


def test_replicate_video_cancel_reaches_the_provider(studio, fake) -> None:
    fake.replicate_steps = ["processing"]
    job = actions.submit_video(studio, "x", model="fake/video-model")
    tick(studio)
    actions.cancel_job(studio, job.id)
    [cancel] = fake.calls("replicate.cancel")
    assert queries.get_job(studio, job.id).provider_job_id in cancel.path


def test_replicate_failed_prediction(studio, fake) -> None:
    fake.replicate_steps = ["starting", "failed"]
    job = _run_video(studio, actions.submit_video(studio, "x", model="fake/video-model").id)
    assert job.status == JobStatus.FAILED and job.error_message.startswith("Replicate:")


def test_a_video_create_that_times_out_is_not_resent(studio, fake) -> None:
    fake.script("openai.videos.create", Reply(delay_s=3.0))
    job = _run_video(studio, actions.submit_video(studio, "x", model="sora-2").id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "outcome_unknown")
    assert len(fake.calls("openai.videos.create")) == 1


def test_secrets_stay_out_of_logs(studio, fake, monkeypatch, caplog) -> None:
    caplog.set_level("DEBUG")
    monkeypatch.setattr(fake, "OPENAI_KEY", "sk-the-real-one")
    actions.generate_image(studio, "x", model="dall-e-2")
    fake.script("minimax.query", Reply(500, json={"base_resp": {"status_code": 1024, "status_msg": "internal"}}))
    _run_video(studio, actions.submit_video(studio, "x", model="T2V-01").id)
    assert caplog.text  # httpx and the poller did log
    for secret in (FakeProviders.OPENAI_KEY, fake.MINIMAX_KEY, fake.REPLICATE_TOKEN):
        assert secret not in caplog.text


def test_the_studio_pages_offer_every_configured_model(studio) -> None:
    from streamlit.testing.v1 import AppTest

    from mediagen import server

    server.use(studio)
    try:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        app.run()
        for page, kind, key in (
            ("pages/image_studio.py", "image", "image-model"),
            ("pages/video_studio.py", "video", "video-model"),
        ):
            app.switch_page(page).run()
            offered = app.selectbox(key=key).options
            assert offered == [m.label for m in studio.catalog.models(kind)]
            for spec in studio.catalog.models(kind):
                app.selectbox(key=key).set_value(spec.name).run()
                name = spec.name
                assert not app.exception, (name, app.exception)
    finally:
        server.use(None)


def test_concurrent_polls_keep_their_connections_alive(studio: Studio, fake: FakeProviders) -> None:
    """32 threads polling at once, three rounds: the provider sees no more connections than
    threads. (One httpx pool for every thread kept 20 alive and reopened the rest each round.)"""
    fake.route_delay_s["openai.videos.get"] = 0.05  # so the polls of a round overlap
    provider, spec = studio.provider("openai"), studio.catalog.get("sora-2")
    params = actions.validate(studio, JobKind.VIDEO, "clip", "sora-2", None).params
    task_ids = [provider.submit(spec, f"clip {i}", params).task_id for i in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in range(3):
            states = list(pool.map(lambda task_id: provider.poll(spec, task_id).state, task_ids))
            assert len(states) == 32 and TaskState.FAILED not in states
    polls = [r for r in fake.requests if r.route == "openai.videos.get"]
    assert len(polls) == 96
    assert len({r.peer for r in polls}) <= 32
