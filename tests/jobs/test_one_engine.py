"""Every generation takes one path: images run through the same step as videos (``worker.step``),
in a bounded pool of the process, so callers of one process generate side by side."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mediagen.db.tables import JobEvent
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.providers import PROVIDERS
from mediagen.providers.base import ImageResult, MediaSource
from mediagen.studio import Studio

from ..support.fakes import ScriptedProvider, scripted_entry


class Gate(ScriptedProvider):
    """Each generation waits at a barrier of ``parties``: the callers get through only if that
    many generate at the same time. Records the most that were inside at once."""

    def __init__(self, parties: int, png: bytes) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=20)
        self.png = png
        self.inside = self.most = 0
        self.threads: set[str] = set()
        self._count = threading.Lock()

    def generate(self, model, prompt, params, references=()) -> ImageResult:  # type: ignore[no-untyped-def, override]
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.threads.add(threading.current_thread().name)
        try:
            self.barrier.wait()
        finally:
            with self._count:
                self.inside -= 1
        return ImageResult([MediaSource(data=self.png)], usage={"images": 1})


def _studio_with(gate: Gate, settings, monkeypatch: pytest.MonkeyPatch, **overrides) -> Studio:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(PROVIDERS, "scripted", scripted_entry(gate))
    return Studio.open(settings.model_copy(update=overrides))


def test_four_callers_of_one_process_generate_at_once(settings, monkeypatch, small_png) -> None:
    gate = Gate(4, small_png)
    studio = _studio_with(gate, settings, monkeypatch)
    try:
        with ThreadPoolExecutor(4) as callers:
            done = list(
                callers.map(lambda n: actions.generate_image(studio, f"p{n}", model="scripted-image"), range(4))
            )
    finally:
        studio.close()
    # Run one after another, the first would have waited at the barrier until it broke.
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 4
    assert gate.most == 4 and all(name.startswith("mediagen-generate") for name in gate.threads)


def test_the_generation_pool_is_bounded(settings, monkeypatch, small_png) -> None:
    gate = Gate(2, small_png)
    studio = _studio_with(gate, settings, monkeypatch, image_concurrency=2)
    try:
        with ThreadPoolExecutor(6) as callers:
            done = list(
                callers.map(lambda n: actions.generate_image(studio, f"p{n}", model="scripted-image"), range(6))
            )
    finally:
        studio.close()
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 6
    assert gate.most == 2  # six callers, never more than two generations at once


def test_an_image_takes_the_same_steps_and_leaves_no_lease(scripted, small_png) -> None:
    studio, provider = scripted
    provider.image_answer = ImageResult([MediaSource(data=small_png)], revised_prompt="a better prompt")
    job = actions.generate_image(studio, "x", model="scripted-image")
    assert [e.status for e in job.events] == ["queued", "running", "succeeded"]
    assert job.attempt == 1 and job.lease_owner is None and job.lease_until is None and job.next_poll_at is None
    assert job.submitted_at is not None and job.revised_prompt == "a better prompt"
    with studio.db.read() as session:
        assert session.query(JobEvent).filter_by(job_id=job.id).count() == 3
    assert queries.get_job(studio, job.id).status == JobStatus.SUCCEEDED
