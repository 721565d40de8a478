"""Copy provider output into our storage: one path for bytes, base64, URLs and files.

Every source becomes a stream of chunks written to a temporary file on disk while we count and
hash, so memory does not grow with file size. Then the bytes are identified from their magic
numbers (never the provider's word), decoded and thumbnailed, and the file is uploaded from disk
under a deterministic key, so a repeated ingest of the same job overwrites instead of
duplicating. If anything fails, whatever this call stored is deleted again and the temporary
file is removed: a job never keeps half its files.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import httpx
from PIL import Image

from ..errors import IngestError, MediagenError, ProviderError, RefusedURL
from ..jobs.status import JobKind
from ..netguard import OutboundGuard, guarded_stream
from ..providers.base import MediaSource
from ..storage.base import Storage
from .inspect import inspect, thumbnail
from .keys import media_key, thumbnail_key
from .spool import Spool

CHUNK = 1024 * 1024
POSTER_MAX_BYTES = 20 * 1024 * 1024
# Base64 is decoded a multiple of 4 characters at a time so no chunk splits a quantum.
B64_CHUNK = 4 * 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    deadline_s: float
    spool: Spool | None = None  # this process's folder for downloads before upload; None = the system temp dir
    guard: OutboundGuard = field(default_factory=OutboundGuard)  # where URL sources may lead
    # One client for every download of a process: building one loads the CA bundle (~15 ms of CPU),
    # which at many results a second was a third of the cost of storing one.
    client: httpx.Client | None = None


@dataclass(frozen=True)
class StoredMedia:
    index: int
    key: str
    thumbnail_key: str
    content_type: str
    bytes: int
    sha256: str
    width: int
    height: int
    duration_s: float | None


def ingest_outputs(
    storage: Storage,
    sources: Sequence[MediaSource],
    *,
    kind: JobKind,
    job_id: str,
    created_at: datetime,
    limits: Limits,
) -> list[StoredMedia]:
    if not sources:
        raise IngestError("the provider reported success but returned no media")
    written: list[str] = []
    try:
        results = []
        for index, source in enumerate(sources):
            results.append(_ingest_one(storage, source, kind, job_id, created_at, index, limits, written))
        return results
    except BaseException:
        delete_keys(storage, written)
        raise


def delete_keys(storage: Storage, keys: Sequence[str]) -> None:
    for key in keys:
        # Best effort: the caller reports the original failure, not the cleanup's.
        with contextlib.suppress(Exception):
            storage.delete(key)


def _ingest_one(
    storage: Storage,
    source: MediaSource,
    kind: JobKind,
    job_id: str,
    created_at: datetime,
    index: int,
    limits: Limits,
    written: list[str],
) -> StoredMedia:
    folder = limits.spool.claim() if limits.spool is not None else None
    with tempfile.NamedTemporaryFile(prefix="ingest-", suffix=".part", dir=folder) as spool:
        digest, size, deadline = _download(source, spool, index, limits)
        spool.flush()
        info = inspect(spool, kind)  # type: ignore[arg-type]  # a binary temp file
        key = media_key(kind, created_at, job_id, index, info.extension)
        thumb_key = thumbnail_key(key)
        thumb = _provider_poster(source.poster, limits, deadline) or info.thumbnail_webp()
        written.append(key)
        metadata = {"mediagen-job": job_id, "sha256": digest}  # never the prompt: it is not ASCII-safe
        storage.put_file(key, Path(spool.name), info.content_type, metadata)
        written.append(thumb_key)
        storage.put(thumb_key, io.BytesIO(thumb), "image/webp")
        return StoredMedia(
            index=index,
            key=key,
            thumbnail_key=thumb_key,
            content_type=info.content_type,
            bytes=size,
            sha256=digest,
            width=info.width,
            height=info.height,
            duration_s=info.duration_s,
        )


def _download(source: MediaSource, spool: IO[bytes], index: int, limits: Limits) -> tuple[str, int, float]:
    """Copy ``source`` into ``spool`` chunk by chunk, hashing and enforcing the size limit and the
    deadline; return the sha256, the size and the deadline."""
    digest = hashlib.sha256()
    size = 0
    deadline = time.monotonic() + limits.deadline_s
    for chunk in _chunks(source, limits.guard, limits.client):
        size += len(chunk)
        if size > limits.max_bytes:
            raise IngestError(
                f"output {index} is larger than the {limits.max_bytes:,}-byte limit (MEDIAGEN_MAX_MEDIA_BYTES)"
            )
        if time.monotonic() > deadline:
            raise IngestError(f"copying output {index} took longer than {limits.deadline_s:.0f} s")
        digest.update(chunk)
        spool.write(chunk)
    if size == 0:
        raise IngestError(f"output {index} is empty")
    return digest.hexdigest(), size, deadline


def _provider_poster(poster: MediaSource | None, limits: Limits, deadline: float) -> bytes | None:
    """The provider's own still as a WebP thumbnail; None (use our decoded frame) if it fails."""
    if poster is None:
        return None
    try:
        data = bytearray()
        for chunk in _chunks(poster, limits.guard, limits.client):
            data += chunk
            if len(data) > POSTER_MAX_BYTES or time.monotonic() > deadline:
                return None
        with Image.open(io.BytesIO(bytes(data))) as image:
            image.load()
            return thumbnail(image)
    except (MediagenError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _chunks(source: MediaSource, guard: OutboundGuard, client: httpx.Client | None = None) -> Iterator[bytes]:
    if source.data is not None:
        view = memoryview(source.data)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
    elif source.b64 is not None:
        yield from _b64_chunks(source.b64)
    elif source.path is not None:
        with source.path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
    elif source.url is not None:
        yield from _url_chunks(source, guard, client)


def _b64_chunks(text: str) -> Iterator[bytes]:
    if text.startswith("data:"):  # data URLs: "data:image/png;base64,...."
        text = text.partition(",")[2]
    compact = "".join(text.split())
    for start in range(0, len(compact), B64_CHUNK):
        try:
            yield base64.b64decode(compact[start : start + B64_CHUNK], validate=True)
        except (binascii.Error, ValueError):
            raise IngestError("output is not valid base64") from None


def download_client() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))


def _url_chunks(source: MediaSource, guard: OutboundGuard, shared: httpx.Client | None) -> Iterator[bytes]:
    assert source.url is not None
    try:
        with (
            contextlib.nullcontext(shared) if shared is not None else download_client() as client,
            guarded_stream(client, "GET", source.url, guard, headers=dict(source.headers)) as response,
        ):
            if response.status_code >= 400:
                transient = response.status_code in (408, 429) or response.status_code >= 500
                raise ProviderError(
                    f"downloading {source.describe()} failed with HTTP {response.status_code}",
                    code="download_failed",
                    retryable=transient,
                )
            if 300 <= response.status_code < 400:
                raise ProviderError(
                    f"downloading {source.describe()} ended at a redirect (HTTP {response.status_code})",
                    code="download_failed",
                )
            yield from response.iter_bytes(CHUNK)  # the caller enforces size and deadline
    except RefusedURL as exc:
        raise ProviderError(f"download refused: {exc}", code="url_refused") from None
    except httpx.HTTPError as exc:
        raise ProviderError(
            f"downloading {source.describe()} failed: {type(exc).__name__}",
            code="download_failed",
            retryable=True,
        ) from None
