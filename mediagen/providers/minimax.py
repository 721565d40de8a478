"""MiniMax (Hailuo) video: create, query, file retrieve, download.

MiniMax reports errors inside HTTP 200 bodies, so every answer's ``base_resp.status_code`` is
checked: 0 is success, 1002 means "slow down, try later", everything else is final and carries
the provider's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from ..catalog import Choice, ImageInput, ModelSpec
from ..errors import InvalidInput, ProviderError
from ..jobs.status import JobKind
from .base import MediaSource, PollResult, ProviderEntry, Reference, Submitted, TaskState
from .http import ErrorDetail, RemoteProvider, json_or_error
from .references import by_field, url_or_data_url
from .settings import RemoteSettings


class MiniMaxSettings(RemoteSettings, env_prefix="MINIMAX_"):
    """MiniMax (Hailuo) video; the mainland-China API host differs from the default."""

    DEFAULT_BASE_URL = "https://api.minimax.io"


MAX_PROMPT = 2000
RATE_LIMITED = 1002
# base_resp codes that are final, with what the user should understand from them.
_FINAL_CODES: dict[int, tuple[str, str]] = {
    1004: ("auth", "MINIMAX_API_KEY was rejected by MiniMax"),
    2049: ("auth", "MINIMAX_API_KEY was rejected by MiniMax (invalid key)"),
    1008: ("quota", "MiniMax balance is insufficient"),
    1026: ("content_policy", "MiniMax content policy (input)"),
    1027: ("content_policy", "MiniMax content policy (output)"),
    2013: ("bad_request", "MiniMax refused the parameters"),
}
# MiniMax gives no percentage; these make the panel's bar move as its stages pass.
_STAGES: dict[str, tuple[TaskState, int]] = {
    "Preparing": (TaskState.QUEUED, 5),
    "Queueing": (TaskState.QUEUED, 10),
    "Processing": (TaskState.RUNNING, 50),
}


# MiniMax's image-to-video rules for a first frame: JPG, PNG or WebP under 20 MB, the short side
# over 300 px, the aspect ratio between 2:5 and 5:2. Sent as a URL MiniMax fetches or a data URL.
FIRST_FRAME = ImageInput(
    "image",
    "first_frame_image",
    formats=("png", "jpeg", "webp"),
    min_side=301,
    max_aspect=2.5,
    help="The video starts from it; its aspect ratio is the video's",
)
FIRST_FRAME_REQUIRED = replace(FIRST_FRAME, required=True)


def _hailuo_limits(params: dict[str, Any]) -> None:
    if params.get("resolution") == "1080P" and params.get("duration") != "6":
        raise InvalidInput("duration", "1080P videos can only be 6 s long", "6")
    if params.get("duration") == "10" and params.get("resolution") != "768P":
        raise InvalidInput("resolution", "10 s videos are only made at 768P", "768P")


def _hailuo(name: str, resolutions: tuple[str, ...]) -> ModelSpec:
    # Text to video, or from a first frame when one is given.
    return ModelSpec(
        name=name,
        provider="minimax",
        kind=JobKind.VIDEO,
        label=f"MiniMax {name}",
        max_prompt_chars=MAX_PROMPT,
        params=(
            Choice("duration", "Length in seconds", ("6", "10"), "6"),
            Choice("resolution", "1080P only at 6 s; 10 s only at 768P", resolutions, "768P"),
            Choice("prompt_optimizer", "Let MiniMax rewrite the prompt", ("on", "off"), "on"),
        ),
        rules=(_hailuo_limits,),
        image_inputs=(FIRST_FRAME,),
    )


def _classic(name: str, image_inputs: tuple[ImageInput, ...] = ()) -> ModelSpec:
    # The first-generation models take no duration or resolution (6 s at 720P); T2V-01 ones start
    # from text only, I2V-01 ones only from a first frame.
    return ModelSpec(
        name=name,
        provider="minimax",
        kind=JobKind.VIDEO,
        label=f"MiniMax {name} (6 s, 720P)",
        max_prompt_chars=MAX_PROMPT,
        params=(Choice("prompt_optimizer", "Let MiniMax rewrite the prompt", ("on", "off"), "on"),),
        image_inputs=image_inputs,
    )


MODELS = (
    _hailuo("MiniMax-Hailuo-02", ("512P", "768P", "1080P")),
    _hailuo("MiniMax-Hailuo-2.3", ("768P", "1080P")),
    _classic("T2V-01"),
    _classic("T2V-01-Director"),
    _classic("I2V-01", (FIRST_FRAME_REQUIRED,)),
    _classic("I2V-01-Director", (FIRST_FRAME_REQUIRED,)),
    _classic("I2V-01-live", (FIRST_FRAME_REQUIRED,)),
)


# -- pure builders and parsers ---------------------------------------------------------------
def create_request(
    model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model.remote_name,
        "prompt": prompt,
        "prompt_optimizer": params.get("prompt_optimizer", "on") == "on",
    }
    if "duration" in params:
        body["duration"] = int(params["duration"])
    if "resolution" in params:
        body["resolution"] = params["resolution"]
    body |= {name: url_or_data_url(ref) for name, ref in by_field(model, references).items()}
    return body


def check_base_resp(data: dict[str, Any]) -> dict[str, Any]:
    """Raise the right ``ProviderError`` for a non-zero ``base_resp``; return ``data`` otherwise."""
    base = data.get("base_resp")
    if not isinstance(base, dict) or "status_code" not in base:
        raise ProviderError("MiniMax answered without base_resp", code="malformed_response")
    code, text = int(base["status_code"]), str(base.get("status_msg") or "")
    if code == 0:
        return data
    if code == RATE_LIMITED:
        raise ProviderError(f"MiniMax rate limit: {text}", code="rate_limited", retryable=True)
    kind, meaning = _FINAL_CODES.get(code, ("provider_error", "MiniMax error"))
    raise ProviderError(f"{meaning}: {text} (code {code})", code=kind)


def parse_query(data: dict[str, Any]) -> tuple[TaskState, int, str | None, str | None]:
    """(state, progress, file_id, failure message) from a query answer."""
    status = str(data.get("status"))
    if status in _STAGES:
        state, progress = _STAGES[status]
        return state, progress, None, None
    if status == "Success":
        file_id = data.get("file_id")
        if not file_id:  # briefly reported before the file is registered: not done yet
            return TaskState.RUNNING, 95, None, None
        return TaskState.SUCCEEDED, 100, str(file_id), None
    if status == "Fail":
        return TaskState.FAILED, 0, None, "MiniMax could not generate the video"
    raise ProviderError(f"MiniMax reported an unknown status {status!r}", code="malformed_response")


def read_error(response: httpx.Response) -> ErrorDetail:
    base = response.json().get("base_resp") or {}
    return ErrorDetail(str(base.get("status_msg") or response.reason_phrase), str(base.get("status_code")))


class MiniMaxProvider(RemoteProvider):
    label = "MiniMax"
    read_error = staticmethod(read_error)

    def _json(self, method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], httpx.Response]:
        response = self.http.call(method, path, **kwargs)
        return check_base_resp(json_or_error(self.http, response)), response

    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        data, response = self._json(
            "POST", "v1/video_generation", creates=True, json=create_request(model, prompt, params, references)
        )
        if not data.get("task_id"):
            raise ProviderError("MiniMax accepted the video but returned no task_id", code="malformed_response")
        return Submitted(str(data["task_id"]), response.headers.get("trace-id"))

    def poll(self, model: ModelSpec, task_id: str) -> PollResult:
        data, _ = self._json("GET", "v1/query/video_generation", params={"task_id": task_id})
        state, progress, file_id, failure = parse_query(data)
        if state is TaskState.FAILED:
            return PollResult(state, error_code="video_failed", error_message=failure)
        if file_id is None:
            return PollResult(state, progress)
        retrieved, _ = self._json("GET", "v1/files/retrieve", params={"file_id": file_id})
        url = (retrieved.get("file") or {}).get("download_url")
        if not url:
            raise ProviderError("MiniMax returned the file without a download_url", code="malformed_response")
        # A presigned link on another host: our bearer key must not travel with it.
        usage = {"width": data.get("video_width"), "height": data.get("video_height")}
        return PollResult(state, 100, outputs=[MediaSource(url=str(url))], usage=usage)

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        return False  # MiniMax has no cancel endpoint


ENTRY = ProviderEntry(
    name="minimax", label="MiniMax", settings=MiniMaxSettings, factory=MiniMaxProvider, models=lambda _own: MODELS
)
