"""Zip downloads of a collection or a selection, streamed from storage while they are sent.

The answer announces the zip's length before its first byte, so every file is checked in storage
first (present, at its recorded size): once sending has begun, a missing file could only cut the
zip short. File names, of the zip and inside it, are made safe on every system.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import zipstream
from pathvalidate import sanitize_filename
from sqlalchemy import select

from ..db.tables import Asset, CollectionAsset, Job
from ..errors import Conflict, InvalidInput
from ..jobs.browse import JobFilters, has_full_text
from ..studio import Studio
from .collections import owned_collection

# A zip is one request that reads every file it names; past this, ask for a narrower selection.
MAX_ZIP_FILES = 1000
CHUNK = 1024 * 1024
DEFAULT_NAME = "mediagen"
# Look-ups in flight while checking a zip's files (S3: one HEAD each; boto3 pools 10 connections).
CHECKS_IN_FLIGHT = 8
NAMED_AT_MOST = 20  # problems listed in the refusal; the rest are counted
_PLAIN_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")


def assets_to_zip(
    studio: Studio,
    *,
    owner: str,
    collection_id: int | None = None,
    job_ids: Sequence[str] = (),
    filters: JobFilters | None = None,
) -> list[tuple[Asset, Job]]:
    """The assets of a collection (of this owner), of the given jobs, or of the jobs matching
    ``filters`` (as the gallery shows them), newest first."""
    query = select(Asset, Job).join(Job, Job.id == Asset.job_id)
    with studio.db.read() as session:
        if collection_id is not None:
            owned_collection(session, owner, collection_id)
            query = query.join(CollectionAsset, CollectionAsset.asset_id == Asset.id).where(
                CollectionAsset.collection_id == collection_id
            )
        elif job_ids:
            query = query.where(Job.id.in_(list(job_ids)))
        elif filters is not None:
            query = filters.validate().apply(query, full_text=has_full_text(studio.db))
        else:
            raise InvalidInput("selection", "choose a collection or some jobs to download")
        rows = session.execute(query.order_by(Job.created_at.desc(), Asset.index).limit(MAX_ZIP_FILES + 1)).all()
    if len(rows) > MAX_ZIP_FILES:
        raise InvalidInput(
            "selection", f"more than {MAX_ZIP_FILES} files; narrow it down", f"at most {MAX_ZIP_FILES} per zip"
        )
    return [(asset, job) for asset, job in rows]


def download_name(requested: str | None) -> str:
    """The file name a browser saves the zip under: what was asked for (a collection's name, say)
    with what no file system allows replaced (``/``, ``\\``, ``:``, control characters, reserved
    names such as CON); ``mediagen.zip`` when nothing usable is left."""
    return f"{_safe_file_name(requested or '') or DEFAULT_NAME}.zip"


def zip_name(asset: Asset, job: Job) -> str:
    """Unique within any zip (a job's id and the asset's index), and sorted by day when listed."""
    stem = f"{job.created_at:%Y-%m-%d}-{job.kind}-{job.id}-{asset.index}"
    return _safe_file_name(stem + _extension(asset)) or f"{job.id}-{asset.index}"


def zip_stream(studio: Studio, items: Sequence[tuple[Asset, Job]]) -> zipstream.ZipStream:
    """A zip of the items, built while it is sent: each file is read from storage a chunk at a
    time, so memory stays flat whatever the size. Stored, not deflated: media is compressed
    already, and stored entries give the zip a known length (a Content-Length, so browsers show
    progress). ``Conflict`` naming every file not in storage as recorded, before anything is sent."""
    check_stored(studio, items)
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    for asset, job in items:
        archive.add(_chunks(studio, asset.key), zip_name(asset, job), size=asset.bytes)
    return archive


def check_stored(studio: Studio, items: Sequence[tuple[Asset, Job]]) -> None:
    """Every item's file is in storage at its recorded size, or ``Conflict`` naming each that is not."""
    with ThreadPoolExecutor(max_workers=CHECKS_IN_FLIGHT) as pool:
        sizes = list(pool.map(studio.storage.size, [asset.key for asset, _job in items]))
    problems = [
        f"job {job.id} file {asset.index} ({asset.key}): "
        + ("missing" if size is None else f"{size} bytes stored, {asset.bytes} recorded")
        for (asset, job), size in zip(items, sizes, strict=True)
        if size != asset.bytes
    ]
    if not problems:
        return
    named = "; ".join(problems[:NAMED_AT_MOST])
    if len(problems) > NAMED_AT_MOST:
        named += f"; and {len(problems) - NAMED_AT_MOST} more"
    raise Conflict(
        f"{len(problems)} of the {len(items)} files of this download are not in storage as recorded, so no zip "
        f"was sent: {named}. Download again and leave those jobs out of the download (or delete them).",
        code="files_missing",
    )


def _chunks(studio: Studio, key: str) -> Iterator[bytes]:
    with studio.storage.open(key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _extension(asset: Asset) -> str:
    """The key's own extension when it is a plain one, else the content type's."""
    suffix = PurePosixPath(asset.key).suffix
    if _PLAIN_EXTENSION.fullmatch(suffix):
        return suffix.lower()
    return mimetypes.guess_extension(asset.content_type) or ""


def _safe_file_name(text: str) -> str:
    """``text`` as a file name every system accepts; empty when nothing of it is left."""
    name = sanitize_filename(text, platform="universal", replacement_text="-", max_len=150).strip(" .-")
    return name if any(char.isalnum() for char in name) else ""
