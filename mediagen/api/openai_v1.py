"""``/v1``: OpenAI's API shapes (models, images, videos), so the official ``openai`` SDK works
against the studio with ``base_url=".../v1"``. Statuses, errors and pagination follow OpenAI's
published schemas; model names and sizes are ours (``GET /v1/models`` lists them, aliases too)."""

from __future__ import annotations

from contextlib import suppress
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from ..auth.roles import Capability, User
from ..errors import Conflict, InvalidInput, NotFound, TooLarge
from ..jobs import actions
from ..jobs.browse import video_page
from ..jobs.references import ImageRef
from ..jobs.status import JobKind, JobStatus
from ..library.deletion import delete_jobs
from ..studio import Studio
from . import idempotency, uploads
from .callers import caller, changeable_job, current_studio, owner_filter, require, visible_job
from .content import stored_bytes
from .openai_images import images_answer
from .seed import generate_image
from .shapes import ERRORS, ImagesOut, ModelList, ModelOut, VideoDeleted, VideoList, VideoOut
from .video_bodies import DOCUMENTED_BODY, as_input_reference, first_frame, read_video_body
from .views import video_resource

router = APIRouter(tags=["OpenAI-compatible"], responses=ERRORS)
Caller = Annotated[User, Depends(caller)]


def _paced(studio_poll_s: float, body: dict[str, Any] | list[Any], status: int = 200) -> JSONResponse:
    """An answer that tells OpenAI's SDK how soon to poll again (``openai-poll-after-ms``)."""
    return JSONResponse(body, status_code=status, headers={"openai-poll-after-ms": str(int(studio_poll_s * 1000))})


@router.get("/models", response_model=ModelList, summary="Models served here, and their aliases")
def list_models(user: Caller) -> dict[str, Any]:
    studio = current_studio()
    return {"object": "list", "data": [_model(studio, name) for name in _model_names(studio)]}


@router.get("/models/{model}", response_model=ModelOut, summary="One model or alias")
def get_model(model: str, user: Caller) -> dict[str, Any]:
    studio = current_studio()
    if model not in studio.catalog:
        hint = f"; {studio.needs(model)}" if studio.known_models.serves(model) else ""
        raise NotFound(f"model {model!r} is not served here{hint}")
    return _model(studio, model)


def _model_names(studio: Studio) -> list[str]:
    return [m.name for m in studio.catalog.models()] + sorted(studio.catalog.aliases)


def _model(studio: Studio, name: str) -> dict[str, Any]:
    spec = studio.catalog.get(name)
    return {"id": name, "object": "model", "created": studio.started_at, "owned_by": spec.provider}


class ImageGeneration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=100_000)
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: str | None = None
    background: str | None = None
    user: str | None = Field(None, max_length=256)
    seed: int | None = None


@router.post("/images/generations", response_model=ImagesOut, summary="Create images (OpenAI's CreateImageRequest)")
async def create_images(body: ImageGeneration, request: Request, user: Caller) -> Response:
    studio = current_studio()

    async def create() -> Response:
        names = ("n", "size", "quality", "style", "output_format", "background", "seed")
        params = {name: getattr(body, name) for name in names if getattr(body, name) is not None}
        job = await generate_image(studio, request, user, body.prompt, body.model, params)
        if isinstance(job, Response):
            return job
        return await run_in_threadpool(images_answer, studio, job, body.response_format or "url")

    return await idempotency.once(studio, request, user, body.model_dump(), create)


