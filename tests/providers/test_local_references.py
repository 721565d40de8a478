"""The offline provider takes reference images for real: a video starts on the given image and
moves from there; an edit or variation transforms the given image, recognisably the same picture.

Likeness is measured as PSNR (numpy) between decoded pixels: frames decoded with PyAV, images
with Pillow, the input fitted to the output size with Pillow's own cover-crop (``ImageOps.fit``).
Video frames are compared on luma (PSNR-Y, the usual measure for video): browser-playable H.264
is 4:2:0, a quarter of the colour resolution, which alone costs saturated art ~27 dB in RGB
before any encoding. Thresholds sit well apart from the measured figures (constants below).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from mediagen.config import Settings
from mediagen.errors import InvalidInput
from mediagen.jobs import actions
from mediagen.jobs.references import ImageRef
from mediagen.jobs.status import JobStatus
from mediagen.providers.base import Reference, TaskState
from mediagen.providers.local import MODELS, LocalProvider

from ..conftest import run_to_end, stored_files

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

IMAGE = next(m for m in MODELS if m.name == "local-image")
VIDEO = next(m for m in MODELS if m.name == "local-video")
PROMPT = "a harbour at dawn"

# Measured on luma at 320x240 over five inputs (three photo-like, two of our own images): a first
# frame against its input 37.7–42.8 dB; the first frame of a video not made from it (no image, or
# another image) 12.4–16.1 dB; the last frame of a video made from it 17.3–19.8 dB (it moved on).
FIRST_FRAME_MIN_DB = 32.0
NOT_FROM_IT_MAX_DB = 20.0
# Measured over 60 edits at 320x240 (4 pictures × 15 seeds): against the input 15.7–25.8 dB (median
# 21), against an unrelated picture 8.3–11.2 dB, the first always ≥ 5.8 dB above the second.
EDIT_MIN_DB = 14.0
EDIT_OVER_UNRELATED_DB = 4.0
# Variations (seeds) of one input measured 16.8–23.5 dB apart: visibly different pictures.
VARIATIONS_MAX_DB = 28.0


def picture(seed: int, width: int, height: int) -> bytes:
    """A photo-like PNG: a colour gradient with soft-edged shapes and luminance grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = np.stack([x / width * 255, y / height * 255, (1 - x / width) * 200 + 30], axis=-1)
    image = Image.fromarray(np.roll(gradient, seed * 50, axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(width // 20, width // 5))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((cx - r, cy - r // 2, cx + r, cy + r), fill=colour)
    grain = rng.normal(0, 4, (height, width, 1))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32) + grain
    return _png(np.clip(pixels, 0, 255).astype(np.uint8))


def _png(pixels: np.ndarray, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def fitted(data: bytes, width: int, height: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.fit(image.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS))


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def ref(data: bytes, role: str = "image") -> Reference:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return Reference(role, "image/png", width, height, read=lambda: data, name=f"{role}.png")


INPUT = picture(1, 480, 270)  # 16:9 into 4:3 outputs: the cover-crop cuts the sides
UNRELATED = picture(2, 480, 270)


# -- image to video ---------------------------------------------------------------------------
def _video(settings: Settings, references: list[Reference], prompt: str = PROMPT) -> list[np.ndarray]:
    """The frames' luma. Submitted with one provider and rendered by another (tasks are rendered by
    whichever process polls): the task folder must carry the input image."""
    task_id = LocalProvider(settings).submit(VIDEO, prompt, {"duration": 1, "size": "320x240"}, references).task_id
    renderer = LocalProvider(settings)
    deadline = time.monotonic() + 30
    while (polled := renderer.poll(VIDEO, task_id)).state != TaskState.SUCCEEDED:
        assert polled.state in (TaskState.QUEUED, TaskState.RUNNING), polled
        assert time.monotonic() < deadline, "the render did not finish in 30 s"
        time.sleep(0.05)
    [output] = polled.outputs
    assert output.path is not None
    return [luma(frame) for frame in frames(output.path)]


def test_a_video_from_an_image_starts_on_it_and_moves_from_there(settings: Settings) -> None:
    video = _video(settings, [ref(INPUT)])
    expected = luma(fitted(INPUT, 320, 240))
    assert len(video) == 24 and video[0].shape == (240, 320)
    assert psnr(video[0], expected) >= FIRST_FRAME_MIN_DB
    # Early frames still look like it; by the end the zoom and the overlay have moved well away.
    assert psnr(video[1], expected) >= FIRST_FRAME_MIN_DB - 4
    assert psnr(video[-1], expected) < NOT_FROM_IT_MAX_DB + 4


def test_a_video_not_made_from_the_image_fails_the_first_frame_check(settings: Settings) -> None:
    expected = luma(fitted(INPUT, 320, 240))
    assert psnr(_video(settings, [])[0], expected) < NOT_FROM_IT_MAX_DB
    assert psnr(_video(settings, [ref(UNRELATED)])[0], expected) < NOT_FROM_IT_MAX_DB


# -- edits and variations ---------------------------------------------------------------------
def _edit(settings: Settings, references: list[Reference], size: str = "320x240", **params: object) -> list[bytes]:
    result = LocalProvider(settings).generate(IMAGE, PROMPT, {"size": size, "n": 1, "seed": 3, **params}, references)
    return [source.data for source in result.outputs if source.data is not None]


def test_an_edit_is_recognisably_its_input_at_the_asked_size(settings: Settings) -> None:
    [edit] = _edit(settings, [ref(INPUT)])
    assert edit.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = decoded(edit)
    assert pixels.shape == (240, 320, 3)
    to_input, to_unrelated = psnr(pixels, fitted(INPUT, 320, 240)), psnr(pixels, fitted(UNRELATED, 320, 240))
    assert to_input >= EDIT_MIN_DB
    assert to_input >= to_unrelated + EDIT_OVER_UNRELATED_DB
    assert to_input < 30  # and it is an edit, not the input handed back
    # The prompt's own picture without an image is nothing like it.
    assert psnr(decoded(_edit(settings, [])[0]), fitted(INPUT, 320, 240)) < EDIT_MIN_DB


def test_the_same_prompt_seed_and_image_give_the_same_bytes(settings: Settings) -> None:
    assert _edit(settings, [ref(INPUT)]) == _edit(settings, [ref(INPUT)])
    assert _edit(settings, [ref(INPUT)]) != _edit(settings, [ref(INPUT)], seed=4)


def test_variations_differ_and_each_is_recognisably_the_input(settings: Settings) -> None:
    first, second = _edit(settings, [ref(INPUT)], n=2)
    a, b = decoded(first), decoded(second)
    expected, unrelated = fitted(INPUT, 320, 240), fitted(UNRELATED, 320, 240)
    assert psnr(a, b) < VARIATIONS_MAX_DB
    for variation in (a, b):
        assert psnr(variation, expected) >= max(EDIT_MIN_DB, psnr(variation, unrelated) + EDIT_OVER_UNRELATED_DB)


def test_a_mask_keeps_its_opaque_part_and_edits_the_transparent_one(settings: Settings) -> None:
    source = picture(3, 320, 240)  # the output size: no crop, so pixels line up one to one
    alpha = np.full((240, 320), 255, dtype=np.uint8)
    alpha[:, 160:] = 0  # the right half may be painted
    mask = np.dstack([np.zeros((240, 320, 3), dtype=np.uint8), alpha])
    [edit] = _edit(settings, [ref(source), ref(_png(mask, "RGBA"), "mask")])
    pixels, original = decoded(edit), decoded(source)
    assert np.array_equal(pixels[:, :160], original[:, :160])  # PSNR infinite where opaque
    assert psnr(pixels[:, 160:], original[:, 160:]) < 30
    assert psnr(pixels[:, 160:], original[:, 160:]) >= EDIT_MIN_DB


# -- through the studio: checked, stored with the job, handed to the provider by the worker ------
def _stored(studio, key: str) -> bytes:
    return (studio.settings.media_dir / key).read_bytes()


def test_an_uploaded_image_edited_through_the_studio(studio) -> None:
    job = actions.generate_image(
        studio,
        PROMPT,
        model="local-image",
        params={"size": "256x256", "seed": 5},
        references=[ImageRef(upload=io.BytesIO(INPUT), name="harbour.png")],
    )
    assert job.status == JobStatus.SUCCEEDED
    [kept] = job.inputs
    assert (kept.role, kept.width, kept.height) == ("image", 480, 270)
    assert _stored(studio, kept.key) == INPUT
    edit = decoded(_stored(studio, job.assets[0].key))
    assert edit.shape == (256, 256, 3)
    to_input, to_unrelated = psnr(edit, fitted(INPUT, 256, 256)), psnr(edit, fitted(UNRELATED, 256, 256))
    assert to_input >= max(EDIT_MIN_DB, to_unrelated + EDIT_OVER_UNRELATED_DB)


def test_a_video_from_one_of_our_images_through_the_worker(studio) -> None:
    still = actions.generate_image(studio, "a red kite", model="local-image", params={"size": "512x512", "seed": 2})
    queued = actions.submit_video(
        studio,
        "the kite takes off",
        model="local-video",
        params={"duration": 1, "size": "320x240"},
        references=[ImageRef(source=still.id)],
    )
    job = run_to_end(studio, queued.id)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert [i.source_job_id for i in job.inputs] == [still.id]
    video_path = studio.settings.media_dir / next(a.key for a in job.assets if a.key.endswith(".mp4"))
    first = luma(frames(video_path)[0])
    assert psnr(first, luma(fitted(_stored(studio, still.assets[0].key), 320, 240))) >= FIRST_FRAME_MIN_DB


def _jpeg(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


CLEAR_MASK = _png(np.zeros((64, 64, 4), dtype=np.uint8), "RGBA")


@pytest.mark.parametrize(
    ("model", "images", "field", "problem"),
    [
        ("local-image", {"image": INPUT, "mask": CLEAR_MASK}, "mask", "is 64x64 px but the image is 480x270 px"),
        # a mask is PNG only: its transparency is what it says
        ("local-image", {"image": INPUT, "mask": _jpeg(INPUT)}, "mask", "image/jpeg"),
        # a video takes a first frame, no mask
        ("local-video", {"image": INPUT, "mask": CLEAR_MASK}, "mask", "model local-video does not take a mask"),
        ("local-image", {"image": picture(5, 12, 40)}, "image", "is 12x40 px"),
    ],
)
def test_what_the_local_models_cannot_take_is_refused_naming_the_field(studio, model, images, field, problem) -> None:
    start = actions.generate_image if model == "local-image" else actions.submit_video
    references = [ImageRef(role, upload=io.BytesIO(data), name=f"{role}.png") for role, data in images.items()]
    with pytest.raises(InvalidInput) as caught:
        start(studio, PROMPT, model=model, references=references)
    assert caught.value.field == field and problem in str(caught.value)
    assert stored_files(studio) == []
