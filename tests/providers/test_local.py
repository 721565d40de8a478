"""The offline provider makes real media: PNGs and H.264 MP4s that decode, at the asked size, and a
video task that goes through the same queued → running → succeeded life as a remote one."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mediagen.config import Settings
from mediagen.providers.base import ImageProvider, PollResult, TaskState, VideoProvider
from mediagen.providers.local import FPS, MODELS, LocalProvider, LocalSettings, encode_mp4

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

IMAGE = next(m for m in MODELS if m.name == "local-image")
VIDEO = next(m for m in MODELS if m.name == "local-video")
DEADLINE_S = 30.0


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(_decode(png).convert("RGB"), dtype=np.int16)


def _generate(settings: Settings, prompt: str, **params: object) -> list[bytes]:
    result = LocalProvider(settings).generate(IMAGE, prompt, {"size": "256x256", "n": 1, **params})
    assert all(source.data is not None for source in result.outputs)
    return [source.data for source in result.outputs if source.data is not None]


Polls = tuple[list[PollResult], PollResult]


def _poll_until(provider: LocalProvider, task_id: str, done: set[TaskState]) -> Polls:
    seen: list[PollResult] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = provider.poll(VIDEO, task_id)
        seen.append(result)
        if result.state in done:
            return seen, result
        time.sleep(0.05)
    pytest.fail(f"task {task_id} did not reach {sorted(done)} in {DEADLINE_S} s; saw {seen[-3:]}")


# -- images -------------------------------------------------------------------------------


def test_local_provider_satisfies_both_protocols(settings: Settings) -> None:
    provider = LocalProvider(settings)
    assert isinstance(provider, ImageProvider)
    assert isinstance(provider, VideoProvider)


@pytest.mark.parametrize("size", ["256x256", "512x512", "768x512", "256x640"])
def test_png_decodes_at_the_asked_size(settings: Settings, size: str) -> None:
    result = LocalProvider(settings).generate(IMAGE, "a lighthouse", {"size": size, "n": 1})
    assert len(result.outputs) == 1
    assert result.usage == {"images": 1, "size": size}
    data = result.outputs[0].data
    assert data is not None and data.startswith(b"\x89PNG\r\n\x1a\n")
    image = _decode(data)
    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert f"{image.width}x{image.height}" == size


def test_n_three_gives_three_different_images(settings: Settings) -> None:
    outputs = _generate(settings, "three owls", n=3, seed=10)
    assert len(outputs) == 3
    assert len(set(outputs)) == 3
    pixels = [_pixels(png) for png in outputs]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(pixels[a] - pixels[b]).mean() > 10


def test_same_prompt_and_seed_give_identical_bytes(settings: Settings) -> None:
    first = _generate(settings, "a red fox in snow", seed=42)
    again = _generate(settings, "a red fox in snow", seed=42)
    # A second provider instance too: nothing depends on in-process state.
    other_instance = LocalProvider(settings).generate(
        IMAGE, "a red fox in snow", {"size": "256x256", "n": 1, "seed": 42}
    )
    assert first == again == [other_instance.outputs[0].data]


def test_different_prompts_give_visibly_different_pictures(settings: Settings) -> None:
    fox = _pixels(_generate(settings, "a red fox in snow", seed=1)[0])
    city = _pixels(_generate(settings, "a city at night", seed=1)[0])
    other_seed = _pixels(_generate(settings, "a red fox in snow", seed=2)[0])
    assert fox.shape == city.shape == (256, 256, 3)
    assert np.abs(fox - city).mean() > 20
    assert np.abs(fox - other_seed).mean() > 20
    for picture in (fox, city, other_seed):
        assert picture.reshape(-1, 3).std(axis=0).min() > 10  # not a flat fill


# -- encoding -----------------------------------------------------------------------------


def test_mp4_is_h264_at_the_asked_size_and_rate_with_motion(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    assert encode_mp4(target, "rolling waves", 3, 160, 96, FPS) is True
    assert not target.with_suffix(".part").exists()
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (160, 96)
        assert stream.average_rate == 24
        assert stream.duration is not None and stream.time_base is not None
        assert float(stream.duration * stream.time_base) == pytest.approx(1.0, abs=0.05)
        frames = [frame.to_ndarray(format="rgb24").astype(np.int16) for frame in container.decode(stream)]
    assert len(frames) == FPS
    assert frames[0].shape == (96, 160, 3)
    assert np.abs(frames[0] - frames[-1]).mean() > 5  # the picture moves
    assert frames[0].reshape(-1, 3).std(axis=0).min() > 10


def test_mp4_has_its_index_before_the_media_data(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    assert encode_mp4(target, "faststart", 0, 160, 96, 12)
    data = target.read_bytes()
    assert data[4:8] == b"ftyp"
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    assert 0 < moov < mdat


def test_encode_stops_when_asked_and_leaves_no_output(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    calls: list[int] = []

    def stop_after_twenty(done: int) -> bool:  # by then the encoder has written to its file
        calls.append(done)
        return done < 20

    assert encode_mp4(target, "stopped", 0, 160, 96, FPS, on_frame=stop_after_twenty) is False
    assert calls == list(range(1, 21))
    assert list(tmp_path.iterdir()) == []  # nor its partial file


# -- the async task lifecycle ------------------------------------------------------------


def test_video_task_goes_queued_running_succeeded(settings: Settings) -> None:
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "a slow sunrise", {"size": "640x360", "duration": 3, "seed": 5})
    task_dir = provider.tasks_dir / submitted.task_id
    assert task_dir.is_dir()

    seen, final = _poll_until(provider, submitted.task_id, {TaskState.SUCCEEDED, TaskState.FAILED})

    states = [r.state for r in seen]
    assert states[0] is TaskState.QUEUED
    assert TaskState.RUNNING in states
    first_running = states.index(TaskState.RUNNING)
    assert set(states[first_running:-1]) == {TaskState.RUNNING}  # never back to queued
    progress = [r.progress for r in seen]
    assert progress == sorted(progress)
    assert all(0 <= p <= 99 for p in progress[:-1])

    assert final.state is TaskState.SUCCEEDED, final.error_message
    assert final.progress == 100
    assert final.usage == {"seconds": 3, "size": "640x360"}
    assert len(final.outputs) == 1
    output = final.outputs[0].path
    assert output is not None and output.is_file()
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
        assert stream.frames == 3 * FPS

    # Polling a finished task again gives the same answer.
    assert provider.poll(VIDEO, submitted.task_id).state is TaskState.SUCCEEDED

    provider.discard(submitted.task_id)
    assert not task_dir.exists()
    gone = provider.poll(VIDEO, submitted.task_id)
    assert gone.state is TaskState.FAILED
    assert gone.error_code == "task_not_found"


def test_cancel_stops_a_running_render(settings: Settings) -> None:
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "a long storm", {"size": "854x480", "duration": 10, "seed": 1})
    task_dir = provider.tasks_dir / submitted.task_id
    _, running = _poll_until(provider, submitted.task_id, {TaskState.RUNNING, TaskState.SUCCEEDED})
    assert running.state is TaskState.RUNNING, "the render finished before it could be canceled"

    assert provider.cancel(VIDEO, submitted.task_id) is True
    # The render thread notices the cancel marker at its next frame and removes the task.
    ended = {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED}
    _, final = _poll_until(provider, submitted.task_id, ended)
    assert final.state is TaskState.FAILED
    assert final.error_code == "task_not_found"
    assert final.outputs == []
    assert not task_dir.exists()
    provider.drain(DEADLINE_S)
    assert not task_dir.exists()


# Another process canceling (the CLI, a separate worker): it is not rendering the task, so it
# removes the task's folder at once, under the encoder of the process that is.
_CANCELING_PROCESS = """
import sys
from pathlib import Path
from mediagen.config import Settings
from mediagen.providers.local import MODELS, LocalProvider
provider = LocalProvider(Settings(data_dir=Path(sys.argv[1]), public_base_url="http://127.0.0.1:9/cdn"))
assert provider.cancel(next(m for m in MODELS if m.name == "local-video"), sys.argv[2])
"""


def _local_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, bool]]:
    return [(r.levelno, r.exc_info is not None) for r in caplog.records if r.name == "mediagen.providers.local"]


def test_a_cancel_from_another_process_ends_the_render_quietly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The render stops at its next frame with one INFO line, no traceback, and no file left."""
    caplog.set_level(logging.INFO, logger="mediagen.providers.local")
    provider = LocalProvider(settings)
    for attempt in range(3):  # the folder vanishes at a different point of the encode each time
        submitted = provider.submit(VIDEO, f"a storm canceled elsewhere {attempt}", {"size": "854x480", "duration": 10})
        _, running = _poll_until(provider, submitted.task_id, {TaskState.RUNNING, TaskState.SUCCEEDED})
        assert running.state is TaskState.RUNNING, "the render finished before it could be canceled"
        subprocess.run(
            [sys.executable, "-c", _CANCELING_PROCESS, str(settings.data_dir), submitted.task_id],
            cwd=Path(__file__).resolve().parents[2],
            timeout=DEADLINE_S,
            check=True,
        )
        provider.drain(DEADLINE_S)
        assert list(provider.tasks_dir.iterdir()) == []
        assert _local_records(caplog) == [(logging.INFO, False)] * (attempt + 1), caplog.text


