"""The CLI end to end: a real subprocess, a temp data dir, JSON on stdout."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
JOB_KEYS = {
    "id",
    "kind",
    "status",
    "model",
    "prompt",
    "params",
    "error",
    "created_at",
    "finished_at",
    "assets",
}
ASSET_KEYS = {"url", "thumbnail_url", "content_type", "bytes", "sha256", "width", "height", "duration_s"}


@pytest.fixture
def cli(tmp_path):
    ours = {
        "MEDIAGEN_DATA_DIR": str(tmp_path / "data"),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:8501/cdn",
        "MEDIAGEN_POLL_INTERVAL_S": "0.2",
        "PYTHONPATH": str(ROOT),
    }

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mediagen", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **ours},  # read at each call, so a test may set a variable first
            cwd=tmp_path,
            timeout=timeout,
        )

    run.media_dir = tmp_path / "data" / "media"  # type: ignore[attr-defined]
    return run


def test_image_prints_the_finished_job(cli) -> None:
    done = cli("image", "a lighthouse at dusk", "--size", "320x256", "--n", "2", "--seed", "3")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert set(job) >= JOB_KEYS and job["status"] == "succeeded" and job["error"] is None
    assert (job["kind"], job["model"], job["params"]) == (
        "image",
        "local-image",
        {"size": "320x256", "n": 2, "seed": 3},
    )
    assert len(job["assets"]) == 2
    for asset in job["assets"]:
        assert set(asset) == ASSET_KEYS
        assert (asset["width"], asset["height"], asset["content_type"]) == (320, 256, "image/png")
        stored = cli.media_dir / asset["url"].removeprefix("http://127.0.0.1:8501/cdn/")
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == asset["sha256"]
        assert stored.stat().st_size == asset["bytes"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", ""], "prompt: must not be empty"),
        (["image", "   "], "prompt: must not be empty"),
        (["image", "x" * 4001], "prompt: is 4,001 characters long (allowed: at most 4,000)"),
        (
            ["image", "x", "--size", "100x100"],
            "size: 100x100 is not allowed for this model (allowed: width 256–2048",
        ),
        (["image", "x", "--n", "5"], "n: 5 is out of range (allowed: 1–4)"),
        (["video", "x", "--duration", "11"], "duration: 11 is out of range (allowed: 1–10)"),
        (["video", "x", "--size", "1920x1080"], "size: 1920x1080 is not allowed"),
        (["image", "x", "--model", "nope"], "model: unknown image model 'nope' (allowed: local-image)"),
    ],
)
def test_invalid_input_exits_2_names_the_field_and_creates_no_job(cli, args, message) -> None:
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr
    listed = cli("jobs")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_video_wait_follows_the_job_to_the_end(cli) -> None:
    done = cli("video", "ocean waves", "--duration", "1", "--size", "192x108", "--wait")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["kind"] == "video" and job["model"] == "local-video"
    [asset] = job["assets"]
    assert (asset["content_type"], asset["width"], asset["height"]) == ("video/mp4", 192, 108)
    assert asset["duration_s"] == pytest.approx(1.0, abs=0.1)
    assert "succeeded 100%" in done.stderr


def test_video_queues_then_worker_finishes_it(cli) -> None:
    queued = json.loads(cli("video", "drifting clouds", "--duration", "1", "--size", "128x72").stdout)
    assert queued["status"] == "queued" and queued["assets"] == []
    # Each `worker --once` is a separate process, as from cron; the job must still finish.
    for _ in range(60):
        assert cli("worker", "--once").returncode == 0
        job = json.loads(cli("job", queued["id"]).stdout)
        if job["status"] in ("succeeded", "failed", "timed_out", "canceled"):
            break
    assert job["status"] == "succeeded", job
    assert job["events"][0]["status"] == "queued"
    assert job["events"][-1]["status"] == "succeeded"


def test_jobs_cancel_and_retry(cli) -> None:
    queued = json.loads(cli("video", "a fox", "--duration", "2").stdout)
    canceled = cli("cancel", queued["id"])
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["status"] == "canceled"
    again = cli("cancel", queued["id"])
    assert again.returncode == 2 and "already canceled" in again.stderr

    retried = cli("retry", queued["id"])
    assert retried.returncode == 0, retried.stderr
    new = json.loads(retried.stdout)
    assert new["retried_from"] == queued["id"] and new["params"] == queued["params"]

    listed = json.loads(cli("jobs", "--status", "canceled").stdout)
    assert [j["id"] for j in listed] == [queued["id"]]
    assert json.loads(cli("jobs", "--kind", "video", "--limit", "1").stdout)[0]["id"] == new["id"]
    missing = cli("job", "nope")
    assert missing.returncode == 2 and "no job with id 'nope'" in missing.stderr


def test_db_upgrade_rebuild_metrics_and_models(cli) -> None:
    assert cli("db", "upgrade").returncode == 0
    assert cli("image", "a cube", "--size", "256x256").returncode == 0
    rebuilt = cli("db", "rebuild-metrics")
    assert rebuilt.returncode == 0 and "recounted from 1 finished job(s)" in rebuilt.stderr
    models = json.loads(cli("models").stdout)
    assert {m["name"] for m in models} == {"local-image", "local-video"}


def test_bad_settings_are_reported_clearly(cli, monkeypatch) -> None:
    monkeypatch.setenv("MEDIAGEN_POLL_INTERVAL_S", "-1")
    done = subprocess.run(
        [sys.executable, "-m", "mediagen", "jobs"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2 and "poll_interval_s" in done.stderr


def test_download_converts_and_names_bad_choices(cli, tmp_path) -> None:
    job = json.loads(cli("image", "a fox", "--size", "256x256").stdout)
    done = cli("download", job["id"], "--format", "webp", "--output", str(tmp_path / "fox.webp"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["content_type"] == "image/webp" and (tmp_path / "fox.webp").read_bytes()[8:12] == b"WEBP"
    assert result["bytes"] == (tmp_path / "fox.webp").stat().st_size
    bad = cli("download", job["id"], "--format", "bmp")
    assert bad.returncode == 2 and "format: 'bmp' is not offered for images (allowed: png, jpeg, webp)" in bad.stderr
    wrong_index = cli("download", job["id"], "--index", "3")
    assert wrong_index.returncode == 2 and "index: 3 is out of range (allowed: 0–0)" in wrong_index.stderr


def test_an_internal_error_is_one_line_without_a_traceback(cli, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDIAGEN_DATA_DIR": str(tmp_path / "data")}
    env["MEDIAGEN_DATABASE_URL"] = f"sqlite:///{blocker}/mediagen.db"
    command = [sys.executable, "-m", "mediagen", "jobs"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith("error: internal error: ") and "--verbose" in done.stderr
    assert "Traceback" not in done.stderr
    verbose = subprocess.run(
        [sys.executable, "-m", "mediagen", "--verbose", "jobs"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert verbose.returncode == 3 and "Traceback" in verbose.stderr


def test_keys_are_made_shown_once_listed_without_secrets_and_revoked(cli) -> None:
    made = cli("keys", "create", "--user", "Ana@Example.com", "--name", "ci")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert set(key) == {"id", "key", "user", "name", "created_at"} and key["user"] == "ana@example.com"
    assert "only time" in made.stderr
    listed = cli("keys", "list")
    assert key["key"] not in listed.stdout
    [row] = json.loads(listed.stdout)
    assert row["id"] == key["id"] and row["revoked_at"] is None and row["last_used_at"] is None
    revoked = json.loads(cli("keys", "revoke", key["id"]).stdout)
    assert revoked["revoked_at"]
    missing = cli("keys", "revoke", "nope")
    assert missing.returncode == 2 and "no API key with id 'nope'" in missing.stderr
    assert cli("keys", "create", "--user", " ").returncode == 2


def test_model_aliases_are_listed_resolved_and_checked(cli, monkeypatch) -> None:
    monkeypatch.setenv("MEDIAGEN_MODEL_ALIASES", '{"dall-e-3": "local-image"}')
    models = {m["name"]: m for m in json.loads(cli("models").stdout)}
    assert models["local-image"]["aliases"] == ["dall-e-3"]
    made = cli("image", "an alias", "--model", "dall-e-3", "--size", "256x256")
    assert made.returncode == 0 and json.loads(made.stdout)["model"] == "local-image"
    monkeypatch.setenv("MEDIAGEN_MODEL_ALIASES", '{"local-image": "local-video"}')
    hiding = cli("models")
    assert hiding.returncode == 2 and "would hide the configured model 'local-image'" in hiding.stderr
    monkeypatch.setenv("MEDIAGEN_MODEL_ALIASES", '{"fast": "sora-2"}')
    dead = cli("models")
    assert dead.returncode == 2 and "'sora-2' is not configured here" in dead.stderr
    monkeypatch.delenv("MEDIAGEN_MODEL_ALIASES")
    unconfigured = cli("image", "x", "--model", "dall-e-3")
    assert unconfigured.returncode == 2 and "dall-e-3 needs OPENAI_API_KEY" in unconfigured.stderr