@router.post(
    "/videos",
    response_model=VideoOut,
    summary="Create a video (multipart as OpenAI's SDK sends it, or JSON)",
    description="`input_reference`, for models that take one, is the video's first frame: a file part, "
    'or `{"image_url": ...}` (http(s) or a data: URL) in JSON. It is kept with the job as its input.',
    openapi_extra=DOCUMENTED_BODY,
)
async def create_video(request: Request, user: Caller) -> Response:
    studio = current_studio()
    body = await read_video_body(request, studio)
    references: list[ImageRef] = []
    try:
        fields = body.fields
        try:
            references = first_frame(studio, body)
        except (InvalidInput, TooLarge) as exc:
            raise as_input_reference(exc) from None
        fingerprint = fields.model_dump()
        if body.upload is not None:  # the same fields with another image is another request
            fingerprint["input_reference"] = await run_in_threadpool(uploads.digest, body.upload.file)

        async def create() -> Response:
            require(user, Capability.GENERATE, "generate videos")
            params = {"duration": fields.seconds, "size": fields.size}
            try:
                job = await run_in_threadpool(
                    partial(
                        actions.submit_video,
                        studio,
                        fields.prompt,
                        model=fields.model,
                        params={k: v for k, v in params.items() if v is not None},
                        owner=user.email,
                        references=references,
                        reader=user,
                    )
                )
            except (InvalidInput, TooLarge) as exc:
                raise as_input_reference(exc) from None
            return _paced(studio.settings.poll_interval_s, video_resource(job))

        return await idempotency.once(studio, request, user, fingerprint, create)
    finally:
        for ref in references:
            if ref.upload is not None:
                ref.upload.close()
        await body.close()


@router.get("/videos/{video_id}", response_model=VideoOut, summary="A video job (OpenAI's VideoResource)")
async def get_video(video_id: str, user: Caller) -> Response:
    studio = current_studio()
    job = await run_in_threadpool(visible_job, studio, user, video_id, JobKind.VIDEO)
    return _paced(studio.settings.poll_interval_s, video_resource(job))


@router.get("/videos", response_model=VideoList, summary="Video jobs, newest first (cursor pages)")
def list_videos(
    user: Caller,
    after: Annotated[str | None, Query(description="The last id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> Response:
    studio = current_studio()
    jobs, has_more = video_page(
        studio, owner=owner_filter(user), after=after, limit=limit, newest_first=order == "desc"
    )
    data = [video_resource(job) for job in jobs]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
    return _paced(studio.settings.poll_interval_s, body)


@router.delete(
    "/videos/{video_id}",
    response_model=VideoDeleted,
    summary="Delete a video job and its files (canceling it first if it runs)",
)
def delete_video(video_id: str, user: Caller) -> dict[str, Any]:
    studio = current_studio()
    job = changeable_job(studio, user, video_id, "delete", JobKind.VIDEO)
    if not JobStatus(job.status).is_final:
        with suppress(Conflict):  # it ended a moment ago
            actions.cancel_job(studio, video_id, actor=user)
    delete_jobs(studio, [video_id], actor=user)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get(
    "/videos/{video_id}/content",
    summary="A finished video's bytes (Range supported), or its thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"video/mp4": {}, "image/webp": {}}},
        206: {"description": "One byte range.", "content": {"video/mp4": {}}},
        416: {"description": "The range is beyond the end."},
    },
)
def video_content(
    video_id: str,
    request: Request,
    user: Caller,
    variant: Annotated[Literal["video", "thumbnail", "spritesheet"], Query()] = "video",
) -> Response:
    studio = current_studio()
    job = visible_job(studio, user, video_id, JobKind.VIDEO)
    if JobStatus(job.status) is not JobStatus.SUCCEEDED or not job.assets:
        raise Conflict(f"video {video_id} is {job.status}; its content is there once it has completed")
    video = job.assets[0]
    if variant == "spritesheet":
        raise InvalidInput("variant", "spritesheets are not made here", ["video", "thumbnail"])
    if variant == "thumbnail":
        if not video.thumbnail_key:
            raise Conflict(f"video {video_id} has no thumbnail")
        with studio.storage.open(video.thumbnail_key) as handle:
            return Response(handle.read(), media_type="image/webp")
    return stored_bytes(request, studio.storage, video.key, video.bytes, video.content_type)
