"""Reference images on /v1, in process (Starlette's test client over the real mounts, a real
studio on SQLite and PostgreSQL, the local provider): ``POST /v1/images/edits`` multipart as the
official SDK sends it, ``input_reference`` on ``POST /v1/videos`` (a file part, or JSON's
``{"image_url"}``), answers in OpenAI's schemas, refusals naming the field, nothing kept of a
refused request. (`test_openai_sdk.py` drives the same calls with the SDK against `streamlit run`.)"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mediagen import server
from mediagen.api import apps
from mediagen.db.tables import Job, JobInput
from mediagen.jobs.queries import get_job
from mediagen.studio import Studio

from ..conftest import run_to_end
from ..support import openai_spec

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database


@pytest.fixture
def local(studio: Studio) -> Iterator[TestClient]:
    server.use(studio)
    yield TestClient(Starlette(routes=apps.build(lambda: False)), client=("127.0.0.1", 40000))
    server.use(None)


def png(size: tuple[int, int] = (64, 48), colour: tuple[int, ...] = (200, 40, 40), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def _error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    openai_spec.validator("ErrorResponse").validate(answer.json())
    return answer.json()["error"]


def _counts(studio: Studio) -> tuple[int, int]:
    with studio.db.read() as session:
        jobs = session.scalar(select(func.count()).select_from(Job))
        inputs = session.scalar(select(func.count()).select_from(JobInput))
    return jobs or 0, inputs or 0


def _stored_inputs(studio: Studio) -> list[str]:
    root = studio.settings.media_dir / "inputs"
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_edit_as_the_sdk_sends_it_answers_images_and_keeps_image_and_mask(local, studio) -> None:
    image = png((256, 192))
    mask = png((256, 192), (0, 0, 0, 0), "RGBA")
    answer = local.post(
        "/v1/images/edits",
        data={"prompt": "make it dusk", "model": "local-image", "size": "256x256", "response_format": "b64_json"},
        files=[("image[]", ("cat.png", image, "image/png")), ("mask", ("mask.png", mask, "image/png"))],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    openai_spec.validator("ImagesResponse").validate(body)
    edited = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
    assert edited.size == (256, 256) and body["output_format"] == "png"

    (job,) = [get_job(studio, j.id) for j in _jobs(studio)]
    assert job.status == "succeeded"
    roles = {i.role: i for i in job.inputs}
    assert set(roles) == {"image", "mask"}
    assert roles["image"].origin == "upload cat.png" and (roles["image"].width, roles["image"].height) == (256, 192)
    assert roles["image"].bytes == len(image) and roles["mask"].bytes == len(mask)
    with studio.storage.open(roles["image"].key) as handle:
        assert handle.read() == image


def _jobs(studio: Studio) -> list[Job]:
    with studio.db.read() as session:
        return list(session.scalars(select(Job).order_by(Job.created_at)))


def test_a_single_image_part_and_url_answers(local, studio) -> None:
    answer = local.post(
        "/v1/images/edits",
        data={"prompt": "sepia", "size": "256x256"},  # no model: the first image model that takes an image
        files={"image": ("a.png", png(), "image/png")},
    )
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"][0]["url"]
    assert "/cdn/" in url


def test_bad_edits_name_the_field_and_keep_nothing(local, studio) -> None:
    def edit(files: Any, **fields: str) -> Any:
        return local.post("/v1/images/edits", data={"prompt": "x", "model": "local-image", **fields}, files=files)

    not_image = _error(edit({"image": ("cat.png", b"just some text, renamed", "image/png")}), 400)
    assert not_image["param"] == "image" and "allowed" in not_image["message"]
    tiny = _error(edit({"image": ("dot.png", png((4, 4)), "image/png")}), 400)
    assert tiny["param"] == "image" and "4x4" in tiny["message"]
    wrong_mask = [
        ("image", ("a.png", png((64, 48)), "image/png")),
        ("mask", ("m.png", png((32, 32), (0, 0, 0, 0), "RGBA"), "image/png")),
    ]
    assert _error(edit(wrong_mask), 400)["param"] == "mask"
    two = [("image[]", ("a.png", png(), "image/png")), ("image[]", ("b.png", png(), "image/png"))]
    assert _error(edit(two), 400)["param"] == "image"
    assert _error(edit({}), 400)["param"] == "image"
    assert _error(edit({"picture": ("a.png", png(), "image/png")}), 400)["param"] == "picture"
    video_model = _error(edit({"image": ("a.png", png(), "image/png")}, model="local-video"), 400)
    assert video_model["param"] == "model"
    assert _error(edit({"image": ("a.png", png(), "image/png")}, n="many"), 400)["param"] == "n"
    as_json = local.post("/v1/images/edits", json={"prompt": "x", "images": [{"image_url": "https://x/a.png"}]})
    assert _error(as_json, 400)["param"] == "Content-Type"
    assert _counts(studio) == (0, 0) and _stored_inputs(studio) == []


def test_an_upload_over_what_the_model_takes_is_413_naming_the_field(local, studio) -> None:
    limit = studio.catalog.get("local-image").image_input("image").max_bytes
    # Valid PNG bytes, padded past the limit: refused for the size, before any decoding.
    oversized = png() + b"\0" * (limit + 1)
    error = _error(local.post("/v1/images/edits", data={"prompt": "x"}, files={"image": ("big.png", oversized)}), 413)
    assert error["param"] == "image" and "MB" in error["message"]
    video = local.post(
        "/v1/videos", data={"prompt": "x", "model": "local-video"}, files={"input_reference": ("big.png", oversized)}
    )
    assert _error(video, 413)["param"] == "input_reference"
    assert _counts(studio) == (0, 0) and _stored_inputs(studio) == []


def test_a_video_from_an_uploaded_first_frame(local, studio) -> None:
    frame = png((160, 90), (30, 120, 220))
    created = local.post(
        "/v1/videos",
        data={"prompt": "the sea moves", "model": "local-video", "seconds": "1", "size": "160x90"},
        files={"input_reference": ("sea.png", frame, "image/png")},
    )
    assert created.status_code == 200, created.text
    resource = openai_spec.validator("VideoResource", our_names=True)
    resource.validate(created.json())
    job = get_job(studio, created.json()["id"])
    (kept,) = job.inputs
    assert kept.role == "image" and kept.origin == "upload sea.png" and kept.bytes == len(frame)
    run_to_end(studio, job.id)
    done = local.get(f"/v1/videos/{job.id}").json()
    resource.validate(done)
    assert done["status"] == "completed"


def test_a_video_from_json_image_url_data_and_job_id(local, studio) -> None:
    frame = png((160, 90), (10, 200, 90))
    data_url = "data:image/png;base64," + base64.b64encode(frame).decode()
    body = {"prompt": "grass sways", "model": "local-video", "seconds": "1", "size": "160x90"}
    sent = {**body, "input_reference": {"image_url": data_url}}
    openai_spec.validator("CreateVideoJsonBody", our_names=True).validate(sent)  # what OpenAI's spec allows
    created = local.post("/v1/videos", json=sent)
    assert created.status_code == 200, created.text
    (kept,) = get_job(studio, created.json()["id"]).inputs
    assert kept.bytes == len(frame)

    image = local.post("/v1/images/generations", json={"prompt": "a meadow", "model": "local-image", "size": "256x256"})
    image_id = _jobs(studio)[-1].id
    assert image.status_code == 200
    by_id = {**body, "input_reference": {"file_id": image_id}}
    openai_spec.validator("CreateVideoJsonBody", our_names=True).validate(by_id)
    from_job = local.post("/v1/videos", json=by_id)
    assert from_job.status_code == 200, from_job.text
    (carried,) = get_job(studio, from_job.json()["id"]).inputs
    assert carried.source_job_id == image_id


def test_bad_video_references_name_input_reference_and_keep_nothing(local, studio) -> None:
    body = {"prompt": "x", "model": "local-video", "seconds": "1", "size": "160x90"}
    cases = {
        "input_reference.image_url": {"image_url": "/etc/passwd"},
        "input_reference": {"image_url": "https://a.example/x.png", "file_id": "abc"},
        "input_reference.file_id": {"file_id": "file-abc123"},
    }
    for param, reference in cases.items():
        assert _error(local.post("/v1/videos", json={**body, "input_reference": reference}), 400)["param"] == param
    not_image = local.post("/v1/videos", data=body, files={"input_reference": ("a.png", b"hello", "image/png")})
    assert _error(not_image, 400)["param"] == "input_reference"
    # A JSON body is read whole: a data: URL counts toward its 1 MiB (larger images go as a file part).
    huge = {**body, "input_reference": {"image_url": "data:image/png;base64," + "A" * 1024 * 1024}}
    assert _error(local.post("/v1/videos", json=huge), 413)["code"] == "too_large"
    unknown_job = local.post("/v1/videos", json={**body, "input_reference": {"file_id": "0123456789abcdef"}})
    assert _error(unknown_job, 400)["param"] == "input_reference"
    assert _counts(studio) == (0, 0) and _stored_inputs(studio) == []


def test_the_openapi_document_describes_the_uploads(local) -> None:
    paths = local.get("/api/openapi.json").json()["paths"]
    edit = paths["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert edit["properties"]["image"]["format"] == "binary" and {"image", "prompt"} <= set(edit["required"])
    video = paths["/v1/videos"]["post"]["requestBody"]["content"]
    assert video["multipart/form-data"]["schema"]["properties"]["input_reference"]["format"] == "binary"
    assert "input_reference" in video["application/json"]["schema"]["properties"]


def test_a_model_that_takes_no_image_is_refused_naming_the_field(scripted) -> None:
    studio, provider = scripted
    server.use(studio)
    try:
        client = TestClient(Starlette(routes=apps.build(lambda: False)), client=("127.0.0.1", 40000))
        edit = client.post(
            "/v1/images/edits", data={"prompt": "x", "model": "scripted-image"}, files={"image": ("a.png", png())}
        )
        error = _error(edit, 400)
        assert error["param"] == "image" and "scripted-image does not take an image" in error["message"]
        assert "local-image" in error["message"]  # the models that do
        video = client.post(
            "/v1/videos",
            data={"prompt": "x", "model": "scripted-video"},
            files={"input_reference": ("a.png", png((160, 90)))},
        )
        assert _error(video, 400)["param"] == "input_reference"
        assert _counts(studio) == (0, 0) and provider.submits == []
    finally:
        server.use(None)


def test_the_seed_video_call_takes_an_image_job_or_url_never_a_path(local, studio) -> None:
    made = local.post("/api/images/generate", json={"prompt": "a harbour", "model": "local-image", "size": "256x256"})
    image_id = made.json()["job_id"]
    body = {"prompt": "boats rock", "model": "local-video", "duration": 1, "size": "160x90"}
    queued = local.post("/api/videos/generate", json={**body, "image": image_id})
    assert queued.status_code == 202, queued.text
    (kept,) = get_job(studio, queued.json()["task_id"]).inputs
    assert kept.source_job_id == image_id and kept.origin.startswith("job ")
    for refused in ("/etc/hostname", "http://127.0.0.1:9/a.png", "ftp://a.example/a.png"):
        assert _error(local.post("/api/videos/generate", json={**body, "image": refused}), 400)["param"] == "image"
    assert _counts(studio) == (2, 1)
