"""The API as its users call it, against `streamlit run app.py`: the official `openai` SDK on
every /v1 endpoint, the seed's curl recipes as written (port 8501's place taken by the test's),
and schemathesis over /api/openapi.json."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from ..support.servers import AppServer, app_server

# OpenAI retired its own Sora API; the SDK warns on every video call, and gateways (and we) keep the shape.
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]
ROOT = Path(__file__).resolve().parents[2]
ALIASES = {"dall-e-3": "local-image", "sora-2": "local-video"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("api"), model_aliases=json.dumps(ALIASES)) as running:
        yield running


def _cli(server: AppServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediagen", *args], capture_output=True, text=True, env=server.env, cwd=ROOT, timeout=60
    )


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    made = _cli(server, "keys", "create", "--user", "sdk@example.com", "--name", "sdk test")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("mg_") and key["user"] == "sdk@example.com"
    listed = _cli(server, "keys", "list")
    assert key["key"] not in listed.stdout and key["id"] in listed.stdout
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key["key"], max_retries=0)


def test_the_official_sdk_drives_every_v1_endpoint(client, server) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert {"local-image", "local-video", "dall-e-3", "sora-2"} <= set(models) and models["dall-e-3"] == "local"

    images = client.images.generate(model="dall-e-3", prompt="a lighthouse at dusk", size="256x256", n=2)
    assert len(images.data) == 2 and all(i.url and i.url.startswith(server.base + "/cdn/") for i in images.data)
    inline = client.images.generate(
        model="local-image", prompt="a lighthouse", size="256x256", response_format="b64_json"
    )
    assert inline.data[0].b64_json

    video = client.videos.create(model="sora-2", prompt="waves on a shore", seconds="1", size="160x90")  # multipart
    assert video.status == "queued" and video.seconds == "1" and video.model == "local-video"
    done = client.videos.create_and_poll(model="local-video", prompt="a slow dawn", seconds="1", size="160x90")
    assert done.status == "completed" and done.progress == 100 and done.completed_at
    content = client.videos.download_content(done.id)
    assert content.content[4:8] == b"ftyp"
    thumbnail = client.videos.download_content(done.id, variant="thumbnail")
    assert thumbnail.content[8:12] == b"WEBP"
    assert client.videos.retrieve(video.id).id == video.id

    first = client.videos.list(limit=1)
    assert len(first.data) == 1 and first.has_more
    every = [v.id for v in client.videos.list(limit=1, order="asc")]  # the SDK follows the cursor
    assert every == [video.id, done.id]

    deleted = client.videos.delete(done.id)
    assert deleted.deleted and deleted.id == done.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(done.id)


def test_the_sdk_raises_its_own_exception_classes(client, server) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gpt-image-1", prompt="x")
    assert "OPENAI_API_KEY" in refused.value.message and refused.value.param == "model"
    with pytest.raises(openai.BadRequestError):
        client.videos.create(model="local-video", prompt="x", size="7x7")  # type: ignore[arg-type]
    canceled = client.videos.create(model="local-video", prompt="to cancel", seconds="1", size="160x90")
    assert httpx.delete(f"{server.base}/api/videos/tasks/{canceled.id}").status_code == 204
    assert client.videos.retrieve(canceled.id).error.code == "canceled"
    with pytest.raises(openai.ConflictError):
        client.videos.download_content(canceled.id)
    bad = openai.OpenAI(base_url=f"{server.base}/v1", api_key="mg_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def _png(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def _job_of(server: AppServer, media_url: str) -> dict[str, Any]:
    """The job a stored file belongs to (its key ends in ``{job_id}-{index}.{ext}``), as the CLI shows it."""
    job_id = media_url.rsplit("/", 1)[-1].split("-", 1)[0]
    shown = _cli(server, "job", job_id)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_the_sdk_edits_an_image_and_starts_a_video_from_one(client, server) -> None:
    photo = _png((320, 240), (200, 60, 30))
    mask = _png((320, 240), (0, 0, 0, 0), "RGBA")
    edited = client.images.edit(
        model="dall-e-3",
        image=("photo.png", photo, "image/png"),
        mask=("mask.png", mask),
        prompt="at dusk",
        size="256x256",
    )
    url = edited.data[0].url
    assert url and url.startswith(server.base + "/cdn/") and httpx.get(url).content[1:4] == b"PNG"
    job = _job_of(server, url)
    assert job["status"] == "succeeded" and job["model"] == "local-image"
    kept = {i["role"]: i for i in job["inputs"]}
    assert kept["image"]["origin"] == "upload photo.png" and (kept["image"]["width"], kept["image"]["height"]) == (
        320,
        240,
    )
    assert httpx.get(kept["image"]["url"]).content == photo and kept["mask"]["bytes"] == len(mask)

    frame = _png((160, 90), (20, 90, 200))
    video = client.videos.create_and_poll(
        model="sora-2",
        prompt="the tide comes in",
        seconds="1",
        size="160x90",
        input_reference=("tide.png", frame, "image/png"),
    )
    assert video.status == "completed", video.error
    shown = json.loads(_cli(server, "job", video.id).stdout)
    (first_frame,) = shown["inputs"]
    assert first_frame["origin"] == "upload tide.png" and httpx.get(first_frame["url"]).content == frame
    assert client.videos.download_content(video.id).content[4:8] == b"ftyp"


def test_the_sdk_gets_refusals_naming_the_reference_field(client) -> None:
    with pytest.raises(openai.BadRequestError) as not_image:
        client.images.edit(model="local-image", image=("notes.png", b"plain text, not a picture"), prompt="x")
    assert not_image.value.param == "image"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.images.edit(
            model="local-image", image=[("a.png", _png((64, 64), (1, 2, 3))), ("b.png", b"x")], prompt="x"
        )
    assert too_many.value.param == "image" and "a second one" in too_many.value.message
    with pytest.raises(openai.APIStatusError) as too_big:
        client.images.edit(
            model="local-image", image=("big.png", _png((64, 64), (1, 2, 3)) + bytes(21 * 1024 * 1024)), prompt="x"
        )
    assert too_big.value.status_code == 413 and too_big.value.body["param"] == "image"
    with pytest.raises(openai.BadRequestError) as no_image_model:
        client.videos.create(model="local-video", prompt="x", input_reference=("a.txt", b"hello"))  # not an image
    assert no_image_model.value.param == "input_reference"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seeds_curl_recipes_work_as_written(server) -> None:
    """The three recipes, as the README gives them, with the test server's port."""
    curl = ["curl", "-sS", "--fail-with-body"]
    image = subprocess.run(
        [
            *curl,
            "-X",
            "POST",
            f"{server.base}/api/images/generate",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"prompt": "A beautiful sunset over mountains", "model": "dall-e-3", "size": "1024x1024", "n": 1}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    made = json.loads(image.stdout)
    assert made["data"][0]["url"].startswith(server.base + "/cdn/") and made["job_id"]
    assert httpx.get(made["data"][0]["url"]).headers["content-type"] == "image/png"

    video = subprocess.run(
        [
            *curl,
            "-X",
            "POST",
            f"{server.base}/api/videos/generate",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"prompt": "A cat playing with a ball of yarn", "model": "sora-2", "duration": 4}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    task = json.loads(video.stdout)
    assert task["status"] == "queued"
    deadline = time.monotonic() + 240
    while True:
        status = subprocess.run(
            [*curl, f"{server.base}/api/videos/tasks/{task['task_id']}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        state = json.loads(status.stdout)
        assert state["status"] in {"queued", "processing", "completed"}, state
        if state["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert state["status"] == "completed", state
    assert state["result"]["duration"] == pytest.approx(4, abs=0.2) and state["result"]["video_url"].endswith(".mp4")


def test_schemathesis_finds_no_server_errors_and_no_answer_off_its_schema(server, tmp_path) -> None:
    """Every operation of /api/openapi.json with generated input (bounded), checked for 5xx and
    for answers that do not match what the document states."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.base}/api/openapi.json",
            "--url",
            server.base,
            "--max-examples",
            "12",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--generation-deterministic",
            "--request-timeout",
            "60",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
