"""The answers' shapes as the OpenAPI document states them (OpenAI's, for ``/v1``), and the
error answers every operation may give. Handlers build plain dicts (``views``); these models
document them and let a contract test check each answer against its statement."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorAnswer(BaseModel):
    error: ErrorDetail


_REASONS = {
    400: "A value is refused; `error.param` names it.",
    401: "No API key, or one that is not valid.",
    403: "The key's user may not do this.",
    404: "No such thing, or not yours to see.",
    409: "Its state does not allow this now.",
    413: "The body is too large.",
    429: "Too much is waiting; try again after `Retry-After` seconds.",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": reason} for status, reason in _REASONS.items()
}


class ModelOut(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelOut]


class ImageOut(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesOut(BaseModel):
    created: int
    data: list[ImageOut]
    output_format: Literal["png", "webp", "jpeg"] | None = None


class VideoError(BaseModel):
    code: str
    message: str


class VideoOut(BaseModel):
    id: str
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    size: str
    seconds: str
    remixed_from_video_id: str | None
    error: VideoError | None


class VideoList(BaseModel):
    object: Literal["list"]
    data: list[VideoOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"]
    deleted: bool
