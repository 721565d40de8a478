"""Zip downloads of a collection or a selection, streamed from storage while they are sent."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import zipstream
from sqlalchemy import select

from ..db.tables import Asset, CollectionAsset, Job
from ..errors import InvalidInput
from ..jobs.browse import JobFilters, has_full_text
from ..studio import Studio
from .collections import owned_collection

# A zip is one request that reads every file it names; past this, ask for a narrower selection.
MAX_ZIP_FILES = 1000
CHUNK = 1024 * 1024


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


def zip_name(asset: Asset, job: Job) -> str:
    """Unique within any zip (a job's id and the asset's index), and sorted by day when listed."""
    extension = asset.key.rsplit(".", 1)[-1]
    return f"{job.created_at:%Y-%m-%d}-{job.kind}-{job.id}-{asset.index}.{extension}"


def zip_stream(studio: Studio, items: Sequence[tuple[Asset, Job]]) -> zipstream.ZipStream:
    """A zip of the items, built while it is sent: each file is read from storage a chunk at a
    time, so memory stays flat whatever the size. Stored, not deflated: media is compressed
    already, and stored entries give the zip a known length (a Content-Length, so browsers show
    progress)."""
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    for asset, job in items:
        archive.add(_chunks(studio, asset.key), zip_name(asset, job), size=asset.bytes)
    return archive


def _chunks(studio: Studio, key: str) -> Iterator[bytes]:
    with studio.storage.open(key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
