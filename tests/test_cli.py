"""The CLI end to end: a real subprocess, a temp data dir, JSON on stdout."""

from __future__ import annotations

import hashlib
import json
import os
import signal
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
    run.env = ours  # type: ignore[attr-defined]
    return run


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing CLI call leaves on stderr (no traceback, nothing on stdout)."""
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


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
    assert again.returncode == 2
    assert f"job {queued['id']} has already been canceled; only queued or running" in _one_line_error(again)

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
    assert done.returncode == 2
    assert "error: invalid settings: MEDIAGEN_POLL_INTERVAL_S: Input should be greater than 0" in _one_line_error(done)


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
    assert done.returncode == 3
    line = _one_line_error(done)
    assert line.startswith("error: internal error: ") and line.endswith("(run again with --verbose for the traceback)")
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


def test_jobs_with_webhooks_are_shown_everywhere_and_a_closed_pipe_ends_quietly(cli, monkeypatch, tmp_path) -> None:
    """`jobs | head` on jobs carrying webhook URLs: every command that shows a job renders their
    deliveries, and a reader that leaves early ends the CLI as it ends `yes | head`: quietly."""
    monkeypatch.setenv("MEDIAGEN_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.setenv("MEDIAGEN_OUTBOUND_ALLOW", '["127.0.0.1"]')
    hook = ["--webhook-url", "http://127.0.0.1:9/hook"]  # nothing listens: each delivery is refused
    done = json.loads(cli("video", "waves", "--duration", "1", "--size", "128x72", "--wait", *hook).stdout)
    queued = json.loads(cli("video", "a fox", "--duration", "1", *hook).stdout)
    canceled = cli("cancel", queued["id"])
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["webhooks"][0]["event"] == "job.canceled"
    retried = cli("retry", queued["id"])
    assert retried.returncode == 0 and json.loads(retried.stdout)["webhook_url"] == "http://127.0.0.1:9/hook"
    shown = json.loads(cli("job", done["id"]).stdout)
    assert shown["webhooks"][0]["event"] == "job.succeeded" and shown["events"]
    listed = cli("jobs")
    assert listed.returncode == 0, listed.stderr
    assert {j["id"]: j["webhooks"] for j in json.loads(listed.stdout)}[done["id"]] == shown["webhooks"]

    reader, writer = os.pipe()
    os.close(reader)  # the reader (`head`) has gone before the first line is written
    try:
        gone = subprocess.run(
            [sys.executable, "-m", "mediagen", "jobs"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **cli.env},
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert (gone.returncode, gone.stderr) == (141, "")  # 128 + SIGPIPE, what a shell reports for `yes | head`


def test_worker_once_logs_nothing_at_info_unless_the_database_was_upgraded(cli, tmp_path) -> None:
    first = cli("worker", "--once")
    assert first.returncode == 0, first.stderr
    database = tmp_path / "data" / "mediagen.db"
    assert first.stderr.splitlines() == [line for line in first.stderr.splitlines() if "alembic" not in line]
    [created] = first.stderr.splitlines()
    assert f"INFO mediagen.db.engine: created the database {database} at revision 0010" in created

    again = cli("worker", "--once")
    assert again.returncode == 0 and again.stderr == ""

    from mediagen.db.engine import make_engine, upgrade

    older = make_engine(f"sqlite:///{tmp_path / 'older.db'}")
    upgrade(older, "0007")
    older.dispose()
    database.unlink()
    (tmp_path / "older.db").rename(database)
    upgraded = cli("worker", "--once")
    assert upgraded.returncode == 0
    [line] = upgraded.stderr.splitlines()
    assert f"INFO mediagen.db.engine: upgraded the database {database} from revision 0007 to 0010" in line
    told = cli("db", "upgrade")
    assert told.stderr == f"the database {database} is at revision 0010, the latest\n"


def test_a_database_deleted_beside_earlier_media_is_refused_not_started_afresh(cli, tmp_path) -> None:
    assert cli("image", "a lighthouse", "--size", "256x256").returncode == 0
    database = tmp_path / "data" / "mediagen.db"
    for leftover in (database, database.with_name("mediagen.db-wal"), database.with_name("mediagen.db-shm")):
        leftover.unlink(missing_ok=True)

    for command in (["jobs"], ["video", "queued where nobody looks"], ["worker", "--once"]):
        refused = cli(*command)
        assert refused.returncode == 2
        line = _one_line_error(refused)
        assert f"the database {database} is missing, but {tmp_path / 'data' / 'media'} holds media" in line
        assert "Restore it" in line and "MEDIAGEN_DATA_DIR" in line and "python -m mediagen db create" in line
        assert not database.exists()

    made = cli("db", "create")
    assert made.returncode == 0, made.stderr
    assert made.stderr == f"created the database {database} at revision 0010\n"
    assert json.loads(cli("jobs").stdout) == []


def test_download_into_a_missing_folder_or_a_folder_or_a_file_is_told_in_one_line(cli, tmp_path) -> None:
    job = json.loads(cli("image", "a fox", "--size", "256x256").stdout)
    missing = cli("download", job["id"], "-o", str(tmp_path / "nowhere" / "fox.png"))
    assert missing.returncode == 2
    assert f"output: the folder {tmp_path / 'nowhere'} does not exist" in _one_line_error(missing)
    (tmp_path / "a-file").write_text("not a folder")
    under_a_file = cli("download", job["id"], "-o", str(tmp_path / "a-file" / "fox.png"))
    assert under_a_file.returncode == 2
    assert f"output: {tmp_path / 'a-file'} is not a folder" in _one_line_error(under_a_file)
    full = cli("download", job["id"], "-o", "/dev/full")  # every write fails as on a full disk
    assert full.returncode == 1
    assert _one_line_error(full) == "error: could not write /dev/full: No space left on device"
    assert list(tmp_path.glob("**/*.part")) == []

    # Onto a folder: into it, under the stored name, as `cp` does.
    (tmp_path / "downloads").mkdir()
    into = cli("download", job["id"], "-o", str(tmp_path / "downloads"))
    assert into.returncode == 0, into.stderr
    saved = Path(json.loads(into.stdout)["path"])
    assert saved.parent == tmp_path / "downloads" and saved.suffix == ".png"
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_corrupt_database_file_is_named_in_one_line(cli, tmp_path) -> None:
    database = tmp_path / "data" / "mediagen.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(bytes(range(256)) * 64)  # 16 KiB of garbage where the database should be
    for command in (["jobs"], ["worker", "--once"], ["db", "upgrade"]):
        broken = cli(*command)
        assert broken.returncode == 1
        line = _one_line_error(broken)
        assert f"the database {database} is not a SQLite database, or is damaged" in line
        assert "restore it from a backup" in line


def test_formats_are_case_insensitive_and_ended_jobs_say_how_they_ended(cli, tmp_path) -> None:
    job = json.loads(cli("image", "a fox", "--size", "256x256").stdout)
    done = cli("download", job["id"], "--format", "WEBP", "-o", str(tmp_path / "fox.webp"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["content_type"] == "image/webp"
    finished = cli("cancel", job["id"])
    assert finished.returncode == 2
    assert f"job {job['id']} has already succeeded; only queued or running jobs" in _one_line_error(finished)
    again = cli("retry", job["id"])
    assert again.returncode == 2
    assert f"job {job['id']} has succeeded; only failed, canceled or timed-out jobs" in _one_line_error(again)


def test_ctrl_c_while_waiting_is_one_line_and_the_job_goes_on(cli, tmp_path) -> None:
    env = {**os.environ, **cli.env}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "mediagen", "video", "a long one", "--duration", "10", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert waiting.stderr is not None
    first = waiting.stderr.readline()  # "<id>: queued 0%": the job exists and is being followed
    job_id = first.split(":", 1)[0]
    waiting.send_signal(signal.SIGINT)
    out, rest = waiting.communicate(timeout=60)
    assert waiting.returncode == 130 and out == ""
    assert "Traceback" not in rest
    assert rest.splitlines()[-1] == (
        f"error: interrupted; job {job_id} is left to the workers (python -m mediagen job {job_id} shows how it goes)"
    )
    assert json.loads(cli("job", job_id).stdout)["status"] in ("queued", "running", "succeeded")


def test_without_a_running_studio_the_cli_says_once_where_its_urls_point(tmp_path) -> None:
    """No app serves this data dir and MEDIAGEN_PUBLIC_BASE_URL is unset: the URLs printed assume
    the default address, and one warning says so (two images, four URLs, one line)."""
    env = {**os.environ, "MEDIAGEN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("MEDIAGEN_PUBLIC_BASE_URL", None)
    command = [sys.executable, "-m", "mediagen", "image", "unserved", "--size", "256x256", "--n", "2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [a["url"].startswith("http://127.0.0.1:8501/cdn/") for a in json.loads(done.stdout)["assets"]] == [True] * 2
    [warning] = done.stderr.splitlines()
    assert f"no running studio serves the media of {tmp_path / 'data'} (start it with make run)" in warning
    assert "set MEDIAGEN_PUBLIC_BASE_URL" in warning
