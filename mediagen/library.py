"""The reviewer's library: stars, named collections, deleting jobs together with every object
they stored, and zip downloads streamed from storage.

Deleting is two steps that cannot leave an orphan either way: one transaction removes the rows
and records every key the job stored (original, thumbnail, each derived format) in the
``storage_deletions`` outbox; then the objects are removed and their outbox rows with them. An
object that cannot be removed now stays in the outbox, and the scheduler retries it
(``drain_deletions``), so a file is never left without its row, nor a row without its file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import zipstream
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from . import derive
from .access import User, require_change
from .errors import InvalidInput, NotFound
from .models import Asset, Collection, CollectionAsset, Favourite, Job, StorageDeletion
from .states import JobStatus
from .studio import Studio

log = logging.getLogger(__name__)
MAX_NAME_CHARS = 120
MAX_ZIP_FILES = 1000
MAX_DELETE_JOBS = 500
CHUNK = 1024 * 1024

# --- Stars ---------------------------------------------------------------------------------------


def toggle_star(studio: Studio, owner: str, asset_id: int) -> bool:
    """Star the asset for this user, or unstar it; returns whether it is starred now."""
    with studio.db.write() as session:
        if session.get(Asset, asset_id) is None:
            raise NotFound(f"no asset with id {asset_id}")
        star = session.get(Favourite, (owner, asset_id))
        if star is not None:
            session.delete(star)
            return False
        session.add(Favourite(owner=owner, asset_id=asset_id))
        return True


def starred(studio: Studio, owner: str, asset_ids: Iterable[int]) -> set[int]:
    ids = list(asset_ids)
    with studio.db.read() as session:
        query = select(Favourite.asset_id).where(Favourite.owner == owner, Favourite.asset_id.in_(ids))
        return set(session.scalars(query))


# --- Collections ---------------------------------------------------------------------------------


def _valid_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise InvalidInput("collection name", "must not be empty", f"1–{MAX_NAME_CHARS} characters")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidInput("collection name", f"is {len(cleaned)} characters long", f"at most {MAX_NAME_CHARS}")
    return cleaned


def _owned(session: Session, owner: str, collection_id: int) -> Collection:
    found = session.get(Collection, collection_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no collection with id {collection_id}")
    return found


def create_collection(studio: Studio, owner: str, name: str) -> Collection:
    cleaned = _valid_name(name)
    try:
        with studio.db.write() as session:
            collection = Collection(owner=owner, name=cleaned)
            session.add(collection)
            session.flush()
            return collection
    except IntegrityError:
        raise InvalidInput("collection name", f"you already have a collection called {cleaned!r}") from None


def rename_collection(studio: Studio, owner: str, collection_id: int, name: str) -> None:
    cleaned = _valid_name(name)
    try:
        with studio.db.write() as session:
            _owned(session, owner, collection_id).name = cleaned
    except IntegrityError:
        raise InvalidInput("collection name", f"you already have a collection called {cleaned!r}") from None


def delete_collection(studio: Studio, owner: str, collection_id: int) -> None:
    """The collection goes; its assets stay where they are."""
    with studio.db.write() as session:
        session.delete(_owned(session, owner, collection_id))


def add_to_collection(studio: Studio, owner: str, collection_id: int, asset_ids: Iterable[int]) -> int:
    """Adds the assets not in it yet; returns how many were added."""
    ids = set(asset_ids)
    with studio.db.write() as session:
        _owned(session, owner, collection_id)
        existing = set(session.scalars(select(Asset.id).where(Asset.id.in_(ids))))
        if missing := ids - existing:
            raise NotFound(f"no asset with id {min(missing)}")
        present = set(
            session.scalars(
                select(CollectionAsset.asset_id).where(
                    CollectionAsset.collection_id == collection_id, CollectionAsset.asset_id.in_(ids)
                )
            )
        )
        session.add_all(CollectionAsset(collection_id=collection_id, asset_id=i) for i in sorted(ids - present))
        return len(ids - present)


def remove_from_collection(studio: Studio, owner: str, collection_id: int, asset_ids: Iterable[int]) -> None:
    with studio.db.write() as session:
        _owned(session, owner, collection_id)
        session.execute(
            delete(CollectionAsset).where(
                CollectionAsset.collection_id == collection_id, CollectionAsset.asset_id.in_(list(asset_ids))
            )
        )


def collections_holding(studio: Studio, owner: str, asset_id: int) -> list[int]:
    with studio.db.read() as session:
        query = (
            select(CollectionAsset.collection_id)
            .join(Collection, Collection.id == CollectionAsset.collection_id)
            .where(Collection.owner == owner, CollectionAsset.asset_id == asset_id)
        )
        return list(session.scalars(query))


# --- Deleting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deleted:
    jobs: int
    objects_removed: int
    objects_pending: int  # left in the outbox for the scheduler to retry


def stored_keys(job: Job) -> list[str]:
    """Every object a job may have in storage: originals, thumbnails and derived formats."""
    keys: list[str] = []
    for asset in job.assets:
        keys.append(asset.key)
        if asset.thumbnail_key:
            keys.append(asset.thumbnail_key)
        keys += derive.all_derived_keys(asset.key, job.kind)
    return keys


def delete_jobs(studio: Studio, job_ids: Sequence[str], *, actor: User | None = None) -> Deleted:
    """Delete finished jobs with their rows (assets, events, stars, collection entries, webhook
    records) and every stored object. Queued or running jobs are refused, as are others' jobs
    for an ``actor`` who is not an admin; then nothing of the batch is deleted."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return Deleted(0, 0, 0)
    if len(ids) > MAX_DELETE_JOBS:
        raise InvalidInput("jobs", f"{len(ids)} jobs at once is too many", f"at most {MAX_DELETE_JOBS}")
    with studio.db.write() as session:
        found = session.scalars(
            select(Job).where(Job.id.in_(ids)).options(selectinload(Job.assets)).with_for_update()
        ).all()
        if missing := set(ids) - {job.id for job in found}:
            raise NotFound(f"no job with id {sorted(missing)[0]!r}")
        if actor is not None:
            for job in found:
                require_change(actor, job.owner, "delete")
        if active := [job for job in found if not JobStatus(job.status).is_final]:
            raise InvalidInput("jobs", f"job {active[0].id} is still {active[0].status}; cancel it first")
        outbox = [StorageDeletion(key=key) for job in found for key in stored_keys(job)]
        session.add_all(outbox)
        # A retry keeps its own result; only its link back to the deleted job goes.
        session.execute(update(Job).where(Job.retried_from.in_(ids)).values(retried_from=None))
        for job in found:
            session.delete(job)
        session.flush()
        outbox_ids = [row.id for row in outbox]
    log.info("deleted %d job(s); removing %d stored object(s)", len(found), len(outbox_ids))
    drained = drain_deletions(studio, ids=outbox_ids)
    return Deleted(len(found), drained["removed"], drained["failed"])


