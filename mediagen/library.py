"""The reviewer's library: stars, named collections, and deleting jobs together with every
object they stored (zip downloads are in ``zips``).

Deleting is two steps that cannot leave an orphan either way: one transaction removes the rows
and records every key the job stored (original, thumbnail, each derived format) in the
``storage_deletions`` outbox; then the objects are removed and their outbox rows with them. An
object that cannot be removed now stays in the outbox, and the scheduler retries it
(``drain_deletions``), so a file is never left without its row, nor a row without its file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, func, select, update
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
MAX_DELETE_JOBS = 500

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


def owned_collection(session: Session, owner: str, collection_id: int) -> Collection:
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
            owned_collection(session, owner, collection_id).name = cleaned
    except IntegrityError:
        raise InvalidInput("collection name", f"you already have a collection called {cleaned!r}") from None


def delete_collection(studio: Studio, owner: str, collection_id: int) -> None:
    """The collection goes; its assets stay where they are."""
    with studio.db.write() as session:
        session.delete(owned_collection(session, owner, collection_id))


def add_to_collection(studio: Studio, owner: str, collection_id: int, asset_ids: Iterable[int]) -> int:
    """Adds the assets not in it yet; returns how many were added."""
    ids = set(asset_ids)
    with studio.db.write() as session:
        owned_collection(session, owner, collection_id)
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
        owned_collection(session, owner, collection_id)
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
    if len(ids) > MAX_DELETE_JOBS:
        raise InvalidInput("jobs", f"{len(ids)} jobs at once is too many", f"at most {MAX_DELETE_JOBS}")
    if not ids:
        return Deleted(0, 0, 0)
    return _delete(studio, lambda _session: ids, actor=actor)


def delete_matching(studio: Studio, query: Select[tuple[str]], *, limit: int = MAX_DELETE_JOBS) -> Deleted:
    """Delete the first ``limit`` jobs whose ids ``query`` selects, as ``delete_jobs`` does. The
    ids are read inside the deleting transaction, so a job that stopped matching a moment ago
    (retention: someone just starred it) is not deleted on stale ids."""
    bounded = query.limit(min(limit, MAX_DELETE_JOBS))
    return _delete(studio, lambda session: list(session.scalars(bounded)), actor=None)


def _delete(studio: Studio, choose: Callable[[Session], list[str]], *, actor: User | None) -> Deleted:
    with studio.db.write() as session:
        ids = choose(session)
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
        # One statement; the schema's ON DELETE CASCADE (SQLite: foreign_keys=ON, see db.py) takes
        # assets, events, webhook records, stars and collection entries with the jobs, where the
        # ORM's cascade would load and delete each child row by itself.
        session.execute(delete(Job).where(Job.id.in_(ids)), execution_options={"synchronize_session": False})
        session.flush()
        outbox_ids = [row.id for row in outbox]
    if found:
        log.info("deleted %d job(s); removing %d stored object(s)", len(found), len(outbox_ids))
    drained = drain_deletions(studio, ids=outbox_ids)
    return Deleted(len(found), drained["removed"], len(outbox_ids) - drained["removed"])


def drain_deletions(studio: Studio, *, limit: int = 500, ids: Sequence[int] | None = None) -> Counter[str]:
    """Remove the objects waiting in the outbox (the given rows, or ``limit`` of them, those
    tried least often first, so a few that always fail cannot hold up the rest); each one
    removed leaves the outbox, each failure stays with its error for the next try. Removing an
    object that is already gone counts as done. Counts ``removed`` and ``failed``."""
    outcome: Counter[str] = Counter()
    query = select(StorageDeletion.id, StorageDeletion.key)
    if ids is not None:
        query = query.where(StorageDeletion.id.in_(ids))
    else:
        query = query.order_by(StorageDeletion.attempts, StorageDeletion.id).limit(limit)
    with studio.db.read() as session:
        pending = session.execute(query).all()
    if not pending:
        return outcome
    try:
        failed = studio.storage.delete_many(sorted({row.key for row in pending}))
    except Exception as exc:  # storage unreachable: every object stays in the outbox
        failed = dict.fromkeys((row.key for row in pending), f"{type(exc).__name__}: {exc}")
    done = [row.id for row in pending if row.key not in failed]
    retry: dict[str, list[int]] = {}  # by reason: when storage is down, one reason for all
    for row in pending:
        if row.key in failed:
            retry.setdefault(failed[row.key][:500], []).append(row.id)
    with studio.db.write() as session:
        if done:
            session.execute(delete(StorageDeletion).where(StorageDeletion.id.in_(done)))
        for reason, row_ids in retry.items():
            session.execute(
                update(StorageDeletion)
                .where(StorageDeletion.id.in_(row_ids))
                .values(attempts=StorageDeletion.attempts + 1, last_error=reason)
            )
    outcome["removed"], outcome["failed"] = len(done), len(pending) - len(done)
    if retry:
        log.warning("%d stored object(s) could not be removed yet: %s", outcome["failed"], next(iter(retry)))
    return +outcome


@dataclass(frozen=True)
class DeletionBacklog:
    """The outbox as the System page shows it."""

    objects: int
    oldest: datetime | None
    last_error: str | None


def deletion_backlog(studio: Studio) -> DeletionBacklog:
    """How many objects wait in the outbox, the oldest one's date, and why the most tried one
    failed last."""
    with studio.db.read() as session:
        count, oldest = session.execute(select(func.count(), func.min(StorageDeletion.created_at))).one()
        last_error = session.scalar(
            select(StorageDeletion.last_error)
            .where(StorageDeletion.last_error.is_not(None))
            .order_by(StorageDeletion.attempts.desc(), StorageDeletion.id)
            .limit(1)
        )
    return DeletionBacklog(int(count or 0), oldest, last_error)
