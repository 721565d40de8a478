"""Where a reference image's bytes come from: one of our jobs, a file, a URL or an upload.

Each source is copied chunk by chunk into a file the caller gives, counting as it goes and
stopping at the cap, so memory never grows with what someone sends; a URL goes through the
studio's outbound guard with the same deadline as a provider download.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import httpx
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..auth.roles import Role, User
from ..db.tables import Job
from ..errors import InvalidInput, RefusedURL
from ..netguard import guarded_stream
from ..studio import Studio
from .status import JobKind, JobStatus

CHUNK = 1024 * 1024
SOURCE_KINDS = "a job id, a file path or an http(s) URL"


@dataclass(frozen=True)
class Copied:
    """What a source gave: how many bytes, and who it is for people and for lineage."""

    size: int
    origin: str
    source_job_id: str | None = None


class TooBig(Exception):
    """The source went past the cap; the caller names the field and the limit."""


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _looks_like_job_id(source: str) -> bool:
    return 8 <= len(source) <= 32 and all(c in "0123456789abcdef" for c in source.lower())


def _existing_path(text: str) -> Path | None:
    """The file system entry ``text`` names, if there is one (a name too long or with a NUL
    byte names none)."""
    try:
        path = Path(text).expanduser()
        return path if path.exists() else None
    except (OSError, ValueError, RuntimeError):
        return None


def job_id_in(source: str | None) -> str | None:
    """The job id a ``source`` names, when it names one rather than a file or a URL (as
    ``copy_source`` decides): for callers that record lineage for a job REF."""
    if source is None or is_url(source.strip()) or _existing_path(source.strip()) is not None:
        return None
    return source.strip().lower() if _looks_like_job_id(source.strip()) else None


def copy_source(studio: Studio, field: str, source: str, into: IO[bytes], cap: int, *, reader: User | None) -> Copied:
    """Copy what ``source`` names into ``into``. Files on this machine are read only for the
    studio itself (``reader`` None: the CLI); a person or an API caller uploads them instead."""
    text = source.strip()
    if not text:
        raise InvalidInput(field, "is empty", SOURCE_KINDS)
    if is_url(text):
        return _copy_url(studio, field, text, into, cap)
    if "://" in text:
        raise InvalidInput(field, f"{text.split('://', 1)[0]}:// URLs are not fetched", SOURCE_KINDS)
    path = _existing_path(text)
    if path is not None:
        if reader is not None:
            raise InvalidInput(field, "files on the server are not read for callers; upload the file", SOURCE_KINDS)
        if not path.is_file():
            raise InvalidInput(field, f"{text} is not a file", SOURCE_KINDS)
        with path.open("rb") as handle:
            size = _copy(_read_chunks(handle), into, cap)
        return Copied(size, f"file {path.name}"[:512])
    if _looks_like_job_id(text):
        return _copy_job(studio, field, text.lower(), into, cap, reader)
    raise InvalidInput(field, f"no job or file named {text[:200]!r}", SOURCE_KINDS)


def copy_upload(upload: BinaryIO, into: IO[bytes], cap: int) -> int:
    return _copy(_read_chunks(upload), into, cap)


def copy_stored(studio: Studio, key: str, into: IO[bytes], cap: int) -> int:
    with studio.storage.open(key) as stream:
        return _copy(_read_chunks(stream), into, cap)


def _copy(chunks: Iterator[bytes], into: IO[bytes], cap: int) -> int:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise TooBig
        into.write(chunk)
    into.flush()
    return size


def _read_chunks(stream: BinaryIO | IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _may_read(reader: User | None, owner: str) -> bool:
    """Creators use their own jobs; reviewers and admins see everyone's; the studio itself all."""
    if reader is None:
        return True
    return reader.role in (Role.REVIEWER, Role.ADMIN) or (reader.role is Role.CREATOR and owner == reader.email)


def _copy_job(studio: Studio, field: str, job_id: str, into: IO[bytes], cap: int, reader: User | None) -> Copied:
    allowed = "a succeeded image job of yours"
    with studio.db.read() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).options(selectinload(Job.assets))).one_or_none()
        if job is None or not _may_read(reader, job.owner):
            raise InvalidInput(field, f"no job with id {job_id!r}", allowed)
        if job.kind != JobKind.IMAGE:
            raise InvalidInput(field, f"job {job_id} is a {job.kind}, not an image", allowed)
        if job.status != JobStatus.SUCCEEDED or not job.assets:
            raise InvalidInput(field, f"job {job_id} {job.status} and has no image", allowed)
        key = job.assets[0].key
    try:
        size = copy_stored(studio, key, into, cap)
    except FileNotFoundError:
        raise InvalidInput(field, f"job {job_id}'s image is no longer in storage", allowed) from None
    return Copied(size, f"job {job_id}", source_job_id=job_id)


def _copy_url(studio: Studio, field: str, url: str, into: IO[bytes], cap: int) -> Copied:
    shown = url.split("?", 1)[0][:512]  # a query string may carry a signature
    limits = studio.download_limits
    deadline = time.monotonic() + limits.deadline_s
    allowed = "a public http(s) URL of an image"
    try:
        with (
            contextlib.nullcontext(limits.client) if limits.client is not None else httpx.Client() as client,
            guarded_stream(client, "GET", url, studio.guard) as response,
        ):
            if response.status_code != 200:
                raise InvalidInput(field, f"{shown} answered HTTP {response.status_code}", allowed)
            size = _copy(_until(response.iter_bytes(CHUNK), deadline, field, shown, limits.deadline_s), into, cap)
    except RefusedURL as exc:
        raise InvalidInput(field, f"{shown} is refused: {exc}", allowed) from None
    except httpx.HTTPError as exc:
        raise InvalidInput(field, f"{shown} could not be downloaded ({type(exc).__name__})", allowed) from None
    return Copied(size, shown)


def _until(chunks: Iterator[bytes], deadline: float, field: str, shown: str, limit_s: float) -> Iterator[bytes]:
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise InvalidInput(field, f"downloading {shown} took longer than {limit_s:.0f} s")
        yield chunk