def drain_deletions(studio: Studio, *, limit: int = 500, ids: Sequence[int] | None = None) -> Counter[str]:
    """Remove the objects waiting in the outbox (the given rows, or the oldest ``limit``); each
    one removed leaves the outbox, each failure stays with its error for the next try. Removing
    an object that is already gone counts as done."""
    outcome: Counter[str] = Counter()
    with studio.db.read() as session:
        query = select(StorageDeletion.id, StorageDeletion.key)
        query = query.where(StorageDeletion.id.in_(ids)) if ids is not None else query.order_by(StorageDeletion.id)
        pending = session.execute(query.limit(limit if ids is None else None)).all()
    done: list[int] = []
    for row_id, key in pending:
        try:
            studio.storage.delete(key)
        except Exception as exc:  # any storage failure: keep the row, say why
            outcome["failed"] += 1
            with studio.db.write() as session:
                session.execute(
                    update(StorageDeletion)
                    .where(StorageDeletion.id == row_id)
                    .values(attempts=StorageDeletion.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:500])
                )
        else:
            outcome["removed"] += 1
            done.append(row_id)
    if done:
        with studio.db.write() as session:
            session.execute(delete(StorageDeletion).where(StorageDeletion.id.in_(done)))
    return outcome


def pending_deletions(studio: Studio) -> int:
    with studio.db.read() as session:
        return len(session.scalars(select(StorageDeletion.id).limit(10_000)).all())


# --- Zip downloads -------------------------------------------------------------------------------


def assets_to_zip(
    studio: Studio, *, owner: str, collection_id: int | None = None, job_ids: Sequence[str] = ()
) -> list[tuple[Asset, Job]]:
    """The assets of a collection (of this owner) or of the given jobs, newest first."""
    query = select(Asset, Job).join(Job, Job.id == Asset.job_id)
    with studio.db.read() as session:
        if collection_id is not None:
            _owned(session, owner, collection_id)
            query = query.join(CollectionAsset, CollectionAsset.asset_id == Asset.id).where(
                CollectionAsset.collection_id == collection_id
            )
        elif job_ids:
            query = query.where(Job.id.in_(list(job_ids)))
        else:
            raise InvalidInput("selection", "choose a collection or some jobs to download")
        rows = session.execute(query.order_by(Job.created_at.desc(), Asset.index).limit(MAX_ZIP_FILES + 1)).all()
    if len(rows) > MAX_ZIP_FILES:
        raise InvalidInput("selection", f"more than {MAX_ZIP_FILES} files", f"at most {MAX_ZIP_FILES} per zip")
    return [(asset, job) for asset, job in rows]


def zip_name(asset: Asset, job: Job) -> str:
    extension = asset.key.rsplit(".", 1)[-1]
    return f"{job.created_at:%Y-%m-%d}-{job.kind}-{job.id}-{asset.index}.{extension}"


def zip_stream(studio: Studio, items: Sequence[tuple[Asset, Job]]) -> zipstream.ZipStream:
    """A zip of the items, built while it is sent: each file is read from storage a chunk at a
    time, so memory stays flat whatever the size. Stored, not deflated: media is compressed
    already, and stored entries give the zip a known length."""
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    for asset, job in items:
        archive.add(_chunks(studio, asset.key), zip_name(asset, job), size=asset.bytes)
    return archive


def _chunks(studio: Studio, key: str) -> Iterator[bytes]:
    with studio.storage.open(key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
