"""The offline ``local`` provider: real PNGs and H.264 MP4s made on the CPU, no keys needed.

Video behaves like a remote provider. ``submit`` only files a task on disk; the first ``poll``
starts rendering in a background thread of the polling process and answers ``queued``; later
polls report rising progress from the task's state file, and the finished MP4 is handed back as
a file for ingest. Because tasks live on disk, a job queued by the CLI can be finished by the
app's worker or by ``python -m mediagen worker``; a render whose process died is restarted.

Given a reference image, ``generate`` edits it (a variation per seed; a mask keeps its opaque
part) and a video starts on it as its first frame (``local_edit``); the image is kept in the
video's task folder, since another process may render it.

Renders are CPU-bound and a video render holds about 100 MiB while it runs, so a process runs at
most ``MEDIAGEN_LOCAL_RENDER_SLOTS`` of them (images and videos together); the rest wait their
turn, reported as queued.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from pydantic import Field

from ..catalog import ModelSpec, parse_size
from ..config import Settings
from .base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState, reference
from .local_art import render_png, scene_for, scene_frame
from .local_edit import MovingStill, edit_png
from .local_models import MODELS
from .settings import ProviderSettings

log = logging.getLogger(__name__)

FPS = 24
# A state file untouched for this long belongs to a render whose process died.
STALE_RENDER_S = 30.0
# The input image a video starts from, kept in its task folder: renders happen in whichever
# process polls, so the task must carry everything it needs.
FIRST_FRAME_FILE = "first-frame"


class LocalSettings(ProviderSettings, env_prefix="MEDIAGEN_LOCAL_"):
    """The offline provider: nothing to switch on, only how much of the machine it may use."""

    render_slots: int = Field(
        2,
        ge=1,
        le=64,
        description="Local renders (images and videos) one process runs at once; more wait their turn. "
        "A video render holds ~100 MiB and a core while it runs.",
    )


_renders: dict[str, threading.Thread] = {}
_renders_lock = threading.Lock()


class LocalProvider:
    def __init__(self, settings: Settings, own: LocalSettings | None = None) -> None:
        self.tasks_dir = settings.data_dir / "local-provider"
        self._slots = threading.BoundedSemaphore((own or LocalSettings()).render_slots)

    # -- images -------------------------------------------------------------------------
    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        width, height = parse_size(params["size"])
        seed = params.get("seed") or 0
        image, mask = reference(references, "image"), reference(references, "mask")
        with self._slots:
            if image is None:
                made = [render_png(prompt, seed + i, width, height) for i in range(params.get("n", 1))]
            else:
                image_data, mask_data = image.read(), mask.read() if mask is not None else None
                # One seed per image, as without an image: n of them are n variations.
                made = [
                    edit_png(image_data, mask_data, prompt, seed + i, width, height) for i in range(params.get("n", 1))
                ]
            outputs = [MediaSource(data=data) for data in made]
        return ImageResult(outputs=outputs, usage={"images": len(outputs), "size": params["size"]})

    # -- videos -------------------------------------------------------------------------
    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        task_id = uuid.uuid4().hex
        task_dir = self.tasks_dir / task_id
        task_dir.mkdir(parents=True)
        task: dict[str, Any] = {"prompt": prompt, "params": params}
        image = reference(references, "image")
        try:
            if image is not None:
                (task_dir / FIRST_FRAME_FILE).write_bytes(image.read())
                task["first_frame"] = FIRST_FRAME_FILE
            # task.json last: a folder without it is not a task yet.
            _write_json(task_dir / "task.json", task)
        except BaseException:
            shutil.rmtree(task_dir, ignore_errors=True)  # no half-filed task left behind
            raise
        return Submitted(task_id)

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        task_dir = self.tasks_dir / task_id
        if not (task_dir / "task.json").exists():
            return PollResult(
                TaskState.FAILED,
                error_code="task_not_found",
                error_message=f"local task {task_id} no longer exists",
            )
        state = _read_json(task_dir / "state.json") or {}
        status = state.get("state")
        if status == TaskState.SUCCEEDED:
            return PollResult(
                TaskState.SUCCEEDED,
                100,
                outputs=[MediaSource(path=task_dir / "output.mp4")],
                usage=state.get("usage", {}),
            )
        if status == TaskState.FAILED:
            return PollResult(TaskState.FAILED, error_code="render_failed", error_message=state.get("error"))
        if status == TaskState.CANCELED:
            return PollResult(TaskState.CANCELED)
        if self._rendering_here(task_id) or (status == TaskState.RUNNING and _renderer_alive(state)):
            # A render waiting for a slot has written no state yet: still queued.
            running = status == TaskState.RUNNING
            return PollResult(TaskState.RUNNING if running else TaskState.QUEUED, int(state.get("progress", 0)))
        self._start_render(task_id)
        return PollResult(TaskState.QUEUED, 0)

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        task_dir = self.tasks_dir / task_id
        if task_dir.exists():
            (task_dir / "cancel").touch()
            if not self._rendering_here(task_id):
                shutil.rmtree(task_dir, ignore_errors=True)
        return True

    def discard(self, task_id: str) -> None:
        """Forget a finished task once its output is safely stored (like a provider's expiry)."""
        shutil.rmtree(self.tasks_dir / task_id, ignore_errors=True)

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for renders running in this process; a one-shot worker calls this before it
        exits, since the renders die with the process."""
        with _renders_lock:
            threads = list(_renders.values())
        for thread in threads:
            thread.join(timeout_s)

    def _rendering_here(self, task_id: str) -> bool:
        with _renders_lock:
            thread = _renders.get(task_id)
            return thread is not None and thread.is_alive()

    def _start_render(self, task_id: str) -> None:
        task_dir = self.tasks_dir / task_id
        with _renders_lock:
            if task_id in _renders and _renders[task_id].is_alive():
                return
            claim = _claim_render(task_dir)
            if claim is None:  # another process renders it, or waits for a slot to
                return
            if (_read_json(task_dir / "state.json") or {}).get("state") in _ENDED:
                os.close(claim)  # it ended between our poll and the claim
                return
            # Daemon threads, so a server stops at once; a render cut short is restarted by the
            # next worker to poll it once its state file goes stale.
            thread = threading.Thread(
                target=self._render_in_slot,
                args=(task_dir, claim),
                name=f"local-render-{task_id[:8]}",
                daemon=True,
            )
            _renders[task_id] = thread
            thread.start()

    def _render_in_slot(self, task_dir: Path, claim: int) -> None:
        try:
            with self._slots:
                if not _canceled(task_dir):  # it may have been canceled while it waited for the slot
                    _render_task(task_dir)
        finally:
            with _renders_lock:
                _renders.pop(task_dir.name, None)
            # A cancel in this process leaves a running render's task to the render; one that came
            # while the render was finishing its file is seen here, once it no longer counts as running.
            if _canceled(task_dir):
                shutil.rmtree(task_dir, ignore_errors=True)
            os.close(claim)


_ENDED = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED)


def _claim_render(task_dir: Path) -> int | None:
    """An exclusive lock on the task's ``render.lock``, held by the process that renders it from the
    moment it queues for a slot (before any state is written) until the render ends; None when
    another process holds it. Without it a second worker polling a task still waiting for a slot
    elsewhere started it again, and the two encoders wrote over each other's files (the job failed
    with "render failed: No such file or directory"). The kernel drops the lock when its process
    dies, so a killed render is taken over at the next poll."""
    try:
        fd = os.open(task_dir / "render.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None  # discarded or canceled meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _canceled(task_dir: Path) -> bool:
    """Canceled here (the marker), or removed by a cancel in another process."""
    return (task_dir / "cancel").exists() or not (task_dir / "task.json").exists()


def _render_task(task_dir: Path) -> None:
    state_file = task_dir / "state.json"
    try:
        task = _read_json(task_dir / "task.json")
        if task is None:
            return
        params = task["params"]
        width, height = parse_size(params["size"])
        frames = int(params["duration"]) * FPS
        _write_json(state_file, _running(0))
        first_frame = (task_dir / task["first_frame"]).read_bytes() if task.get("first_frame") else None
        finished = encode_mp4(
            task_dir / "output.mp4",
            task["prompt"],
            params.get("seed") or 0,
            width,
            height,
            frames,
            on_frame=lambda done: _report(task_dir, done, frames),
            first_frame=first_frame,
        )
    except Exception as exc:
        if not _canceled(task_dir):  # the worker reads this as the provider's failure message
            log.exception("local render failed in %s", task_dir)
            _write_json(
                state_file, {"state": TaskState.FAILED, "error": f"render failed: {exc}", "updated": time.time()}
            )
            return
        # A cancel in another process removed the task under the encoder: that is a cancel too.
        finished = False
    if finished and not _canceled(task_dir):
        usage = {"seconds": int(params["duration"]), "size": params["size"]}
        _write_json(state_file, {"state": TaskState.SUCCEEDED, "progress": 100, "updated": time.time(), "usage": usage})
    else:
        shutil.rmtree(task_dir, ignore_errors=True)
        log.info("local render %s canceled; its files are removed", task_dir.name)


def _renderer_alive(state: dict[str, Any]) -> bool:
    """Whether another process is still rendering: it must have written recently and, when it
    ran on this machine, still exist (a `worker --once` that exited leaves a fresh-looking file)."""
    if time.time() - state.get("updated", 0) >= STALE_RENDER_S:
        return False
    if state.get("host") != socket.gethostname():
        return True
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False  # our own renders are tracked in _renders
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _report(task_dir: Path, done: int, total: int) -> bool:
    """Record progress every few frames; return False once the task was canceled."""
    if (task_dir / "cancel").exists() or not task_dir.exists():
        return False
    if done % 6 == 0:
        progress = min(99, int(done * 100 / total))
        # pid and host on every write: a worker in another process tells a dead render from a live one
        _write_json(task_dir / "state.json", _running(progress))
    return True


def encode_mp4(
    target: Path,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    frames: int,
    on_frame: Any = None,
    first_frame: bytes | None = None,
) -> bool:
    """Render and encode an H.264 MP4 with ``+faststart`` (moov first, so browsers play at once).

    With ``first_frame`` (an image's bytes) the video starts on that image and moves from there
    (``local_edit.MovingStill``). Returns False, leaving no file, if ``on_frame`` asked to stop.
    """
    scene = scene_for(prompt, seed)
    if first_frame is not None:
        frame_at = MovingStill(first_frame, scene, f"{prompt}\x00{seed}", width, height, frames, FPS).frame
    else:

        def frame_at(index: int) -> np.ndarray:
            return scene_frame(scene, width, height, index / FPS)

    partial = target.with_suffix(".part")
    container = av.open(str(partial), mode="w", format="mp4", options={"movflags": "+faststart"})
    try:
        if _encode_frames(container, frame_at, width, height, frames, on_frame):
            container.close()
            os.replace(partial, target)
            return True
    except BaseException:
        _abandon(container, partial)
        raise
    _abandon(container, partial)
    return False


def _encode_frames(
    container: Any, frame_at: Callable[[int], np.ndarray], width: int, height: int, frames: int, on_frame: Any
) -> bool:
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    for index in range(frames):
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame_at(index), format="rgb24")):
            container.mux(packet)
        if on_frame is not None and not on_frame(index + 1):
            return False
    for packet in stream.encode():
        container.mux(packet)
    return True


def _abandon(container: Any, partial: Path) -> None:
    """Close an encode nobody will use and delete its file. Closing still finishes the file, which
    fails when a cancel in another process removed its folder: the outcome is the same."""
    with contextlib.suppress(av.error.FFmpegError, OSError):
        container.close()
    partial.unlink(missing_ok=True)


def _running(progress: int) -> dict[str, Any]:
    return {
        "state": TaskState.RUNNING,
        "progress": progress,
        "updated": time.time(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except FileNotFoundError:
        return  # the task was discarded or canceled meanwhile: its folder is gone, and the file with it


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


ENTRY = ProviderEntry(
    name="local",
    label="Local (offline)",
    settings=LocalSettings,
    factory=lambda own, studio: LocalProvider(studio, own),
    models=lambda _own: MODELS,
)
