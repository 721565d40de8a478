"""OpenAI-compatible images (dall-e, gpt-image) and videos (sora).

Request building and response parsing are pure functions; ``OpenAIProvider`` only moves them
over ``ProviderHttp``. Paths are appended to ``OPENAI_BASE_URL``, so gateways that speak the same
API work too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from ..catalog import Choice, IntRange, ModelSpec, Size
from ..errors import InvalidInput, ProviderError
from ..jobs.status import JobKind
from .base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState
from .http import ErrorDetail, ProviderHttp, RemoteProvider, json_or_error
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


def _transparent_needs_alpha(params: dict[str, Any]) -> None:
    if params.get("background") == "transparent" and params.get("output_format") == "jpeg":
        raise InvalidInput("background", "transparent needs an output format with alpha", "png, webp")


def _image(name: str, params: tuple[Any, ...], max_prompt: int, rules: tuple[Any, ...] = ()) -> ModelSpec:
    return ModelSpec(
        name=name,
        provider="openai",
        kind=JobKind.IMAGE,
        label=f"OpenAI {name}",
        params=params,
        max_prompt_chars=max_prompt,
        rules=rules,
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
    _image("gpt-image-1", GPT_IMAGE_PARAMS, 32000, (_transparent_needs_alpha,)),
    _image("gpt-image-1.5", GPT_IMAGE_PARAMS, 32000, (_transparent_needs_alpha,)),
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


def video_form(model: ModelSpec, prompt: str, params: dict[str, Any]) -> dict[str, tuple[None, str]]:
    """Multipart fields (httpx sends ``(None, value)`` tuples as plain form fields)."""
    fields = {
        "model": model.remote_name,
        "prompt": prompt,
        "seconds": str(params["duration"]),
        "size": params["size"],
    }
    return {name: (None, value) for name, value in fields.items()}


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
        response = self.http.call("POST", "images/generations", creates=True, json=image_request(model, prompt, params))
        return parse_images(json_or_error(self.http, response), request_id(response))

    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        response = self.http.call("POST", "videos", creates=True, files=video_form(model, prompt, params))
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
