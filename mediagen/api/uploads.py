"""Images sent to ``/v1`` (an edit's ``image`` and ``mask``, a video's ``input_reference``), turned
into ``jobs.references.ImageRef`` for ``actions``, which checks what they are and stores them.

Multipart bodies are parsed here rather than by ``Request.form()`` so each file part is counted
as it arrives: one larger than any served model takes is cut off there (413, naming the field)
instead of being spooled whole first. Starlette's spooling keeps at most 1 MiB of a part in
memory; the rest waits in a temporary file until the references are stored. A URL (JSON's
``{"image_url": ...}``) may be http(s), fetched through the outbound guard when the job is made,
or a ``data:`` URL; never a path on this machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import Scope

from ..catalog import ModelSpec
from ..errors import InvalidInput, TooLarge
from ..studio import Studio

# Form fields are prompts and options: a prompt is at most 100,000 characters.
MAX_FIELD_BYTES = 512 * 1024
MAX_FIELDS = 40
SPOOLED_IN_MEMORY = 1024 * 1024
# How OpenAI's SDK names the parts, and which of our roles each is.
ROLE_OF_PART = {"image": "image", "image[]": "image", "mask": "mask", "input_reference": "image"}
# The routes that take uploads, within the /v1 mount: their bodies may be larger than JSON's.
UPLOAD_ROUTES = {"/images/edits": ("image", "mask"), "/videos": ("image",)}


def mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def largest_accepted(studio: Studio, role: str) -> int:
    """The most bytes any served model takes for ``role``; 0 when none takes one."""
    sizes = [i.max_bytes for m in studio.catalog.models() for i in m.image_inputs if i.role == role]
    return max(sizes, default=0)


def body_allowance(scope: Scope, json_limit: int, studio: Callable[[], Studio]) -> int:
    """How large a request body may be: JSON's limit, plus room for the images of an upload route
    (multipart only: a JSON body is read whole)."""
    if scope.get("method") != "POST":
        return json_limit
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    roles = UPLOAD_ROUTES.get(path)
    headers = dict(scope["headers"])
    if not roles or not headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
        return json_limit
    served = studio()
    return json_limit + sum(largest_accepted(served, role) for role in roles)


class _CountedParts(MultiPartParser):
    """Starlette's multipart parser, refusing a file part under a name this call does not take,
    a second image, and a file over its cap, while the body streams in."""

    def __init__(self, request: Request, caps: Mapping[str, int]) -> None:
        super().__init__(
            request.headers,
            request.stream(),
            max_files=len(caps),
            max_fields=MAX_FIELDS,
            max_part_size=MAX_FIELD_BYTES,
        )
        self.spool_max_size = SPOOLED_IN_MEMORY
        self._caps = caps
        self._roles_seen: set[str] = set()
        self._file_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._file_bytes = 0

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        name = self._current_part.field_name
        if self._current_part.file is None:
            return
        role = ROLE_OF_PART.get(name)
        if role is None or name not in self._caps:
            files = sorted(name for name in self._caps if name != "image[]")
            raise InvalidInput(name, "is not a file this call takes", files)
        if role in self._roles_seen:  # named as OpenAI names it: ``image``, however many ``image[]`` parts
            raise InvalidInput(role, f"one {role} per request is taken here; a second one was sent", f"one {role}")
        self._roles_seen.add(role)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self._file_bytes += end - start
            cap = self._caps[self._current_part.field_name]
            if self._file_bytes > cap:
                field = ROLE_OF_PART[self._current_part.field_name]
                if self._current_part.field_name == "input_reference":
                    field = "input_reference"
                raise TooLarge(f"{field}: the upload is over {mb(cap)}, the most any model here takes", field=field)
        super().on_part_data(data, start, end)


async def read_multipart(request: Request, studio: Studio, parts: tuple[str, ...]) -> FormData:
    """The form, its files spooled; ``parts`` are the file parts this call takes. The caller
    closes it (``await form.close()``)."""
    caps = {name: largest_accepted(studio, ROLE_OF_PART[name]) for name in parts}
    try:
        return await _CountedParts(request, caps).parse()
    except MultiPartException as exc:
        raise InvalidInput("body", f"is not valid multipart: {exc.message}") from None


def text_fields(form: FormData) -> dict[str, str]:
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


def file_parts(form: FormData, name: str) -> list[UploadFile]:
    return [value for value in form.getlist(name) if not isinstance(value, str)]


def check_fits(spec: ModelSpec, role: str, field: str, size: int) -> None:
    """413 naming ``field`` when ``size`` is over what ``spec`` takes for ``role`` (what else it
    must be is checked with the rest when the job is made)."""
    accepted = spec.image_input(role)
    if accepted is not None and size > accepted.max_bytes:
        raise TooLarge(
            f"{field}: {mb(size)} is over the {mb(accepted.max_bytes)} model {spec.name} takes "
            f"(allowed: {accepted.describe()})",
            field=field,
        )


def digest(stream: BinaryIO) -> str:
    """The sha256 of a spooled upload, read from the start and rewound (for idempotency)."""
    stream.seek(0)
    hashed = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        hashed.update(chunk)
    stream.seek(0)
    return hashed.hexdigest()


def upload_size(stream: BinaryIO) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


def decode_data_url(field: str, url: str, cap: int) -> BytesIO:
    """A ``data:image/...;base64,`` URL's bytes (it came in a JSON body, within its 1 MiB);
    refused over ``cap``."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidInput(field, "a data: URL must be base64 (data:image/png;base64,...)")
    if len(payload) * 3 // 4 > cap:
        raise TooLarge(f"{field}: the image is over {mb(cap)}, the most the model takes", field=field)
    try:
        return BytesIO(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "the data: URL is not valid base64") from None


def url_kind(field: str, url: Any) -> str:
    """``http`` or ``data``; anything else (a path here, ftp:, file:) is refused naming ``field``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(field, "must be a URL", "an http(s) URL or a data:image/...;base64, URL")
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme in {"http", "https"}:
        return "http"
    if scheme == "data":
        return "data"
    raise InvalidInput(field, f"{scheme or 'a URL without a scheme'} is not taken", "http, https, data")
