"""Deleting jobs together with every object they stored.

Deleting is two steps that cannot leave an orphan either way: one transaction removes the rows
and records every key the job stored (original, thumbnail, each derived format) in the
``storage_deletions`` outbox; then the objects are removed and their outbox rows with them. An
object that cannot be removed now stays in the outbox, and the workers' housekeeping retries it
(``drain_deletions``, each row leased to one worker), so a file is never left without its row,
nor a row without its file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from ..auth.roles import User, require_change
from ..db import leases
from ..db.tables import Job, StorageDeletion, utcnow
from ..errors import InvalidInput, NotFound
from ..jobs.status import JobStatus
from ..media import keys
from ..studio import Studio

log = logging.getLogger(__name__)
MAX_DELETE_JOBS = 500
# A drain holds its rows this long: enough for one bulk removal from storage.
DRAIN_LEASE_S = 300


@dataclass(frozen=True)
class Deleted:
    jobs: int
    objects_removed: int
    objects_pending: int  # left in the outbox for the workers to retry


def stored_keys(job: Job) -> list[str]:
    """Every object a job (with its assets and inputs loaded) may have in storage."""
    return keys.stored_keys(job.kind, job.assets) + [i.key for i in job.inputs]


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
            select(Job)
            .where(Job.id.in_(ids))
            .options(selectinload(Job.assets), selectinload(Job.inputs))
            .with_for_update()
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
        # Lineage outlives a deleted parent as a note on the child's inputs (``JobInput.origin``).
        session.execute(update(Job).where(Job.derived_from.in_(ids)).values(derived_from=None))
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


def drain_deletions(
    studio: Studio, *, limit: int = 500, ids: Sequence[int] | None = None, owner: str | None = None
) -> Counter[str]:
    """Remove objects waiting in the outbox: the given rows (a delete that just wrote them), or
    ``limit`` rows leased to ``owner``, those tried least often first, so a few that always fail
    cannot hold up the rest. Each one removed leaves the outbox; each failure stays with its error
    for the next try. Removing an object that is already gone counts as done. Counts ``removed``
    and ``failed``."""
    outcome: Counter[str] = Counter()
    now = utcnow()
    with studio.db.write() as session:
        if ids is not None:
            rows = list(session.scalars(select(StorageDeletion).where(StorageDeletion.id.in_(ids))))
        else:
            rows = leases.claim(
                session,
                StorageDeletion,
                due=StorageDeletion.id.is_not(None),
                order_by=(StorageDeletion.attempts, StorageDeletion.id),
                limit=limit,
                owner=owner or studio.owner_id,
                lease_s=DRAIN_LEASE_S,
                now=now,
            )
        pending = [(row.id, row.key) for row in rows]
    if not pending:
        return outcome
    try:
        failed = studio.storage.delete_many(sorted({key for _, key in pending}))
    except Exception as exc:  # storage unreachable: every object stays in the outbox
        failed = dict.fromkeys((key for _, key in pending), f"{type(exc).__name__}: {exc}")
    done = [row_id for row_id, key in pending if key not in failed]
    retry: dict[str, list[int]] = {}  # by reason: when storage is down, one reason for all
    for row_id, key in pending:
        if key in failed:
            retry.setdefault(failed[key][:500], []).append(row_id)
    with studio.db.write() as session:
        if done:
            session.execute(delete(StorageDeletion).where(StorageDeletion.id.in_(done)))
        for reason, row_ids in retry.items():
            session.execute(
                update(StorageDeletion)
                .where(StorageDeletion.id.in_(row_ids))
                .values(attempts=StorageDeletion.attempts + 1, last_error=reason, lease_owner=None, lease_until=None)
            )
    outcome["removed"], outcome["failed"] = len(done), len(pending) - len(done)
    if retry:
        log.warning("%d stored object(s) could not be removed yet: %s", outcome["failed"], next(iter(retry)))
    return +outcome


def deletions_waiting(studio: Studio) -> bool:
    """Whether any object waits in the outbox (a read: the housekeeping of an idle worker writes nothing)."""
    with studio.db.read() as session:
        return session.scalar(select(StorageDeletion.id).limit(1)) is not None


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
