"""Real media: the local provider's output decodes at the asked size and length, and ingest
stores any source once, identified by its bytes, or fails leaving nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mediagen.errors import IngestError
from mediagen.jobs.status import JobKind
from mediagen.media.ingest import Limits, ingest_outputs
from mediagen.netguard import OutboundGuard
from mediagen.providers.base import MediaSource, TaskState
from mediagen.providers.local import MODELS, LocalProvider, encode_mp4
from mediagen.providers.local_art import render_png
from mediagen.storage.local import LocalStorage

CREATED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
# The loopback servers these tests fetch from are allowed, as MEDIAGEN_OUTBOUND_ALLOW would.
LIMITS = Limits(max_bytes=50 * 1024 * 1024, deadline_s=30, guard=OutboundGuard.from_entries(["127.0.0.1/32"]))


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("size", [(256, 256), (640, 360), (300, 1000)])
def test_local_png_has_the_asked_size(size) -> None:
    with Image.open(io.BytesIO(render_png("a fox", 0, *size))) as image:
        assert image.format == "PNG" and image.size == size


def test_same_inputs_same_bytes_and_different_prompts_differ() -> None:
    first = render_png("a red fox in snow", 3, 256, 256)
    assert render_png("a red fox in snow", 3, 256, 256) == first
    other_prompt = _pixels(render_png("a city at night", 3, 256, 256))
    other_seed = _pixels(render_png("a red fox in snow", 4, 256, 256))
    pixels = _pixels(first)
    assert np.abs(pixels - other_prompt).mean() > 20  # visibly different, not noise-level
    assert np.abs(pixels - other_seed).mean() > 20
    assert pixels.reshape(-1, 3).std(axis=0).min() > 10  # not a flat fill


def test_local_mp4_is_h264_faststart_with_motion(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    assert encode_mp4(target, "waves", 0, 192, 108, 24)
    data = target.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # index first: browsers start playing at once
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (192, 108)
        assert stream.average_rate == 24
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(stream)]
    assert len(frames) == 24
    assert np.abs(frames[0] - frames[-1]).mean() > 5  # it moves


def test_encoding_stops_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    assert not encode_mp4(target, "waves", 0, 64, 64, 48, on_frame=lambda done: done < 5)
    assert not target.exists()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", "http://cdn.test/m")


def _files(storage: LocalStorage) -> list[str]:
    return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file())


def _ingest(storage, *sources, kind=JobKind.IMAGE, limits=LIMITS):
    return ingest_outputs(storage, list(sources), kind=kind, job_id="job1", created_at=CREATED, limits=limits)


@pytest.mark.parametrize("form", ["bytes", "base64", "data-url", "wrapped-base64", "path"])
def test_every_source_form_is_stored_the_same_way(storage, tmp_path, small_png, form) -> None:
    encoded = base64.b64encode(small_png).decode()
    source = {
        "bytes": MediaSource(data=small_png),
        "base64": MediaSource(b64=encoded),
        "data-url": MediaSource(b64=f"data:image/png;base64,{encoded}"),
        "wrapped-base64": MediaSource(b64="\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))),
        "path": MediaSource(path=tmp_path / "in.png"),
    }[form]
    (tmp_path / "in.png").write_bytes(small_png)
    [stored] = _ingest(storage, source)
    assert stored.key == "image/2026/11/24/job1-0.png" and stored.thumbnail_key == "image/2026/11/24/job1-0.thumb.webp"
    assert (storage.root / stored.key).read_bytes() == small_png
    assert stored.sha256 == hashlib.sha256(small_png).hexdigest() and stored.bytes == len(small_png)
    assert (stored.width, stored.height, stored.content_type) == (256, 256, "image/png")
    with Image.open(storage.root / stored.thumbnail_key) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 384
    assert _files(storage) == [stored.key, stored.thumbnail_key]


def test_video_ingest_reads_duration_and_makes_a_poster(storage, small_mp4) -> None:
    [stored] = _ingest(storage, MediaSource(data=small_mp4), kind=JobKind.VIDEO)
    assert (stored.content_type, stored.width, stored.height) == ("video/mp4", 160, 96)
    assert stored.duration_s == pytest.approx(0.5, abs=0.1)
    assert stored.key.endswith(".mp4")
    with Image.open(storage.root / stored.thumbnail_key) as poster:
        assert poster.format == "WEBP" and poster.size == (160, 96)


def test_ingesting_again_overwrites_instead_of_duplicating(storage, small_png) -> None:
    _ingest(storage, MediaSource(data=small_png))
    _ingest(storage, MediaSource(data=small_png))
    assert len(_files(storage)) == 2


@pytest.mark.parametrize(
    ("make", "kind", "phrase"),
    [
        (
            lambda png, mp4: np.random.default_rng(1).bytes(4096),
            JobKind.IMAGE,
            "not a recognisable image or video",
        ),
        (lambda png, mp4: png[: len(png) // 2], JobKind.IMAGE, "could not be decoded"),
        (lambda png, mp4: png, JobKind.VIDEO, "expected video output"),
        (lambda png, mp4: mp4[: len(mp4) // 3], JobKind.VIDEO, "could not be decoded|is truncated"),
        # index first (faststart), so the cut-off file still opens and its first frame decodes
        (lambda png, mp4: mp4[: len(mp4) * 9 // 10], JobKind.VIDEO, r"video is truncated: its index lists 12 frames"),
        (lambda png, mp4: b"%PDF-1.4 not media", JobKind.IMAGE, "not an accepted media type"),
        (lambda png, mp4: b"", JobKind.IMAGE, "is empty"),
    ],
    ids=["junk", "truncated-png", "png-for-video", "truncated-mp4", "mp4-missing-its-tail", "pdf", "empty"],
)
def test_bad_output_fails_clearly_and_leaves_nothing(storage, small_png, small_mp4, make, kind, phrase) -> None:
    with pytest.raises(IngestError, match=phrase):
        _ingest(storage, MediaSource(data=make(small_png, small_mp4)), kind=kind)
    assert _files(storage) == []


def test_a_later_bad_output_removes_the_earlier_good_ones(storage, small_png) -> None:
    with pytest.raises(IngestError):
        _ingest(storage, MediaSource(data=small_png), MediaSource(data=b"junk" * 100))
    assert _files(storage) == []


def test_size_limit_and_bad_base64(storage, small_png) -> None:
    with pytest.raises(IngestError, match="larger than the 1,000-byte limit"):
        _ingest(storage, MediaSource(data=small_png), limits=Limits(max_bytes=1000, deadline_s=30))
    with pytest.raises(IngestError, match="not valid base64"):
        _ingest(storage, MediaSource(b64="!!!not base64!!!"))
    with pytest.raises(IngestError, match="no media"):
        _ingest(storage)
    assert _files(storage) == []


def test_local_video_task_lifecycle_and_cancel(settings) -> None:
    provider, spec = LocalProvider(settings), MODELS[1]
    task = provider.submit(spec, "tide", {"duration": 1, "size": "128x72"}).task_id
    seen = [provider.poll(spec, task)]
    assert seen[0].state is TaskState.QUEUED  # the first poll starts the render
    deadline = time.monotonic() + 30
    while seen[-1].state is not TaskState.SUCCEEDED and time.monotonic() < deadline:
        time.sleep(0.02)
        seen.append(provider.poll(spec, task))
    assert seen[-1].state is TaskState.SUCCEEDED and seen[-1].outputs[0].path.exists()
    progress = [r.progress for r in seen]
    assert progress == sorted(progress)
    provider.discard(task)
    assert provider.poll(spec, task).error_code == "task_not_found"

    long_task = provider.submit(spec, "long", {"duration": 10, "size": "1280x720"}).task_id
    provider.poll(spec, long_task)
    assert provider.cancel(spec, long_task)
    provider.drain()
    assert not (settings.data_dir / "local-provider" / long_task).exists()
