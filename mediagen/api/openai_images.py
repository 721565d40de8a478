"""``POST /v1/images/edits``: an image changed as a prompt says, multipart as OpenAI's SDK sends
it (``client.images.edit(image=..., mask=..., prompt=...)``), answered as
``/v1/images/generations`` answers (``ImagesResponse``). One image per edit: the SDK sends a list
as several ``image[]`` parts, and a second one is refused naming ``image`` rather than silently
dropped. The image and mask are checked and kept with the job as its inputs (``jobs.references``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse

from ..auth.roles import User
from ..catalog import ModelSpec
from ..db.tables import Job
from ..errors import InvalidInput
from ..jobs.references import ImageRef
from ..jobs.status import JobKind
from ..studio import Studio
from . import idempotency, uploads
from .callers import caller, current_studio
from .seed import generate_image, image_data
from .shapes import ERRORS, ImagesOut

router = APIRouter(tags=["OpenAI-compatible"], responses=ERRORS)
Caller = Annotated[User, Depends(caller)]
FILE_PARTS = ("image", "image[]", "mask")
# The options an edit passes on to the model, as for a generation (the model refuses what it lacks).
PARAMS = ("n", "size", "quality", "output_format", "background", "seed")


def images_answer(studio: Studio, job: Job, response_format: str) -> JSONResponse:
    """OpenAI's ``ImagesResponse`` for a succeeded image job."""
    data = image_data(studio, job, response_format)
    answer: dict[str, Any] = {"created": int(job.created_at.timestamp()), "data": data}
    fmt = job.assets[0].content_type.removeprefix("image/") if job.assets else None
    if fmt in {"png", "webp", "jpeg"}:
        answer["output_format"] = fmt
    return JSONResponse(answer)


class ImageEdit(BaseModel):
    """The text fields of an edit; ``image`` and ``mask`` are file parts."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=100_000, description="What to change.")
    model: str | None = Field(None, description="A model that takes an image; default: the first such image model.")
    n: int | None = Field(None, description="How many images (within what the model allows).")
    size: str | None = Field(None, description="WIDTHxHEIGHT of the result; the image is fitted to it.")
    quality: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: str | None = None
    background: str | None = None
    user: str | None = Field(None, max_length=256, description="The end user, for your own records; not stored.")
    seed: int | None = Field(None, description="Same prompt, image and seed give the same result (where offered).")


def _edit_body_schema() -> dict[str, Any]:
    schema = ImageEdit.model_json_schema()
    binary = {"type": "string", "format": "binary"}
    schema["properties"] = {
        "image": {**binary, "description": "The image to edit (one; PNG, JPEG or WebP as the model takes)."},
        "mask": {**binary, "description": "Where to edit: its fully transparent pixels. A PNG the image's size."},
        **schema["properties"],
    }
    schema["required"] = ["image", "prompt"]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _fields(raw: dict[str, str]) -> ImageEdit:
    try:
        return ImageEdit.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(field, first["msg"]) from None


def edit_model(studio: Studio, name: str | None) -> ModelSpec:
    """The named image model, or the first configured image model that takes an image."""
    if name:
        return studio.model(name, JobKind.IMAGE)
    takers = [m for m in studio.catalog.models(JobKind.IMAGE) if m.image_input("image")]
    if not takers:
        raise InvalidInput("model", "no image model here takes an image to edit", "configure one that does")
    return takers[0]


def _references(spec: ModelSpec, image: list[UploadFile], mask: list[UploadFile]) -> list[ImageRef]:
    if not image:
        raise InvalidInput("image", "is required: the image to edit, as a file part", spec.name)
    refs = []
    for role, files in (("image", image), ("mask", mask)):
        for upload in files:
            uploads.check_fits(spec, role, role, uploads.upload_size(upload.file))
            refs.append(ImageRef(role=role, upload=upload.file, name=upload.filename))
    return refs


@router.post(
    "/images/edits",
    response_model=ImagesOut,
    summary="Edit an image (OpenAI's CreateImageEditRequest, multipart)",
    description="One `image` (the SDK's list of one, `image[]`, too), an optional `mask`, and a prompt. "
    "The image and mask are kept with the job as its inputs.",
    openapi_extra=_edit_body_schema(),
)
async def edit_image(request: Request, user: Caller) -> Response:
    studio = current_studio()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":  # a form without files
        raise InvalidInput("image", "is required: the image to edit, as a file part", "multipart/form-data")
    if kind != "multipart/form-data":
        raise InvalidInput("Content-Type", f"{kind or 'none'} is not accepted", "multipart/form-data")
    form = await uploads.read_multipart(request, studio, FILE_PARTS)
    try:
        body = _fields(uploads.text_fields(form))
        spec = edit_model(studio, body.model)
        image = uploads.file_parts(form, "image") + uploads.file_parts(form, "image[]")
        refs = _references(spec, image, uploads.file_parts(form, "mask"))
        fingerprint = body.model_dump() | {
            ref.role: await run_in_threadpool(uploads.digest, ref.upload) for ref in refs if ref.upload
        }

        async def create() -> Response:
            params = {name: getattr(body, name) for name in PARAMS if getattr(body, name) is not None}
            job = await generate_image(studio, request, user, body.prompt, spec.name, params, references=refs)
            if isinstance(job, Response):
                return job
            return await run_in_threadpool(images_answer, studio, job, body.response_format or "url")

        return await idempotency.once(studio, request, user, fingerprint, create)
    finally:
        await form.close()
