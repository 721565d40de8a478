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
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator

from ..catalog import Choice, ImageInput, IntRange, ModelSpec
from ..errors import ProviderError
from ..jobs.status import JobKind
from .base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState
from .http import ErrorDetail, RemoteProvider, json_or_error
from .minimax import FIRST_FRAME
from .references import by_field, data_url
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


# Replicate takes a file input as a URL, a data URI (best under 1 MB) or a file uploaded to it
# first (up to 100 MB): ours go as the storage URL where there is one, inline when small, else
# uploaded, so a large picture on local storage still works and requests stay small.
DATA_URI_MAX_BYTES = 1024 * 1024
UPLOAD_MAX_BYTES = 100 * 1024 * 1024


class ImageField(BaseModel):
    """A model's input for one of our roles, as declared in ``REPLICATE_IMAGE_INPUTS``."""

    field: str = Field(min_length=1)
    required: bool = False


ImageRole = Literal["image", "mask"]
# Inputs named in Replicate's own model pages for the default and common models; any other model's
# are declared in settings (each model names its inputs its own way). MiniMax's models on Replicate
# hand the first frame to MiniMax, so MiniMax's own limits for it hold there too.
KNOWN_IMAGE_INPUTS: dict[str, tuple[ImageInput, ...]] = {
    "minimax/video-01": (FIRST_FRAME,),
    "minimax/hailuo-02": (FIRST_FRAME,),
}


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

    image_inputs: dict[str, dict[ImageRole, ImageField | str]] = Field(
        {},
        description=(
            "Image inputs of listed models, as JSON: owner/name to {role: input name} with roles image "
            'and mask, e.g. {"black-forest-labs/flux-kontext-pro": {"image": {"field": "input_image", '
            '"required": true}}}; a plain name is an optional input. Adds to and overrides the ones '
            "known for minimax/video-01 and minimax/hailuo-02."
        ),
    )

    @field_validator("image_models", "video_models")
    @classmethod
    def _owner_slash_name(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.count("/") != 1 or not all(name.split("/")):
                raise ValueError(f"{name!r} is not owner/name")
        return value

    @field_validator("image_inputs")
    @classmethod
    def _owner_slash_name_keys(
        cls, value: dict[str, dict[ImageRole, ImageField | str]]
    ) -> dict[str, dict[ImageRole, ImageField | str]]:
        cls._owner_slash_name(list(value))
        return value

    def image_inputs_of(self, model: str) -> tuple[ImageInput, ...]:
        """What ``model`` takes: the known inputs, with the ones declared here added or replacing them."""
        inputs = {known.role: known for known in KNOWN_IMAGE_INPUTS.get(model, ())}
        for role, given in self.image_inputs.get(model, {}).items():
            declared = ImageField(field=given) if isinstance(given, str) else given
            inputs[role] = ImageInput(
                role,
                declared.field,
                required=declared.required,
                max_bytes=UPLOAD_MAX_BYTES,
                same_size_as_image=role == "mask",  # an inpainting mask covers the image pixel for pixel
            )
        return tuple(inputs.values())


def models_from(own: ReplicateSettings) -> tuple[ModelSpec, ...]:
    def spec(name: str, kind: JobKind, params: tuple[Any, ...]) -> ModelSpec:
        return ModelSpec(
            name=name,
            provider="replicate",
            kind=kind,
            label=f"{name} on Replicate",
            params=params,
            image_inputs=own.image_inputs_of(name),
        )

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

    def _create(
        self,
        model: ModelSpec,
        prompt: str,
        params: dict[str, Any],
        references: Sequence[Reference],
        headers: dict[str, str],
    ) -> dict[str, Any]:
        images = {name: self._file_input(ref) for name, ref in by_field(model, references).items()}
        response = self.http.call(
            "POST",
            f"v1/models/{model.remote_name}/predictions",
            creates=True,
            json={"input": prediction_input(prompt, params) | images},
            headers=headers,
        )
        data = json_or_error(self.http, response)
        if not data.get("id"):
            raise ProviderError("Replicate accepted the prediction but returned no id", code="malformed_response")
        return data

    def _file_input(self, ref: Reference) -> str:
        if ref.url is not None:
            return ref.url
        data = ref.read()
        if len(data) <= DATA_URI_MAX_BYTES:
            return data_url(ref, data)
        # Not a create: an upload sent twice leaves one unused file that Replicate expires itself.
        response = self.http.call("POST", "v1/files", files={"content": (ref.name, data, ref.content_type)})
        url = (json_or_error(self.http, response).get("urls") or {}).get("get")
        if not url:
            raise ProviderError(
                "Replicate stored the input image but returned no URL for it", code="malformed_response"
            )
        return str(url)

    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        deadline_s = self.studio_settings.image_deadline_s
        data = self._create(
            model, prompt, params, references, {"Prefer": f"wait={PREFER_WAIT_S}", "Cancel-After": f"{deadline_s}s"}
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
        cancel_after = {"Cancel-After": f"{self.studio_settings.video_deadline_s}s"}
        data = self._create(model, prompt, params, references, cancel_after)
        return Submitted(str(data["id"]))

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        return parse_prediction(json_or_error(self.http, self.http.call("GET", f"v1/predictions/{task_id}")))

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        self.http.call("POST", f"v1/predictions/{task_id}/cancel")
        return True


ENTRY = ProviderEntry(
    name="replicate", label="Replicate", settings=ReplicateSettings, factory=ReplicateProvider, models=models_from
)
