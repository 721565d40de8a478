"""Reference images reach each remote provider the way its API takes them, end to end: a job made
with ``references=`` through the studio, sent by the real client to the loopback fake, the request
as the fake received it checked against OpenAI's schemas and MiniMax's and Replicate's facts.
What a model cannot take is refused before anything is sent or stored."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from mediagen.config import Settings
from mediagen.errors import InvalidInput
from mediagen.jobs import actions
from mediagen.jobs.references import ImageRef
from mediagen.jobs.status import JobStatus
from mediagen.studio import Studio

from ..conftest import run_to_end, stored_files
from ..support import openai_spec
from ..support.fake_providers import FakeProviders
from ..support.s3_server import AWS_ENV, moto_server, new_bucket

pytestmark = [pytest.mark.e2e, pytest.mark.one_database]
# Replicate models name their inputs their own way; the test image model declares one.
REPLICATE_INPUTS = {"fake/image-model": {"image": "input_image", "mask": "mask"}}


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


def _open(fake: FakeProviders, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Studio:
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REPLICATE_IMAGE_INPUTS", json.dumps(REPLICATE_INPUTS))
    monkeypatch.setenv("MEDIAGEN_REPLICATE_VIDEO_MODELS", '["minimax/video-01", "fake/video-model"]')
    return Studio.open(settings)


@pytest.fixture
def studio(fake: FakeProviders, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    opened = _open(fake, settings, monkeypatch)
    yield opened
    opened.close()


def _png(width: int, height: int, *, alpha: int = 255, noise: bool = False) -> bytes:
    if noise:  # random pixels do not compress: a PNG of a known large size
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGBA", (width, height), (30, 120, 200, alpha))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _upload(data: bytes, name: str = "cat.png", role: str = "image") -> ImageRef:
    return ImageRef(role=role, upload=io.BytesIO(data), name=name)


def _inline(url: str) -> tuple[str, bytes]:
    """A ``data:`` URL's type and bytes."""
    head, _, payload = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head
    return head[len("data:") : -len(";base64")], base64.b64decode(payload)


def _schema_errors(schema: str, form: dict[str, str]) -> list[str]:
    validator = openai_spec.validator(schema)
    return [e.message for e in validator.iter_errors(openai_spec.form_values(schema, form))]


# -- OpenAI ------------------------------------------------------------------------------------
def test_an_openai_edit_posts_the_image_and_mask_to_images_edits(studio, fake) -> None:
    image, mask = _png(64, 64), _png(64, 64, alpha=0)
    job = actions.generate_image(
        studio,
        "give the cat a hat",
        model="gpt-image-1",
        params={"quality": "high", "n": 2},
        references=[_upload(image), _upload(mask, "mask.png", "mask")],
    )
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert len(job.assets) == 2
    assert fake.calls("openai.images") == []  # an edit, not a new picture
    (call,) = fake.calls("openai.images.edits")
    assert call.files["image"].data == image and call.files["image"].content_type == "image/png"
    assert call.files["mask"].data == mask and call.files["mask"].content_type == "image/png"
    assert call.form is not None and call.form["n"] == "2" and call.form["quality"] == "high"
    assert _schema_errors("CreateImageEditRequest", call.form) == []


def test_dall_e_2_edits_ask_for_the_response_format_and_read_url_results(studio, fake) -> None:
    job = actions.generate_image(studio, "a hat", model="dall-e-2", references=[_upload(_png(256, 256))])
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    (call,) = fake.calls("openai.images.edits")
    assert call.form is not None and call.form["response_format"] == "url" and call.form["model"] == "dall-e-2"
    assert _schema_errors("CreateImageEditRequest", call.form) == []
    assert fake.calls("media")  # the result was fetched from the URL the edit answered


@pytest.mark.parametrize(
    ("model", "image", "problem"),
    [
        ("dall-e-2", _png(300, 200), "not square"),
        ("dall-e-3", _png(64, 64), "does not take an image"),
    ],
)
def test_what_an_openai_model_cannot_edit_is_refused_before_sending(studio, fake, model, image, problem) -> None:
    with pytest.raises(InvalidInput) as refused:
        actions.generate_image(studio, "a hat", model=model, references=[_upload(image)])
    assert refused.value.field == "image" and problem in str(refused.value)
    assert fake.requests == [] and stored_files(studio) == []


def test_a_mask_of_another_size_than_the_image_is_refused(studio, fake) -> None:
    with pytest.raises(InvalidInput) as refused:
        actions.generate_image(
            studio,
            "a hat",
            model="gpt-image-1",
            references=[_upload(_png(64, 64)), _upload(_png(32, 32, alpha=0), "mask.png", "mask")],
        )
    assert refused.value.field == "mask" and fake.requests == []


