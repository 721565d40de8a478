"""``/api``: the endpoints of the system this studio replaces, with its request and answer shapes,
so its clients and curl recipes work unchanged. Each calls the same core function as the pages."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from ..auth.roles import Capability, User
from ..db.tables import Job
from ..jobs import actions
from ..jobs.references import ImageRef
from ..jobs.status import JobKind, JobStatus
from ..studio import Studio
from . import idempotency
from .callers import caller, changeable_job, current_studio, require, visible_job
from .problems import failed_generation, mediagen_error
from .shapes import ERRORS, ImageOut
from .views import seed_task

router = APIRouter(tags=["seed-compatible"], responses=ERRORS)
Caller = Annotated[User, Depends(caller)]
IDEMPOTENCY_DOC = (
    "Send the same Idempotency-Key again (within 24 h) to get the first answer back; nothing is made twice."
)


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="What to draw.", max_length=100_000)
    model: str | None = Field(None, description="A model or alias from GET /v1/models; default: the first image model.")
    n: int | None = Field(None, description="How many images (within what the model allows).")
    size: str | None = Field(None, description="WIDTHxHEIGHT, e.g. 1024x1024.")
    quality: str | None = Field(None, description="Where the model offers it.")
    style: str | None = Field(None, description="Where the model offers it (dall-e-3: vivid, natural).")
    response_format: Literal["url", "b64_json"] = Field(
        "url", description="`url`: our stored copy's URL; `b64_json`: the bytes, base64."
    )
    user: str | None = Field(None, description="The end user, for your own records; not stored.", max_length=256)
    seed: int | None = Field(None, description="Same prompt and seed give the same result (where offered).")


class ImageAnswer(BaseModel):
    created: int
    data: list[ImageOut]
    model: str
    job_id: str


class VideoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="What should happen.", max_length=100_000)
    model: str | None = Field(None, description="A model or alias from GET /v1/models; default: the first video model.")
    duration: int | str | None = Field(None, description="Length in seconds (within what the model allows).")
    size: str | None = Field(None, description="WIDTHxHEIGHT, e.g. 1280x720 (models with sizes).")
    resolution: str | None = Field(None, description="Models with named resolutions (MiniMax: 768P, 1080P).")
    seed: int | None = Field(None, description="Same prompt and seed give the same result (where offered).")
    webhook_url: str | None = Field(None, description="POSTed the task's final state, signed (Standard Webhooks).")
    image: str | None = Field(
        None,
        description="The first frame, for models that take one: an http(s) URL, or the id of one of your image jobs.",
        max_length=4096,
    )


class TaskCreated(BaseModel):
    task_id: str
    status: str
    created_at: str
    message: str
    check_status_url: str
    retried_from: str | None = None


class TaskResult(BaseModel):
    video_url: str
    thumbnail_url: str | None
    duration: float | None
    resolution: str | None
    file_size: int
    content_type: str


class Task(BaseModel):
    task_id: str
    status: Literal["queued", "processing", "completed", "failed", "cancelled", "timedout"]
    progress: int
    created_at: str
    updated_at: str | None
    completed_at: str | None
    error: str | None
    result: TaskResult | None
    model: str
    retried_from: str | None


def _params(body: BaseModel, *names: str) -> dict[str, Any]:
    return {name: getattr(body, name) for name in names if getattr(body, name) is not None}


def image_data(studio: Studio, job: Job, response_format: str) -> list[dict[str, Any]]:
    """Each image as a URL of our stored copy, or its bytes in base64."""
    data: list[dict[str, Any]] = []
    for asset in job.assets:
        if response_format == "b64_json":
            with studio.storage.open(asset.key) as handle:
                item: dict[str, Any] = {"b64_json": base64.b64encode(handle.read()).decode()}
        else:
            item = {"url": studio.storage.url(asset.key)}
        if job.revised_prompt:
            item["revised_prompt"] = job.revised_prompt
        data.append(item)
    return data


async def generate_image(
    studio: Studio,
    request: Request,
    user: User,
    prompt: str,
    model: str | None,
    params: dict[str, Any],
    references: Sequence[ImageRef] = (),
) -> Job | JSONResponse:
    """Run one image generation for an HTTP caller: the job when it succeeded, else the error
    answer (a failed generation is an answer, recorded, not an exception). ``references``: the
    images it starts from (an edit), a job REF only one this caller may see."""
    require(user, Capability.GENERATE, "generate images")
    future = await run_in_threadpool(
        partial(
            actions.start_image,
            studio,
            prompt,
            model=model,
            params=params,
            owner=user.email,
            references=references,
            reader=user,
        )
    )
    job = await asyncio.wrap_future(future)
    if JobStatus(job.status) is not JobStatus.SUCCEEDED:
        return await mediagen_error(request, failed_generation(job))
    return job


@router.post(
    "/images/generate",
    response_model=ImageAnswer,
    summary="Generate images and wait for them",
    description="Answers once the images are stored. " + IDEMPOTENCY_DOC,
)
async def post_image(body: ImageRequest, request: Request, user: Caller) -> Response:
    studio = current_studio()

    async def create() -> Response:
        params = _params(body, "n", "size", "quality", "style", "seed")
        job = await generate_image(studio, request, user, body.prompt, body.model, params)
        if isinstance(job, Response):
            return job
        data = await run_in_threadpool(image_data, studio, job, body.response_format)
        answer = {"created": int(job.created_at.timestamp()), "data": data, "model": job.model, "job_id": job.id}
        return JSONResponse(answer)

    return await idempotency.once(studio, request, user, body.model_dump(), create)


def _created(request: Request, job: Job, message: str) -> JSONResponse:
    answer = {
        "task_id": job.id,
        "status": "queued",
        "created_at": job.created_at.isoformat(),
        "message": message,
        "check_status_url": str(request.url_for("get_task", task_id=job.id)),
    }
    if job.retried_from:
        answer["retried_from"] = job.retried_from
    return JSONResponse(answer, status_code=202)


@router.post(
    "/videos/generate",
    status_code=202,
    response_model=TaskCreated,
    summary="Queue a video task",
    description="Answers at once; poll `check_status_url`. " + IDEMPOTENCY_DOC,
)
async def post_video(body: VideoRequest, request: Request, user: Caller) -> Response:
    studio = current_studio()

    async def create() -> Response:
        require(user, Capability.GENERATE, "generate videos")
        params = _params(body, "duration", "size", "resolution", "seed")
        job = await run_in_threadpool(
            partial(
                actions.submit_video,
                studio,
                body.prompt,
                model=body.model,
                params=params,
                owner=user.email,
                webhook_url=body.webhook_url,
                references=[ImageRef(source=body.image)] if body.image else [],
                reader=user,  # so a job REF must be one this caller may see, and never a path here
            )
        )
        return _created(request, job, "video task queued; poll check_status_url for its progress")

    return await idempotency.once(studio, request, user, body.model_dump(), create)


@router.get("/videos/tasks/{task_id}", response_model=Task, name="get_task", summary="A video task's state")
async def get_task(task_id: str, user: Caller) -> JSONResponse:
    studio = current_studio()
    job = await run_in_threadpool(visible_job, studio, user, task_id, JobKind.VIDEO)
    # Built as the model states it (a test checks that); not revalidated on every poll.
    return JSONResponse(seed_task(job, studio.storage))


@router.delete(
    "/videos/tasks/{task_id}",
    status_code=204,
    summary="Cancel a video task",
    description="204 when canceled; 409 when it had already ended.",
    responses={409: {"description": "The task had already ended."}},
)
def cancel_task(task_id: str, user: Caller) -> Response:
    studio = current_studio()
    changeable_job(studio, user, task_id, "cancel", JobKind.VIDEO)
    actions.cancel_job(studio, task_id, actor=user)
    return Response(status_code=204)


@router.post(
    "/videos/tasks/{task_id}/retry",
    status_code=202,
    response_model=TaskCreated,
    summary="Retry a failed, canceled or timed-out video task as a new, linked task",
)
async def retry_task(task_id: str, request: Request, user: Caller) -> Response:
    studio = current_studio()

    async def create() -> Response:
        require(user, Capability.GENERATE, "retry videos")
        await run_in_threadpool(changeable_job, studio, user, task_id, "retry", JobKind.VIDEO)
        job = await run_in_threadpool(actions.retry_job, studio, task_id, actor=user)
        return _created(request, job, f"retry of {task_id} queued")

    return await idempotency.once(studio, request, user, {"retry": task_id}, create)
