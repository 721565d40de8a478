"""The retention policy: finished jobs older than ``MEDIAGEN_RETENTION_DAYS`` are deleted with
their stored files, unless someone starred one of their assets or put it in a collection.

Off by default. With the policy set, the System page shows what it would delete right now (the
dry run); the workers delete only once ``MEDIAGEN_RETENTION_DRY_RUN`` is turned off, so an
admin always sees the report before anything is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, exists, func, not_, or_, select

from ..db.tables import Asset, CollectionAsset, Favourite, Job, utcnow
from ..jobs.status import FINAL_STATUSES
from ..studio import Studio
from .deletion import MAX_DELETE_JOBS, delete_matching


@dataclass(frozen=True)
class RetentionReport:
    days: int
    cutoff: datetime
    jobs: int
    assets: int
    bytes: int
    oldest: datetime | None
    kept: int  # old enough, but kept because an asset is starred or in a collection
    dry_run: bool


def _cutoff(studio: Studio, now: datetime | None) -> datetime | None:
    days = studio.settings.retention_days
    return None if days is None else (now or utcnow()) - timedelta(days=days)


def _old(cutoff: datetime) -> list:  # type: ignore[type-arg]
    return [Job.status.in_([s.value for s in FINAL_STATUSES]), Job.created_at < cutoff]


def _treasured() -> ColumnElement[bool]:
    starred = select(Asset.id).join(Favourite, Favourite.asset_id == Asset.id).where(Asset.job_id == Job.id)
    grouped = select(Asset.id).join(CollectionAsset, CollectionAsset.asset_id == Asset.id).where(Asset.job_id == Job.id)
    return or_(exists(starred), exists(grouped))


def expired_jobs(cutoff: datetime) -> Select:  # type: ignore[type-arg]
    """Ids of the jobs the policy removes, oldest first."""
    return select(Job.id).where(*_old(cutoff), not_(_treasured())).order_by(Job.created_at, Job.id)


def report(studio: Studio, now: datetime | None = None) -> RetentionReport | None:
    """What the policy would delete now; None when no policy is set."""
    cutoff = _cutoff(studio, now)
    if cutoff is None:
        return None
    expired = expired_jobs(cutoff).subquery()
    with studio.db.read() as session:
        jobs, oldest = session.execute(
            select(func.count(), func.min(Job.created_at)).select_from(Job).where(Job.id.in_(select(expired.c.id)))
        ).one()
        assets, size = session.execute(
            select(func.count(), func.coalesce(func.sum(Asset.bytes), 0)).where(Asset.job_id.in_(select(expired.c.id)))
        ).one()
        kept = session.scalar(select(func.count()).select_from(Job).where(*_old(cutoff), _treasured()))
    return RetentionReport(
        days=studio.settings.retention_days or 0,
        cutoff=cutoff,
        jobs=int(jobs),
        assets=int(assets),
        bytes=int(size),
        oldest=oldest,
        kept=int(kept or 0),
        dry_run=studio.settings.retention_dry_run,
    )


def apply(studio: Studio, now: datetime | None = None, *, max_jobs: int | None = None) -> int:
    """Delete what the policy says, oldest first, a bounded batch per transaction; only with the
    policy set and the dry run turned off. Stops after ``max_jobs`` (the workers' bound on one
    run; the rest waits for the next). Returns the number of jobs deleted."""
    cutoff = _cutoff(studio, now)
    if cutoff is None or studio.settings.retention_dry_run:
        return 0
    deleted = 0
    while max_jobs is None or deleted < max_jobs:
        batch = MAX_DELETE_JOBS if max_jobs is None else min(MAX_DELETE_JOBS, max_jobs - deleted)
        # Chosen inside the deleting transaction: a job starred since the last batch stays.
        done = delete_matching(studio, expired_jobs(cutoff), limit=batch).jobs
        deleted += done
        if done < batch:
            break
    return deleted