def test_a_sora_video_starts_from_the_input_reference_file_part(studio, fake) -> None:
    frame = _png(128, 72)
    job = actions.submit_video(studio, "the waves roll in", model="sora-2", references=[_upload(frame, "shore.png")])
    assert run_to_end(studio, job.id).status == JobStatus.SUCCEEDED
    (call,) = fake.calls("openai.videos.create")
    sent = call.files["input_reference"]
    assert sent.data == frame and sent.content_type == "image/png" and sent.filename.endswith(".png")
    assert call.form is not None
    errors = [
        e.message
        for e in openai_spec.validator("CreateVideoMultipartBody", our_names=True).iter_errors(
            openai_spec.form_values("CreateVideoMultipartBody", call.form)
        )
    ]
    assert errors == []


# -- MiniMax -----------------------------------------------------------------------------------
def test_minimax_i2v_sends_first_frame_image_as_a_base64_data_url(studio, fake) -> None:
    frame = _png(480, 320)
    job = actions.submit_video(studio, "it starts to rain", model="I2V-01", references=[_upload(frame)])
    assert run_to_end(studio, job.id).status == JobStatus.SUCCEEDED
    (call,) = fake.calls("minimax.create")
    assert call.json is not None and call.json["model"] == "I2V-01"
    assert _inline(call.json["first_frame_image"]) == ("image/png", frame)
    assert "duration" not in call.json and "resolution" not in call.json


@pytest.mark.parametrize(
    ("model", "references", "problem"),
    [
        ("I2V-01-Director", [], "needs one"),
        ("I2V-01-live", [_png(1000, 320)], "too long and narrow"),  # beyond 5:2
        ("I2V-01", [_png(480, 300)], "is 480x300 px"),  # the short side must be over 300 px
        ("T2V-01", [_png(480, 320)], "does not take an image"),
    ],
)
def test_what_a_minimax_model_cannot_take_is_refused_naming_first_frame_image_s_role(
    studio, fake, model, references, problem
) -> None:
    with pytest.raises(InvalidInput) as refused:
        actions.submit_video(studio, "x", model=model, references=[_upload(r) for r in references])
    assert refused.value.field == "image" and problem in str(refused.value)
    assert fake.requests == [] and stored_files(studio) == []


def test_hailuo_takes_a_first_frame_when_given_and_sends_none_otherwise(studio, fake) -> None:
    plain = actions.submit_video(studio, "x", model="MiniMax-Hailuo-02")
    started = actions.submit_video(studio, "x", model="MiniMax-Hailuo-02", references=[_upload(_png(320, 480))])
    for job in (plain, started):
        assert run_to_end(studio, job.id).status == JobStatus.SUCCEEDED
    sent = {call.json.get("first_frame_image") for call in fake.calls("minimax.create")}
    assert None in sent and any(s and s.startswith("data:image/png;base64,") for s in sent)


def test_on_s3_minimax_fetches_the_first_frame_from_the_bucket(fake, tmp_path, monkeypatch) -> None:
    frame = _png(480, 320)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with moto_server() as endpoint:
        settings = Settings(
            data_dir=tmp_path / "data",
            storage="s3",
            s3_bucket=new_bucket(endpoint),
            s3_endpoint_url=endpoint,
            poll_interval_s=0.05,
            outbound_allow=["127.0.0.1/32"],
        )
        studio = _open(fake, settings, monkeypatch)
        try:
            job = actions.submit_video(studio, "rain", model="I2V-01", references=[_upload(frame)])
            assert run_to_end(studio, job.id).status == JobStatus.SUCCEEDED
            url = fake.calls("minimax.create")[0].json["first_frame_image"]
            assert url.startswith(endpoint)  # a URL MiniMax fetches, not the bytes inline
            assert httpx.get(url).content == frame
        finally:
            studio.close()


# -- Replicate ---------------------------------------------------------------------------------
def test_replicate_sends_a_small_image_inline_under_the_model_s_own_input_name(studio, fake) -> None:
    image = _png(64, 64)
    job = actions.generate_image(studio, "a hat", model="fake/image-model", references=[_upload(image)])
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    (call,) = fake.calls("replicate.create")
    assert _inline(call.json["input"]["input_image"]) == ("image/png", image)
    assert fake.calls("replicate.files") == []


def test_replicate_gets_an_image_over_a_megabyte_uploaded_first(studio, fake) -> None:
    image = _png(700, 700, noise=True)
    assert len(image) > 1024 * 1024
    job = actions.submit_video(studio, "x", model="minimax/video-01", references=[_upload(image)])
    assert run_to_end(studio, job.id).status == JobStatus.SUCCEEDED
    (upload,) = fake.calls("replicate.files")
    assert upload.files["content"].data == image and upload.files["content"].content_type == "image/png"
    (create,) = fake.calls("replicate.create")
    assert create.json["input"]["first_frame_image"].startswith(f"{fake.replicate_base}/v1/files/")


def test_replicate_models_without_declared_inputs_take_no_image(studio, fake) -> None:
    spec = studio.catalog.get("minimax/video-01")
    assert [(i.role, i.field, i.required) for i in spec.image_inputs] == [("image", "first_frame_image", False)]
    with pytest.raises(InvalidInput) as refused:
        actions.submit_video(studio, "x", model="fake/video-model", references=[_upload(_png(64, 64))])
    assert refused.value.field == "image" and fake.requests == []
