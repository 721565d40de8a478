"""A scripted provider: a real implementation of the provider protocol whose answers a test
chooses, recording every call it receives."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from mediagen.catalog import IntRange, ModelSpec
from mediagen.jobs.status import JobKind
from mediagen.providers.base import ImageResult, PollResult, ProviderEntry, Reference, Submitted
from mediagen.providers.settings import ProviderSettings

VIDEO_MODEL = ModelSpec(
    name="scripted-video",
    provider="scripted",
    kind=JobKind.VIDEO,
    label="Scripted video",
    params=(IntRange("duration", "", 1, 10, 2),),
)
IMAGE_MODEL = ModelSpec(
    name="scripted-image",
    provider="scripted",
    kind=JobKind.IMAGE,
    label="Scripted image",
    params=(IntRange("n", "", 1, 4, 1),),
)


class ScriptedProvider:
    def __init__(self) -> None:
        self.script: deque[PollResult | Exception] = deque()
        self.image_answer: ImageResult | Exception | None = None
        self.submit_error: Exception | None = None
        self.submits: list[tuple[str, dict[str, Any]]] = []
        self.polls: list[str] = []
        self.cancels: list[str] = []
        self.discarded: list[str] = []
        self._lock = threading.Lock()

    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        answer = self.image_answer
        if isinstance(answer, Exception):
            raise answer
        assert answer is not None, "the test did not script an image answer"
        return answer

    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        if self.submit_error is not None:
            raise self.submit_error
        with self._lock:
            self.submits.append((prompt, params))
            return Submitted(f"task-{len(self.submits)}", request_id=f"req-{len(self.submits)}")

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        with self._lock:
            self.polls.append(task_id)
            # The last scripted answer repeats, like a provider that stays in one state.
            answer = self.script.popleft() if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        self.cancels.append(task_id)
        return True

    def discard(self, task_id: str) -> None:
        self.discarded.append(task_id)


def scripted_entry(provider: ScriptedProvider) -> ProviderEntry:
    return ProviderEntry(
        name="scripted",
        label="Scripted",
        settings=ProviderSettings,
        factory=lambda _own, _studio: provider,
        models=lambda _own: (VIDEO_MODEL, IMAGE_MODEL),
    )
