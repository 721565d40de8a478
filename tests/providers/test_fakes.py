"""The loopback fake speaks each provider's API: plain httpx against it, with OpenAI's answers checked
against OpenAI's own OpenAPI description, so the provider tests built on it test something real."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from PIL import Image

from ..support.fake_providers import FakeProviders, Reply

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing: the shared specs must sit beside the repository")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open() as handle:
        return yaml.load(handle, Loader=loader)["components"]


def _conforms(components: dict[str, Any], schema: str, instance: Any) -> None:
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, f"{schema}: {errors}"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


def _client(key: str) -> httpx.Client:
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=5)


@pytest.fixture
def openai(fake: FakeProviders) -> Iterator[httpx.Client]:
    with _client(fake.OPENAI_KEY) as client:
        yield client


def test_media_is_real(fake: FakeProviders) -> None:
    assert Image.open(io.BytesIO(fake.png)).size == (256, 256)
    with av.open(io.BytesIO(fake.mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.frames) == (160, 96, 12)


def test_openai_images_gpt_image_and_dalle(fake: FakeProviders, openai: httpx.Client, components) -> None:
    url = f"{fake.openai_base}/images/generations"
    answer = openai.post(url, json={"model": "gpt-image-1", "prompt": "a fox", "n": 2})
    assert answer.status_code == 200 and answer.headers["x-request-id"].startswith("req_")
    body = answer.json()
    _conforms(components, "ImagesResponse", body)
    assert [base64.b64decode(item["b64_json"]) for item in body["data"]] == [fake.png, fake.png]
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + body["usage"]["output_tokens"]

    body = openai.post(url, json={"model": "dall-e-3", "prompt": "a fox"}).json()
    _conforms(components, "ImagesResponse", body)
    [item] = body["data"]
    assert item["revised_prompt"] == "revised: a fox" and "usage" not in body
    # A result URL is fetched without the key, as a browser or CDN would.
    download = httpx.get(item["url"])
    assert download.content == fake.png and download.headers["content-type"] == "image/png"
    assert "authorization" not in fake.calls("media")[0].headers

    body = openai.post(url, json={"model": "dall-e-2", "prompt": "x", "response_format": "b64_json"}).json()
    assert base64.b64decode(body["data"][0]["b64_json"]) == fake.png
    assert [c.json["model"] for c in fake.calls("openai.images")] == ["gpt-image-1", "dall-e-3", "dall-e-2"]


def test_openai_video_lifecycle(fake: FakeProviders, openai: httpx.Client, components) -> None:
    form = {"prompt": "waves", "model": "sora-2", "seconds": "4", "size": "1280x720"}
    created = openai.post(f"{fake.openai_base}/videos", files={k: (None, v) for k, v in form.items()})
    video = created.json()
    _conforms(components, "VideoResource", video)
    assert (video["status"], video["progress"], video["object"]) == ("queued", 0, "video")
    assert video["id"].startswith("video_") and created.headers["x-request-id"].startswith("req_")
    [call] = fake.calls("openai.videos.create")
    assert call.form == form and call.headers["content-type"].startswith("multipart/form-data")

    video_url = f"{fake.openai_base}/videos/{video['id']}"
    assert openai.get(f"{video_url}/content").status_code == 404  # not finished yet
    seen = []
    for _ in range(4):  # one step per poll; the last repeats
        polled = openai.get(video_url)
        assert polled.headers["openai-poll-after-ms"] == "50"
        _conforms(components, "VideoResource", polled.json())
        seen.append((polled.json()["status"], polled.json()["progress"]))
    assert seen == [*fake.openai_video_steps, fake.openai_video_steps[-1]]

    content = openai.get(f"{video_url}/content", params={"variant": "video"})
    assert content.content == fake.mp4 and content.headers["content-type"] == "video/mp4"
    thumbnail = openai.get(f"{video_url}/content", params={"variant": "thumbnail"})
    assert thumbnail.content.startswith(PNG_MAGIC) and thumbnail.headers["content-type"] == "image/png"
    assert httpx.get(f"{video_url}/content").status_code == 401  # content needs the key too

    deleted = openai.delete(video_url)
    _conforms(components, "DeletedVideoResource", deleted.json())
    assert fake.calls("openai.videos.delete")[0].path.endswith(video["id"])
    missing = openai.get(video_url)
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_openai_failed_video_carries_an_error(fake: FakeProviders, openai: httpx.Client, components) -> None:
    fake.openai_video_steps = [("failed", 0)]
    video = openai.post(f"{fake.openai_base}/videos", files={"prompt": (None, "x")}).json()
    failed = openai.get(f"{fake.openai_base}/videos/{video['id']}").json()
    _conforms(components, "VideoResource", failed)
    assert failed["error"] == {"code": "video_generation_failed", "message": "fake failure"}


def test_minimax_video(fake: FakeProviders) -> None:
    with _client(fake.MINIMAX_KEY) as client:
        created = client.post(f"{fake.minimax_base}/v1/video_generation", json={"model": "T2V-01", "prompt": "x"})
        task_id = created.json()["task_id"]
        assert task_id.isdigit() and created.json()["base_resp"] == {"status_code": 0, "status_msg": "success"}
        polls = [
            client.get(f"{fake.minimax_base}/v1/query/video_generation", params={"task_id": task_id}).json()
            for _ in fake.minimax_steps
        ]
        assert [p["status"] for p in polls] == fake.minimax_steps
        assert "file_id" not in polls[-2] and polls[-1]["file_id"].isdigit()
        assert (polls[-1]["video_width"], polls[-1]["video_height"]) == (160, 96)
        retrieved = client.get(f"{fake.minimax_base}/v1/files/retrieve", params={"file_id": polls[-1]["file_id"]})
        file = retrieved.json()["file"]
        assert (file["filename"], file["bytes"], file["purpose"]) == ("output.mp4", len(fake.mp4), "video_generation")
    assert httpx.get(file["download_url"]).content == fake.mp4
    assert fake.calls("minimax.create")[0].json == {"model": "T2V-01", "prompt": "x"}


def test_replicate_predictions(fake: FakeProviders) -> None:
    with _client(fake.REPLICATE_TOKEN) as client:
        create = f"{fake.replicate_base}/v1/models/black-forest-labs/flux-schnell/predictions"
        started = client.post(create, json={"input": {"prompt": "x", "num_outputs": 2}}, headers={"Cancel-After": "5m"})
        prediction = started.json()
        assert started.status_code == 201 and prediction["status"] == "starting" and prediction["output"] is None
        assert prediction["model"] == "black-forest-labs/flux-schnell"
        assert fake.calls("replicate.create")[0].headers["cancel-after"] == "5m"
        statuses = [client.get(prediction["urls"]["get"]).json() for _ in fake.replicate_steps]
        assert [p["status"] for p in statuses] == fake.replicate_steps
        done = statuses[-1]
        assert done["metrics"] == {"predict_time": 1.2} and done["completed_at"] and len(done["output"]) == 2
        assert [httpx.get(url).content for url in done["output"]] == [fake.png, fake.png]

        # Prefer: wait answers with the finished prediction; a video model gives one URL, not a list.
        waited = client.post(
            f"{fake.replicate_base}/v1/models/fake/video-model/predictions",
            json={"input": {"prompt": "x"}},
            headers={"Prefer": "wait=60"},
        ).json()
        assert waited["status"] == "succeeded" and isinstance(waited["output"], str)
        assert httpx.get(waited["output"]).content == fake.mp4
        assert fake.calls("replicate.create")[1].headers["prefer"] == "wait=60"

        canceled = client.post(prediction["urls"]["cancel"])
        assert canceled.json()["status"] == "canceled" and len(fake.calls("replicate.cancel")) == 1


def test_each_provider_refuses_a_wrong_key_in_its_own_way(fake: FakeProviders) -> None:
    wrong = {"Authorization": "Bearer nope"}
    openai = httpx.post(f"{fake.openai_base}/images/generations", json={"prompt": "x"}, headers=wrong)
    assert openai.status_code == 401 and openai.json()["error"]["code"] == "invalid_api_key"
    minimax = httpx.post(f"{fake.minimax_base}/v1/video_generation", json={"prompt": "x"})
    assert minimax.status_code == 200 and minimax.json()["base_resp"]["status_code"] == 1004
    replicate = httpx.get(f"{fake.replicate_base}/v1/predictions/abc", headers=wrong)
    assert replicate.status_code == 401 and replicate.json()["title"] == "Unauthenticated"
    assert [r.route for r in fake.requests] == ["openai.images", "minimax.create", "replicate.get"]


def test_scripted_replies_come_first_then_the_default(fake: FakeProviders, openai: httpx.Client) -> None:
    throttled = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": None}}
    fake.script(
        "openai.images",
        Reply(429, json=throttled, headers={"retry-after-ms": "50"}),
        Reply(delay_s=0.5, headers={"x-extra": "yes"}),  # default answer, late and with an extra header
    )
    url = f"{fake.openai_base}/images/generations"
    first = openai.post(url, json={"model": "gpt-image-1", "prompt": "x"})
    assert (first.status_code, first.json(), first.headers["retry-after-ms"]) == (429, throttled, "50")
    with pytest.raises(httpx.ReadTimeout):
        openai.post(url, json={"model": "gpt-image-1", "prompt": "x"}, timeout=0.2)
    fake.script("openai.images", Reply(delay_s=0.2, headers={"x-extra": "yes"}))
    late = openai.post(url, json={"model": "gpt-image-1", "prompt": "x"})
    assert late.status_code == 200 and late.headers["x-extra"] == "yes" and late.json()["data"]
    assert openai.post(url, json={"model": "gpt-image-1", "prompt": "x"}).headers.get("x-extra") is None
    assert len(fake.calls("openai.images")) == 4


def test_download_urls_expire_and_can_break(fake: FakeProviders, openai: httpx.Client) -> None:
    body = openai.post(f"{fake.openai_base}/images/generations", json={"model": "dall-e-2", "prompt": "x"}).json()
    link = body["data"][0]["url"]
    fake.script("media", Reply(truncate=True))
    with pytest.raises(httpx.TransportError):  # the length promised everything; half came
        httpx.get(link)
    fake.image_output = b"not an image"
    assert httpx.get(link).content == b"not an image"
    fake.media_ttl_s = 0
    expired = httpx.get(link)
    assert (expired.status_code, expired.text) == (403, "Request has expired")


def test_reference_image_routes(fake: FakeProviders, components: dict[str, Any]) -> None:
    """Edits want an image and answer like generations; MiniMax's I2V models want a first frame;
    Replicate keeps an uploaded file and gives a URL for it."""
    with _client(fake.OPENAI_KEY) as openai:
        edit = {"prompt": (None, "a hat"), "model": (None, "gpt-image-1"), "n": (None, "2")}
        missing = openai.post(f"{fake.openai_base}/images/edits", files=edit)
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "image"
        edited = openai.post(
            f"{fake.openai_base}/images/edits", files=edit | {"image": ("cat.png", fake.png, "image/png")}
        )
        _conforms(components, "ImagesResponse", edited.json())
        assert len(edited.json()["data"]) == 2
    assert fake.calls("openai.images.edits")[-1].files["image"].data == fake.png
    with _client(fake.MINIMAX_KEY) as minimax:
        refused = minimax.post(f"{fake.minimax_base}/v1/video_generation", json={"model": "I2V-01", "prompt": "x"})
        assert refused.json()["base_resp"]["status_code"] == 2013
    with _client(fake.REPLICATE_TOKEN) as replicate:
        stored = replicate.post(
            f"{fake.replicate_base}/v1/files", files={"content": ("cat.png", fake.png, "image/png")}
        )
        assert stored.status_code == 201 and stored.json()["urls"]["get"].startswith(fake.replicate_base)
        assert stored.json()["size"] == len(fake.png) and stored.json()["content_type"] == "image/png"
