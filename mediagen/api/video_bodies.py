"""The body of ``POST /v1/videos`` as OpenAI's SDK sends it (multipart, ``input_reference`` a file
part) or as JSON (``input_reference`` OpenAI's ``ImageRefParam``: ``{"image_url": ...}`` or
``{"file_id": ...}``), read into the fields and the first frame's ``ImageRef``.

``image_url`` is an http(s) URL, fetched through the outbound guard when the job is made, or a
``data:image/...;base64,`` URL (within the JSON body's 1 MiB: send larger images as a file part).
OpenAI's file ids mean nothing here; ``file_id`` may instead name one of the caller's image jobs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from ..errors import InvalidInput, TooLarge
from ..jobs.references import ImageRef
from ..jobs.status import JobKind
from ..studio import Studio
from . import uploads

FIELD = "input_reference"
_JOB_ID = re.compile(r"^[0-9a-f]{8,32}$")
URL_KINDS = "an http(s) URL or a data:image/...;base64, URL"


class ImageReference(BaseModel):
    """OpenAI's ``ImageRefParam``: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(None, description="An http(s) URL we fetch, or a data:image/...;base64, URL.")
    file_id: str | None = Field(None, description="Here: the id of one of your image jobs.")


class VideoCreation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=100_000)
    model: str | None = None
    seconds: str | None = Field(None, description='Length in seconds, as a string ("4").')
    size: str | None = Field(None, description="WIDTHxHEIGHT, e.g. 1280x720.")
    input_reference: ImageReference | None = Field(
        None, description="The first frame, for models that take one (GET /v1/models; the studio's model list)."
    )


def _documented_bodies() -> dict[str, Any]:
    as_json = VideoCreation.model_json_schema()
    as_parts = VideoCreation.model_json_schema()
    as_parts["properties"][FIELD] = {
        "type": "string",
        "format": "binary",
        "description": "The first frame, an image file (PNG, JPEG or WebP as the model takes).",
    }
    as_parts.pop("$defs", None)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": as_json},
                "multipart/form-data": {"schema": as_parts},
            },
        }
    }


DOCUMENTED_BODY = _documented_bodies()


@dataclass
class VideoBody:
    fields: VideoCreation
    upload: UploadFile | None = None
    form: FormData | None = None

    async def close(self) -> None:
        if self.form is not None:
            await self.form.close()


def _validated(raw: Any) -> VideoCreation:
    if not isinstance(raw, dict):
        raise InvalidInput("body", "must be an object with at least a prompt")
    try:
        return VideoCreation.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(field, first["msg"]) from None


async def read_video_body(request: Request, studio: Studio) -> VideoBody:
    """The create body as OpenAI's SDK sends it (multipart) or as JSON; the caller closes it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            raw: Any = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidInput("body", "is not valid JSON") from None
        return VideoBody(_validated(raw))
    if kind == "application/x-www-form-urlencoded":
        form = await request.form()
        return VideoBody(_validated(_with_reference_object(uploads.text_fields(form))), form=form)
    if kind == "multipart/form-data":
        form = await uploads.read_multipart(request, studio, (FIELD,))
        try:
            files = uploads.file_parts(form, FIELD)
            body = VideoBody(_validated(_with_reference_object(uploads.text_fields(form))), form=form)
        except BaseException:
            await form.close()
            raise
        body.upload = files[0] if files else None
        return body
    raise InvalidInput("Content-Type", f"{kind or 'none'} is not accepted", "multipart/form-data, application/json")


def _with_reference_object(fields: dict[str, str]) -> dict[str, Any]:
    """A form's text fields; an ``input_reference`` given as text is the JSON object's text."""
    raw: dict[str, Any] = dict(fields)
    if FIELD in raw:
        try:
            raw[FIELD] = json.loads(raw[FIELD])
        except ValueError:
            raise InvalidInput(FIELD, "as text must be a JSON object", 'a file part, or {"image_url": "..."}') from None
    return raw


def first_frame(studio: Studio, body: VideoBody) -> list[ImageRef]:
    """The ``ImageRef`` the body names for the video's first frame (none, or one)."""
    given = body.fields.input_reference
    if body.upload is None and given is None:
        return []
    spec = studio.model(body.fields.model, JobKind.VIDEO)
    accepted = spec.image_input("image")
    cap = accepted.max_bytes if accepted else uploads.largest_accepted(studio, "image")
    if body.upload is not None:
        uploads.check_fits(spec, "image", FIELD, uploads.upload_size(body.upload.file))
        return [ImageRef(upload=body.upload.file, name=body.upload.filename)]
    assert given is not None
    if (given.image_url is None) == (given.file_id is None):
        raise InvalidInput(FIELD, "needs exactly one of image_url and file_id", URL_KINDS)
    if given.file_id is not None:
        job_id = given.file_id.strip().lower()
        if not _JOB_ID.match(job_id):
            raise InvalidInput(f"{FIELD}.file_id", "OpenAI's file ids are not known here", "one of your image job ids")
        return [ImageRef(source=job_id)]
    assert given.image_url is not None
    field = f"{FIELD}.image_url"
    if uploads.url_kind(field, given.image_url) == "http":
        return [ImageRef(source=given.image_url.strip())]
    decoded = uploads.decode_data_url(field, given.image_url.strip(), cap)
    return [ImageRef(upload=decoded, name="input_reference")]


def as_input_reference(exc: InvalidInput | TooLarge) -> InvalidInput | TooLarge:
    """A refusal of the first frame, named as the caller sent it (the checks call it ``image``)."""
    if exc.field != "image":
        return exc
    if isinstance(exc, TooLarge):
        return TooLarge(str(exc).replace("image:", f"{FIELD}:", 1), field=FIELD)
    return InvalidInput(FIELD, exc.problem, exc.allowed)
