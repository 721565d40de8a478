"""``python -m mediagen compare`` end to end: a real subprocess, a temp data dir, the remote model
served by the loopback fake OpenAI."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from .support.fake_providers import FakeProviders, Reply
from .test_cli import cli  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e
REFUSED = Reply(
    400,
    json={
        "error": {
            "message": "Your request was rejected by our safety system.",
            "type": "invalid_request_error",
            "param": None,
            "code": "content_policy_violation",
        }
    },
)


def test_all_columns_succeed_exit_0_with_the_group_and_its_jobs(cli) -> None:  # noqa: F811
    done = cli("compare", "a red kite", "--model", "local-image", "--model", "local-image seed=7", "--size", "256x256")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"group_id", "jobs"}
    jobs = printed["jobs"]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    assert [j["params"].get("seed") for j in jobs] == [None, 7]
    assert all(j["params"]["size"] == "256x256" and len(j["assets"]) == 1 for j in jobs)
    assert all(j["prompt"] == "a red kite" for j in jobs)


def test_one_failing_model_exits_1_and_the_others_are_stored(cli, monkeypatch) -> None:  # noqa: F811
    with FakeProviders() as fake:
        for name, value in fake.environment().items():
            monkeypatch.setenv(name, value)
        fake.script("openai.images", REFUSED)
        done = cli(
            "compare",
            "a lighthouse",
            "--model",
            "local-image seed=1",
            "--model",
            "dall-e-2",
            "--model",
            "local-image seed=2",
            "--size",
            "256x256",
        )
    assert done.returncode == 1, done.stderr
    jobs = json.loads(done.stdout)["jobs"]
    assert [(j["model"], j["status"]) for j in jobs] == [
        ("local-image", "succeeded"),
        ("dall-e-2", "failed"),
        ("local-image", "succeeded"),
    ]
    assert "safety system" in jobs[1]["error"]
    assert "column 1 (dall-e-2)" in done.stderr and "safety system" in done.stderr
    for job in (jobs[0], jobs[2]):
        stored = cli.media_dir / job["assets"][0]["url"].removeprefix("http://127.0.0.1:8501/cdn/")
        assert stored.stat().st_size == job["assets"][0]["bytes"]
    listed = json.loads(cli("jobs").stdout)
    assert len(listed) == 3  # every column is kept, the failed one with its reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "local-image"], "columns: 1 given (allowed: 2–6 columns)"),
        (["--model", "local-image", "--model", "dall-e-9"], "columns[1].model: unknown image model 'dall-e-9'"),
        (["--model", "local-image", "--model", "local-image colour=red"], "columns[1].params.colour"),
        (["--model", "local-image", "--model", "local-image seed"], "columns[1].params: 'seed' is not NAME=VALUE"),
        (["--model", "local-image", "--model", "local-video"], "columns[1].model: local-video makes videos"),
        (["--model", "local-image", "--model", "local-image", "-p", "colour=red"], "params.colour"),
    ],
)
def test_a_refused_group_exits_2_names_the_field_and_makes_nothing(cli, args, message) -> None:  # noqa: F811
    done = cli("compare", "a kite", *args, "--size", "256x256")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert json.loads(cli("jobs").stdout) == []


def test_video_columns_print_queued_jobs_or_with_wait_the_finished_ones(cli) -> None:  # noqa: F811
    base = ["compare", "waves", "--kind", "video", "--model", "local-video", "--model", "local-video seed=3"]
    queued = cli(*base, "--duration", "1", "--size", "640x360")
    assert queued.returncode == 0, queued.stderr
    assert [j["status"] for j in json.loads(queued.stdout)["jobs"]] == ["queued", "queued"]
    waited = cli(*base, "--duration", "1", "--size", "640x360", "--wait")
    assert waited.returncode == 0, waited.stderr
    jobs = json.loads(waited.stdout)["jobs"]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    assert all(j["assets"][0]["content_type"] == "video/mp4" for j in jobs)


def test_image_gives_every_column_the_same_picture_to_start_from(cli, tmp_path) -> None:  # noqa: F811
    picture = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(picture)
    args = ["compare", "make it blue", "--model", "local-image", "--model", "local-image seed=4"]
    done = cli(*args, "--size", "256x256", "--image", str(picture))
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)["jobs"]
    inputs = [job["inputs"] for job in jobs]
    assert [len(i) for i in inputs] == [1, 1]
    assert all((i[0]["width"], i[0]["height"], i[0]["origin"]) == (300, 200, inputs[0][0]["origin"]) for i in inputs)
    missing = cli(*args, "--image", str(tmp_path / "nowhere.png"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: image"), missing.stderr
    assert len(json.loads(cli("jobs").stdout)) == 2  # the refused group made nothing