def test_a_cancel_as_the_render_finishes_leaves_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cancel arriving after the last frame was checked, while the file is being finished: the
    render (in this process, so the cancel left the task to it) must not keep the unwanted video."""
    caplog.set_level(logging.INFO, logger="mediagen.providers.local")
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "canceled at the last moment", {"size": "160x96", "duration": 1})

    def encode_then_cancel(*args: object, **kwargs: object) -> bool:
        finished = encode_mp4(*args, **kwargs)  # type: ignore[arg-type]
        assert provider.cancel(VIDEO, submitted.task_id) is True
        return finished

    monkeypatch.setattr("mediagen.providers.local.encode_mp4", encode_then_cancel)
    assert provider.poll(VIDEO, submitted.task_id).state is TaskState.QUEUED  # starts the render
    provider.drain(DEADLINE_S)
    assert list(provider.tasks_dir.iterdir()) == []
    assert all(level == logging.INFO and not trace for level, trace in _local_records(caplog)), caplog.text


# A worker that starts a render and dies: it polls until the render has reported progress, then
# SIGKILLs itself so nothing gets the chance to tidy up.
_DYING_WORKER = """
import json, os, signal, sys, time
from pathlib import Path
from mediagen.config import Settings
from mediagen.providers.local import MODELS, LocalProvider
provider = LocalProvider(Settings(data_dir=Path(sys.argv[1]), public_base_url="http://127.0.0.1:9/cdn"))
video = next(m for m in MODELS if m.name == "local-video")
state = provider.tasks_dir / sys.argv[2] / "state.json"
for _ in range(3000):
    provider.poll(video, sys.argv[2])
    if state.exists() and json.loads(state.read_text()).get("progress", 0) > 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
