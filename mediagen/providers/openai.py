"""OpenAI-compatible images (dall-e, gpt-image) and videos (sora).

Request building and response parsing are pure functions; ``OpenAIProvider`` only moves them
over ``ProviderHttp``. Paths are appended to ``OPENAI_BASE_URL``, so gateways that speak the same
API work too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from ..catalog import Choice, ImageInput, IntRange, ModelSpec, Size
from ..errors import InvalidInput, ProviderError
from ..jobs.status import JobKind
from .base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState
from .http import ErrorDetail, ProviderHttp, RemoteProvider, json_or_error
from .references import FilePart, by_field, file_part
from .settings import RemoteSettings


class OpenAISettings(RemoteSettings, env_prefix="OPENAI_"):
    """OpenAI, or any gateway that speaks its API (the base URL decides which)."""

    DEFAULT_BASE_URL = "https://api.openai.com/v1"


RESPONSE_FORMAT = Choice("response_format", "How the provider returns images", ("url", "b64_json"), "url")
GPT_IMAGE_PARAMS = (
    Size(
        "size",
        "Width x height",
        choices=("1024x1024", "1536x1024", "1024x1536", "auto"),
        default_value="1024x1024",
    ),
    IntRange("n", "How many images", 1, 10, 1),
    Choice("quality", "Rendering quality", ("auto", "low", "medium", "high"), "auto"),
    Choice("output_format", "File format", ("png", "jpeg", "webp"), "png"),
    Choice("background", "Transparent needs png or webp", ("auto", "opaque", "transparent"), "auto"),
)


MB = 1024 * 1024
# Images edits (CreateImageEditRequest): the mask is a PNG the size of the image, transparent where
# the model may paint, for every model that edits.
EDIT_MASK = ImageInput("mask", "mask", formats=("png",), max_bytes=4 * MB, same_size_as_image=True)
GPT_IMAGE_INPUTS = (ImageInput("image", "image", formats=("png", "webp", "jpeg"), max_bytes=50 * MB), EDIT_MASK)
DALL_E_2_INPUTS = (ImageInput("image", "image", formats=("png",), max_bytes=4 * MB, square=True), EDIT_MASK)
# Sora's first frame. OpenAI gives no byte limit for it; 20 MB is our conservative default. One
# reseller says it must match the requested size, which OpenAI does not confirm: not enforced.
VIDEO_INPUTS = (ImageInput("image", "input_reference"),)
# What an edit takes of a model's options: dall-e-3 cannot edit, so "style" never goes; the
# response format only for dall-e-2 (gpt-image models always answer in base64).
EDIT_FIELDS = ("n", "size", "quality", "response_format", "output_format", "background")


def _transparent_needs_alpha(params: dict[str, Any]) -> None:
    if params.get("background") == "transparent" and params.get("output_format") == "jpeg":
        raise InvalidInput("background", "transparent needs an output format with alpha", "png, webp")


def _image(
    name: str,
    params: tuple[Any, ...],
    max_prompt: int,
    rules: tuple[Any, ...] = (),
    image_inputs: tuple[ImageInput, ...] = (),
) -> ModelSpec:
    return ModelSpec(
        name=name,
        provider="openai",
        kind=JobKind.IMAGE,
        label=f"OpenAI {name}",
        params=params,
        max_prompt_chars=max_prompt,
        rules=rules,
        image_inputs=image_inputs,
    )


def _video(name: str, sizes: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        name=name,
        provider="openai",
        kind=JobKind.VIDEO,
        label=f"OpenAI {name}",
        max_prompt_chars=32000,
        params=(
            Choice("duration", "Length in seconds", ("4", "8", "12"), "4"),
            Size("size", "Width x height", choices=sizes, default_value="1280x720"),
        ),
        image_inputs=VIDEO_INPUTS,
    )


MODELS = (
    _image(
        "dall-e-2",
        (
            Size(
                "size",
                "Width x height",
                choices=("256x256", "512x512", "1024x1024"),
                default_value="1024x1024",
            ),
            IntRange("n", "How many images", 1, 10, 1),
            RESPONSE_FORMAT,
        ),
        1000,
        image_inputs=DALL_E_2_INPUTS,
    ),
    _image(
        "dall-e-3",
        (
            Size(
                "size",
                "Width x height",
                choices=("1024x1024", "1792x1024", "1024x1792"),
                default_value="1024x1024",
            ),
            IntRange("n", "dall-e-3 makes one image per request", 1, 1, 1),
            Choice("quality", "Rendering quality", ("standard", "hd"), "standard"),
            Choice("style", "Vivid is dramatic, natural is plainer", ("vivid", "natural"), "vivid"),
            RESPONSE_FORMAT,
        ),
        4000,
    ),
    _image("gpt-image-1", GPT_IMAGE_PARAMS, 32000, (_transparent_needs_alpha,), GPT_IMAGE_INPUTS),
    _image("gpt-image-1.5", GPT_IMAGE_PARAMS, 32000, (_transparent_needs_alpha,), GPT_IMAGE_INPUTS),
    _video("sora-2", ("1280x720", "720x1280")),
    _video("sora-2-pro", ("1280x720", "720x1280", "1792x1024", "1024x1792")),
)

_VIDEO_STATES = {
    "queued": TaskState.QUEUED,
    "in_progress": TaskState.RUNNING,
    "completed": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
}


# -- pure request builders and response parsers --------------------------------------------
def image_request(model: ModelSpec, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model.remote_name, "prompt": prompt}
    for name in ("n", "size", "quality", "style", "response_format", "output_format", "background"):
        if name in params:
            body[name] = params[name]
    return body


def edit_form(
    model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference]
) -> list[tuple[str, FilePart | tuple[None, str]]]:
    """The multipart parts of ``POST /images/edits``: the image (and mask) as files, the options
    as plain fields (``(None, value)``), as the official SDK sends them."""
    files = by_field(model, references)
    parts: list[tuple[str, FilePart | tuple[None, str]]] = [(name, file_part(ref)) for name, ref in files.items()]
    fields = {"model": model.remote_name, "prompt": prompt}
    fields |= {name: str(params[name]) for name in EDIT_FIELDS if name in params}
    parts += [(name, (None, value)) for name, value in fields.items()]
    return parts


def parse_images(data: dict[str, Any], request_id: str | None = None) -> ImageResult:
    items = data.get("data")
    if not isinstance(items, list) or not items:
        raise ProviderError("OpenAI returned no images", code="malformed_response")
    outputs, revised = [], None
    for item in items:
        if item.get("b64_json"):
            outputs.append(MediaSource(b64=item["b64_json"]))
        elif item.get("url"):
            outputs.append(MediaSource(url=item["url"]))  # a signed CDN URL: no bearer header
        else:
            raise ProviderError("OpenAI returned an image with neither url nor b64_json", code="malformed_response")
        revised = revised or item.get("revised_prompt")
    usage = {"images": len(outputs)} | (data.get("usage") or {})
    return ImageResult(outputs, usage=usage, revised_prompt=revised, request_id=request_id)


def video_form(
    model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
) -> dict[str, FilePart | tuple[None, str]]:
    """Multipart fields (httpx sends ``(None, value)`` tuples as plain form fields); a first frame
    goes as the ``input_reference`` file part."""
    fields = {
        "model": model.remote_name,
        "prompt": prompt,
        "seconds": str(params["duration"]),
        "size": params["size"],
    }
    form: dict[str, FilePart | tuple[None, str]] = {name: (None, value) for name, value in fields.items()}
    form |= {name: file_part(ref) for name, ref in by_field(model, references).items()}
    return form


def parse_video(data: dict[str, Any], http: ProviderHttp, poll_after_s: float | None) -> PollResult:
    status = data.get("status")
    state = _VIDEO_STATES.get(str(status))
    if state is None:
        raise ProviderError(f"OpenAI reported an unknown video status {status!r}", code="malformed_response")
    progress = int(data.get("progress") or 0)
    if state is TaskState.FAILED:
        error = data.get("error") or {}
        return PollResult(
            state,
            progress,
            error_code=error.get("code") or "video_failed",
            error_message=f"OpenAI: {error.get('message') or 'the video failed'}",
        )
    outputs = []
    if state is TaskState.SUCCEEDED:
        content = f"videos/{data['id']}/content"
        poster = MediaSource(url=http.url(f"{content}?variant=thumbnail"), headers=http.auth_headers)
        outputs.append(MediaSource(url=http.url(f"{content}?variant=video"), headers=http.auth_headers, poster=poster))
    usage = {"seconds": int(data.get("seconds") or 0), "size": data.get("size")}
    return PollResult(state, progress, outputs=outputs, retry_after_s=poll_after_s, usage=usage)


def read_error(response: httpx.Response) -> ErrorDetail:
    error = response.json().get("error") or {}
    return ErrorDetail(str(error.get("message") or response.reason_phrase), error.get("code"), error.get("param"))


def request_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id")


def poll_after_s(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["openai-poll-after-ms"]) / 1000
    except (KeyError, ValueError):
        return None


class OpenAIProvider(RemoteProvider):
    label = "OpenAI"
    read_error = staticmethod(read_error)

    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        if references:
            form = edit_form(model, prompt, params, references)
            response = self.http.call("POST", "images/edits", creates=True, files=form)
        else:
            body = image_request(model, prompt, params)
            response = self.http.call("POST", "images/generations", creates=True, json=body)
        return parse_images(json_or_error(self.http, response), request_id(response))

    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        response = self.http.call("POST", "videos", creates=True, files=video_form(model, prompt, params, references))
        data = json_or_error(self.http, response)
        if not data.get("id"):
            raise ProviderError("OpenAI accepted the video but returned no id", code="malformed_response")
        return Submitted(str(data["id"]), request_id(response))

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        response = self.http.call("GET", f"videos/{task_id}")
        return parse_video(json_or_error(self.http, response), self.http, poll_after_s(response))

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        self.http.call("DELETE", f"videos/{task_id}")
        return True


ENTRY = ProviderEntry(
    name="openai", label="OpenAI", settings=OpenAISettings, factory=OpenAIProvider, models=lambda _own: MODELS
)
