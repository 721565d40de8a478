"""Replicate predictions, for image and video models named owner/name in settings.

Images are created with ``Prefer: wait`` so most answer in one call; one that is still running
is polled to the end. Videos are submitted and polled by the workers. ``Cancel-After`` asks
Replicate itself to stop a prediction that outlives our deadline, so nothing runs up a bill after
we gave up on it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import AliasChoices, Field, SecretStr, field_validator

from ..catalog import Choice, IntRange, ModelSpec
from ..errors import ProviderError
from ..jobs.status import JobKind
from .base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState
from .http import ErrorDetail, RemoteProvider, json_or_error
from .settings import RemoteSettings

PREFER_WAIT_S = 60
IMAGE_POLL_S = 1.0
_STATES = {
    "starting": TaskState.QUEUED,
    "processing": TaskState.RUNNING,
    "succeeded": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
    "canceled": TaskState.CANCELED,
    "aborted": TaskState.CANCELED,
}
_PERCENT = re.compile(r"(\d{1,3})%")
SEED = IntRange("seed", "Same prompt and seed give the same result", 0, 2**31 - 1, None)
IMAGE_PARAMS = (
    Choice(
        "aspect_ratio",
        "Sent as the model's aspect_ratio input",
        ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"),
        "1:1",
    ),
    IntRange("n", "How many images (num_outputs)", 1, 4, 1),
    Choice("output_format", "File format", ("webp", "png", "jpg"), "webp"),
    SEED,
)
VIDEO_PARAMS = (
    IntRange("duration", "Length in seconds", 1, 10, 5),
    Choice("aspect_ratio", "Sent as the model's aspect_ratio input", ("16:9", "9:16", "1:1"), "16:9"),
    SEED,
)


class ReplicateSettings(RemoteSettings, env_prefix="REPLICATE_"):
    """Replicate, for the image and video models listed here."""

    DEFAULT_BASE_URL = "https://api.replicate.com"

    # Replicate's own SDK reads REPLICATE_API_TOKEN.
    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("REPLICATE_API_TOKEN", "MEDIAGEN_REPLICATE_API_TOKEN"),
        description="Switches the provider on; never logged or stored.",
    )
    image_models: list[str] = Field(
        ["black-forest-labs/flux-schnell"],
        description="Replicate image models offered, as owner/name (JSON list in the environment).",
    )
    video_models: list[str] = Field(
        ["minimax/video-01"],
        description="Replicate video models offered, as owner/name (JSON list in the environment).",
    )

    @field_validator("image_models", "video_models")
    @classmethod
    def _owner_slash_name(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.count("/") != 1 or not all(name.split("/")):
                raise ValueError(f"{name!r} is not owner/name")
        return value


def models_from(own: ReplicateSettings) -> tuple[ModelSpec, ...]:
    def spec(name: str, kind: JobKind, params: tuple[Any, ...]) -> ModelSpec:
        return ModelSpec(name=name, provider="replicate", kind=kind, label=f"{name} on Replicate", params=params)

    return tuple(spec(n, JobKind.IMAGE, IMAGE_PARAMS) for n in own.image_models) + tuple(
        spec(n, JobKind.VIDEO, VIDEO_PARAMS) for n in own.video_models
    )


# -- pure builders and parsers ---------------------------------------------------------------
def prediction_input(prompt: str, params: dict[str, Any]) -> dict[str, Any]:
    renamed = {"n": "num_outputs"}
    return {"prompt": prompt} | {renamed.get(k, k): v for k, v in params.items()}


def parse_prediction(data: dict[str, Any]) -> PollResult:
    status = str(data.get("status"))
    state = _STATES.get(status)
    if state is None:
        raise ProviderError(f"Replicate reported an unknown status {status!r}", code="malformed_response")
    metrics = data.get("metrics") or {}
    usage = {"predict_time_s": metrics["predict_time"]} if "predict_time" in metrics else {}
    if state is TaskState.FAILED:
        return PollResult(
            state, error_code="prediction_failed", error_message=f"Replicate: {data.get('error') or 'failed'}"
        )
    if state is TaskState.SUCCEEDED:
        return PollResult(
            state, 100, outputs=[MediaSource(url=u) for u in _output_urls(data.get("output"))], usage=usage
        )
    return PollResult(state, _progress(data.get("logs")) if state is TaskState.RUNNING else 0)


def _output_urls(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output]
    if isinstance(output, list) and output and all(isinstance(u, str) for u in output):
        return output
    raise ProviderError("Replicate succeeded but its output has no file URLs", code="malformed_response")


def _progress(logs: Any) -> int:
    """Many models log a progress bar; its last percentage is the best estimate we have."""
    found = _PERCENT.findall(logs) if isinstance(logs, str) else []
    return min(99, int(found[-1])) if found else 50


def read_error(response: httpx.Response) -> ErrorDetail:
    data = response.json()
    return ErrorDetail(str(data.get("detail") or data.get("title") or response.reason_phrase))


class ReplicateProvider(RemoteProvider):
    label = "Replicate"
    read_error = staticmethod(read_error)
    min_timeout_s = PREFER_WAIT_S + 10  # Prefer: wait holds the request open

    def _create(self, model: ModelSpec, prompt: str, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        response = self.http.call(
            "POST",
            f"v1/models/{model.remote_name}/predictions",
            creates=True,
            json={"input": prediction_input(prompt, params)},
            headers=headers,
        )
        data = json_or_error(self.http, response)
        if not data.get("id"):
            raise ProviderError("Replicate accepted the prediction but returned no id", code="malformed_response")
        return data

    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        deadline_s = self.studio_settings.image_deadline_s
        data = self._create(
            model, prompt, params, {"Prefer": f"wait={PREFER_WAIT_S}", "Cancel-After": f"{deadline_s}s"}
        )
        give_up = time.monotonic() + deadline_s
        result = parse_prediction(data)
        while result.state in (TaskState.QUEUED, TaskState.RUNNING):
            if time.monotonic() > give_up:
                self.cancel(model, data["id"])
                raise ProviderError(f"Replicate did not finish within {deadline_s} s; canceled there", code="timed_out")
            time.sleep(IMAGE_POLL_S)
            result = self.poll(model, data["id"])
        if result.state is not TaskState.SUCCEEDED:
            raise ProviderError(
                result.error_message or "Replicate canceled the prediction",
                code=result.error_code or "canceled",
            )
        return ImageResult(result.outputs, usage=result.usage, request_id=str(data["id"]))

    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        data = self._create(model, prompt, params, {"Cancel-After": f"{self.studio_settings.video_deadline_s}s"})
        return Submitted(str(data["id"]))

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        return parse_prediction(json_or_error(self.http, self.http.call("GET", f"v1/predictions/{task_id}")))

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        self.http.call("POST", f"v1/predictions/{task_id}/cancel")
        return True


ENTRY = ProviderEntry(
    name="replicate", label="Replicate", settings=ReplicateSettings, factory=ReplicateProvider, models=models_from
)