"""


def test_a_render_whose_process_died_is_taken_over_at_once(settings: Settings) -> None:
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "an orphaned render", {"size": "854x480", "duration": 10, "seed": 2})
    child = subprocess.run(
        [sys.executable, "-c", _DYING_WORKER, str(settings.data_dir), submitted.task_id],
        cwd=Path(__file__).resolve().parents[2],
        timeout=DEADLINE_S,
    )
    assert child.returncode == -9, "the child should have died mid-render"

    # The dead render left a fresh RUNNING state with progress; this process must not trust it.
    taken_over = provider.poll(VIDEO, submitted.task_id)
    assert taken_over.state is TaskState.QUEUED
    assert provider._rendering_here(submitted.task_id)
    assert provider.cancel(VIDEO, submitted.task_id) is True
    provider.drain(DEADLINE_S)


def test_cancel_of_a_task_not_yet_started_removes_it(settings: Settings) -> None:
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "never drawn", {"size": "160x96", "duration": 1})
    task_dir = provider.tasks_dir / submitted.task_id
    assert provider.cancel(VIDEO, submitted.task_id) is True
    assert not task_dir.exists()
    result = provider.poll(VIDEO, submitted.task_id)
    assert result.state is TaskState.FAILED
    assert result.error_code == "task_not_found"
    assert result.error_message == f"local task {submitted.task_id} no longer exists"


def test_discard_removes_the_task_dir(settings: Settings) -> None:
    provider = LocalProvider(settings)
    submitted = provider.submit(VIDEO, "short", {"size": "160x96", "duration": 1})
    _, final = _poll_until(provider, submitted.task_id, {TaskState.SUCCEEDED, TaskState.FAILED})
    assert final.state is TaskState.SUCCEEDED
    task_dir = provider.tasks_dir / submitted.task_id
    assert (task_dir / "output.mp4").is_file()
    provider.discard(submitted.task_id)
    assert not task_dir.exists()
    provider.discard(submitted.task_id)  # discarding twice is harmless


def test_renders_wait_for_a_free_slot(settings: Settings) -> None:
    """With one render slot, a second video waits (reported queued) until the first is done, and
    an image waits for the slot too: five concurrent renders no longer each take their memory."""
    provider = LocalProvider(settings, LocalSettings(render_slots=1))
    first = provider.submit(VIDEO, "first in line", {"size": "854x480", "duration": 4, "seed": 1})
    second = provider.submit(VIDEO, "second in line", {"size": "320x180", "duration": 1, "seed": 2})
    _, running = _poll_until(provider, first.task_id, {TaskState.RUNNING, TaskState.SUCCEEDED})
    assert running.state is TaskState.RUNNING, "the first render finished before the second was looked at"
    looked = 0
    while (now_first := provider.poll(VIDEO, first.task_id)).state is TaskState.RUNNING:
        looked += 1
        # The second was started (a poll starts a render) but holds no slot while the first runs.
        waiting = provider.poll(VIDEO, second.task_id)
        assert waiting.state is TaskState.QUEUED and waiting.progress == 0
        assert not (provider.tasks_dir / second.task_id / "state.json").exists()
        time.sleep(0.05)
    assert now_first.state is TaskState.SUCCEEDED and looked > 0
    _, done = _poll_until(provider, second.task_id, {TaskState.SUCCEEDED, TaskState.FAILED})
    assert done.state is TaskState.SUCCEEDED, done.error_message


def test_render_slots_are_a_setting_of_the_local_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAGEN_LOCAL_RENDER_SLOTS", "3")
    assert LocalSettings().render_slots == 3
    monkeypatch.setenv("MEDIAGEN_LOCAL_RENDER_SLOTS", "0")
    with pytest.raises(ValueError, match="render_slots"):
        LocalSettings()
