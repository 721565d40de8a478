"""Reference images: what a generation starts from (a video's first frame, the image an edit
changes, its mask), as callers name them (``ImageRef``), checked and then kept with the job.

Everything is checked before anything is sent or any row written: that the model takes the role,
that a model which needs an image gets one, the type from magic bytes, the size (counted while
copying, stopped at the cap), the dimensions, and that it really decodes. Each refusal names the
field (``image``, ``mask``) and what the model allows. Checked images wait in this process's
spool folder until ``CheckedInputs.store`` copies them under the job's input keys.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import filetype
from PIL import Image

from ..auth.roles import User
from ..catalog import ImageInput, ModelSpec
from ..db.tables import Job, JobInput
from ..errors import Conflict, InvalidInput
from ..media.ingest import delete_keys
from ..media.keys import input_key
from ..studio import Studio
from . import reference_sources as sources
from .reference_sources import Copied, TooBig

SNIFF_BYTES = 8192
# The sniffed MIME type's names: as ``ImageInput.formats`` lists them, and as files are named.
_FORMATS = {
    "image/png": ("png", "png"),
    "image/jpeg": ("jpeg", "jpg"),
    "image/webp": ("webp", "webp"),
    "image/gif": ("gif", "gif"),
}


@dataclass(frozen=True)
class ImageRef:
    """An image a caller names for a generation: exactly one of ``source`` (one of our job ids,
    a file path (CLI only) or an http(s) URL) or ``upload`` (a readable binary stream, with its
    file ``name`` for people)."""

    role: str = "image"
    source: str | None = None
    upload: BinaryIO | None = field(default=None, repr=False, compare=False)
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.source is None) == (self.upload is None):
            raise ValueError("an ImageRef needs exactly one of source or upload")


@dataclass(frozen=True)
class CheckedImage:
    role: str
    path: Path
    content_type: str
    extension: str
    bytes: int
    sha256: str
    width: int
    height: int
    origin: str
    source_job_id: str | None


class CheckedInputs:
    """The checked images of one request, in the order the model declares their roles; their
    spooled copies go when this is closed (use it as a context manager)."""

    def __init__(self, folder: Path | None, images: list[CheckedImage]) -> None:
        self.folder = folder
        self.images = images

    def __enter__(self) -> CheckedInputs:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    @property
    def source_job_id(self) -> str | None:
        """The job whose result the ``image`` is, when it is one of ours."""
        return next((i.source_job_id for i in self.images if i.role == "image"), None)

    def store(self, studio: Studio, created_at: datetime, job_id: str) -> list[JobInput]:
        """Copy every image under the job's input keys; the rows to add with the job. If a copy
        fails, whatever was copied is deleted again (the caller does the same if its
        transaction fails: ``JobInput.key``)."""
        written: list[str] = []
        rows = []
        try:
            for index, image in enumerate(self.images):
                key = input_key(created_at, job_id, index, image.extension)
                written.append(key)
                studio.storage.put_file(key, image.path, image.content_type, {"mediagen-job": job_id})
                rows.append(_row(studio, image, index, key, created_at))
        except BaseException:
            delete_keys(studio.storage, written)
            raise
        return rows


def _row(studio: Studio, image: CheckedImage, index: int, key: str, created_at: datetime) -> JobInput:
    return JobInput(
        index=index,
        role=image.role,
        storage=studio.storage.name,
        key=key,
        content_type=image.content_type,
        bytes=image.bytes,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        origin=image.origin,
        source_job_id=image.source_job_id,
        created_at=created_at,
    )


NO_INPUTS = CheckedInputs(None, [])


def check(studio: Studio, spec: ModelSpec, refs: Sequence[ImageRef], *, reader: User | None = None) -> CheckedInputs:
    """Check ``refs`` for ``spec`` (see the module's docstring) and spool them; ``reader`` is who
    a job REF must be visible to (None: the studio itself, which may also read files)."""
    _check_roles(studio, spec, refs)
    if not refs:
        return NO_INPUTS
    order = [i.role for i in spec.image_inputs]
    folder = Path(tempfile.mkdtemp(prefix="inputs-", dir=studio.spool.claim()))
    checked = CheckedInputs(folder, [])
    try:
        for number, ref in enumerate(sorted(refs, key=lambda r: order.index(r.role))):
            accepts = spec.image_input(ref.role)
            assert accepts is not None  # _check_roles
            checked.images.append(_check_one(studio, ref, accepts, folder / f"{number}.part", reader))
        _check_together(spec, checked.images)
    except BaseException:
        checked.close()
        raise
    return checked


def carried(studio: Studio, job: Job) -> CheckedInputs:
    """The inputs of ``job`` (loaded), spooled again for a new job that starts from the same
    images (a retry): already checked once, copied as they are."""
    if not job.inputs:
        return NO_INPUTS
    folder = Path(tempfile.mkdtemp(prefix="inputs-", dir=studio.spool.claim()))
    checked = CheckedInputs(folder, [])
    try:
        for row in job.inputs:
            path = folder / f"{row.index}.part"
            with path.open("wb") as into:
                try:
                    sources.copy_stored(studio, row.key, into, row.bytes)
                except (FileNotFoundError, TooBig):
                    raise Conflict(f"job {job.id}'s {row.role} is no longer as it was stored ({row.key})") from None
            extension = row.key.rsplit(".", 1)[-1]
            checked.images.append(
                CheckedImage(
                    row.role,
                    path,
                    row.content_type,
                    extension,
                    row.bytes,
                    row.sha256,
                    row.width,
                    row.height,
                    f"job {job.id}",
                    row.source_job_id,
                )
            )
    except BaseException:
        checked.close()
        raise
    return checked


def _check_roles(studio: Studio, spec: ModelSpec, refs: Sequence[ImageRef]) -> None:
    """What needs no reading: the model takes each role, once, and gets what it requires."""
    seen: set[str] = set()
    for ref in refs:
        if spec.image_input(ref.role) is None:
            takers = [m.name for m in studio.catalog.models(spec.kind) if m.image_input(ref.role)]
            problem = f"model {spec.name} does not take {'an image' if ref.role == 'image' else 'a ' + ref.role}"
            raise InvalidInput(ref.role, problem, takers or "no configured model does")
        if ref.role in seen:
            raise InvalidInput(ref.role, "is given more than once", "one")
        seen.add(ref.role)
    for accepts in spec.image_inputs:
        if accepts.required and accepts.role not in seen:
            raise InvalidInput(accepts.role, f"model {spec.name} needs one", accepts.describe())
    if "mask" in seen and "image" not in seen:
        raise InvalidInput("mask", "needs an image to apply to", "a mask together with an image")


def _check_one(studio: Studio, ref: ImageRef, accepts: ImageInput, path: Path, reader: User | None) -> CheckedImage:
    name = ref.role
    with path.open("wb") as into:
        try:
            if ref.upload is not None:
                size = sources.copy_upload(ref.upload, into, accepts.max_bytes)
                copied = Copied(size, f"upload {_file_name(ref.name)}")
            else:
                assert ref.source is not None
                copied = sources.copy_source(studio, name, ref.source, into, accepts.max_bytes, reader=reader)
        except TooBig:
            raise InvalidInput(name, f"is larger than {accepts.max_bytes:,} bytes", accepts.describe()) from None
    if copied.size == 0:
        raise InvalidInput(name, "is empty", accepts.describe())
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        digest.update(head)
        while chunk := handle.read(sources.CHUNK):
            digest.update(chunk)
    guess = filetype.guess(head)
    mime = guess.mime if guess else None
    format_name, extension = _FORMATS.get(mime or "", (None, ""))
    if format_name not in accepts.formats:
        what = mime if mime else "not a file type we recognise"
        raise InvalidInput(name, f"is {what}, not an image this model takes", accepts.describe())
    width, height, has_alpha = _decode(name, path, accepts)
    if ref.role == "mask" and not has_alpha:
        raise InvalidInput(name, "has no transparency: its transparent pixels mark where to edit", "a PNG with alpha")
    return CheckedImage(
        ref.role,
        path,
        mime or "",
        extension,
        copied.size,
        digest.hexdigest(),
        width,
        height,
        copied.origin,
        copied.source_job_id,
    )


def _decode(name: str, path: Path, accepts: ImageInput) -> tuple[int, int, bool]:
    """Width, height and whether it has an alpha channel, after checking the sides from the
    header (before decoding anything large) and then that every pixel decodes."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            _check_sides(name, width, height, accepts)
            image.load()
            has_alpha = "A" in image.getbands() or "transparency" in image.info
    except InvalidInput:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidInput(name, f"does not decode as an image ({exc})", accepts.describe()) from None
    return width, height, has_alpha


def _check_sides(name: str, width: int, height: int, accepts: ImageInput) -> None:
    size = f"{width}x{height}"
    if not (accepts.min_side <= width <= accepts.max_side and accepts.min_side <= height <= accepts.max_side):
        raise InvalidInput(name, f"is {size} px", accepts.describe())
    if accepts.square and width != height:
        raise InvalidInput(name, f"is {size} px, not square", accepts.describe())
    if accepts.max_aspect and max(width, height) > accepts.max_aspect * min(width, height):
        raise InvalidInput(name, f"is {size} px, too long and narrow", accepts.describe())


def _check_together(spec: ModelSpec, images: list[CheckedImage]) -> None:
    image = next((i for i in images if i.role == "image"), None)
    for checked in images:
        accepts = spec.image_input(checked.role)
        if image is None or accepts is None or not accepts.same_size_as_image or checked is image:
            continue
        if (checked.width, checked.height) != (image.width, image.height):
            problem = f"is {checked.width}x{checked.height} px but the image is {image.width}x{image.height} px"
            raise InvalidInput(checked.role, problem, accepts.describe())


def _file_name(name: str | None) -> str:
    """A file name for people: its last path part, printable, not too long."""
    base = re.split(r"[\\/]", name or "")[-1]
    return "".join(c for c in base if c.isprintable())[:200] or "image"
