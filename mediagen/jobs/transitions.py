"""Applying state changes to jobs: every change checked by the state machine, recorded as an
event, and — for anything a worker or a user does concurrently — fenced by ``attempt``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..admin.rollup import count_finished
from ..db.engine import Database
from ..db.leases import release
from ..db.tables import Asset, Job, JobEvent, utcnow
from ..media.ingest import StoredMedia, delete_keys
from ..media.keys import job_key_prefix
from ..storage.base import Storage
from ..webhooks.outbox import enqueue as enqueue_webhook
from .status import JobStatus, check_transition

log = logging.getLogger(__name__)


def record(
    session: Session,
    job: Job,
    status: JobStatus,
    *,
    message: str | None = None,
    progress: int | None = None,
    now: datetime | None = None,
) -> None:
    """Move ``job`` to ``status`` (the state machine decides if it may) and log the event."""
    now = now or utcnow()
    previous = JobStatus(job.status)
    check_transition(previous, status)
    job.status = status
    if progress is not None:
        job.progress = max(0, min(100, progress))
    if status is JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if status is JobStatus.SUCCEEDED:
        job.progress = 100
    if status.is_final:
        job.finished_at = now
        job.next_poll_at = None
        release(job)
        enqueue_webhook(session, job, status, now)  # same transaction: no final state without its webhook
        count_finished(session, job)  # and none missing from the metrics, or counted twice
    session.add(JobEvent(job=job, at=now, status=status.value, progress=job.progress, message=message))


@contextmanager
def fenced(db: Database, job_id: str, attempt: int) -> Iterator[tuple[Session, Job | None]]:
    """A write transaction holding the job only if nobody has touched it since ``attempt``.

    Yields ``None`` for the job when a newer claim or a user action has bumped the token: the
    caller's result is stale and must not be written.
    """
    with db.write() as session:
        job = session.scalars(
            select(Job).where(Job.id == job_id, Job.attempt == attempt).with_for_update()
        ).one_or_none()
        if job is not None and JobStatus(job.status).is_final:
            job = None
        yield session, job


def finish(
    db: Database,
    storage: Storage,
    job_id: str,
    attempt: int,
    status: JobStatus,
    *,
    message: str | None = None,
    error_code: str | None = None,
    stored: Sequence[StoredMedia] = (),
    usage: dict | None = None,
    revised_prompt: str | None = None,
    request_id: str | None = None,
) -> bool:
    """End a job once. Returns False when the result is stale (a newer claim or a user action
    got there first); then the objects in ``stored`` are removed unless someone else may own them.
    """
    cleanup = bool(stored)
    try:
        with fenced(db, job_id, attempt) as (session, job):
            if job is None:
                cleanup = cleanup and _nobody_else_owns_keys(session, job_id)
                return False
            for media in stored:
                session.add(asset_row(job, storage.name, media))
            if status is JobStatus.SUCCEEDED:
                job.transient_errors = 0
            else:
                job.error_code, job.error_message = error_code or status.value, message
            if usage:
                job.usage = usage
            if revised_prompt:
                job.revised_prompt = revised_prompt
            if request_id:
                job.provider_request_id = request_id
            if status is JobStatus.SUCCEEDED and job.status == JobStatus.QUEUED:
                # The provider ran the whole task between two polls.
                record(session, job, JobStatus.RUNNING)
            record(session, job, status, message=message)
            kind, created_at = job.kind, job.created_at
        cleanup = False
        if status is not JobStatus.SUCCEEDED:
            clear_leftovers(storage, kind, created_at, job_id)
        return True
    finally:
        if cleanup:
            delete_keys(storage, [k for m in stored for k in (m.key, m.thumbnail_key)])


def clear_leftovers(storage: Storage, kind: str, created_at: datetime, job_id: str) -> None:
    """A job that ended without a result owns no objects; any under its keys were left by a worker
    that died between uploading and committing. Best effort: the job's outcome stands either way."""
    try:
        if removed := storage.delete_prefix(job_key_prefix(kind, created_at, job_id)):
            log.info("job %s: removed %d object(s) a dead worker left behind", job_id, removed)
    except Exception:
        log.exception("job %s: could not clear leftover objects", job_id)


def _nobody_else_owns_keys(session: Session, job_id: str) -> bool:
    """Keys are deterministic per job, so a stale worker's objects may be the very objects a
    newer worker wrote (or is writing). They are ours to delete only once the job ended without
    a result."""
    current = session.get(Job, job_id)
    return current is not None and current.status != JobStatus.SUCCEEDED and JobStatus(current.status).is_final


def asset_row(job: Job, storage_name: str, media: StoredMedia) -> Asset:
    return Asset(
        job=job,
        index=media.index,
        storage=storage_name,
        key=media.key,
        thumbnail_key=media.thumbnail_key,
        content_type=media.content_type,
        bytes=media.bytes,
        sha256=media.sha256,
        width=media.width,
        height=media.height,
        duration_s=media.duration_s,
    )
