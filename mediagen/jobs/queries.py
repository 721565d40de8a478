"""Reading jobs back: one job with its story, some jobs by id, the latest jobs, a retry chain.
(Gallery and history pages, with filters and search, are in ``browse``.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from ..db.tables import Job
from ..errors import InvalidInput, NotFound
from ..studio import Studio
from .status import JobKind, JobStatus

MAX_LISTED = 1000


def get_job(studio: Studio, job_id: str, *, story: bool = True) -> Job:
    """The job with its assets, and (with ``story``) its inputs, events and webhook deliveries; a
    status read needs only the first, and a long-running video may have hundreds of events."""
    # One round trip for the status read: a job has a handful of assets at most.
    loads: list[Any] = [joinedload(Job.assets)]
    if story:
        loads += [selectinload(Job.inputs), selectinload(Job.events), selectinload(Job.webhooks)]
    with studio.db.read() if story else studio.db.peek() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).options(*loads)).unique().one_or_none()
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job


def get_jobs(studio: Studio, job_ids: Sequence[str]) -> list[Job]:
    """The jobs (with their assets and inputs) of those ids that exist, newest first."""
    query = select(Job).where(Job.id.in_(list(job_ids))).options(selectinload(Job.assets), selectinload(Job.inputs))
    with studio.db.read() as session:
        return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc())))


def list_jobs(
    studio: Studio,
    *,
    status: JobStatus | str | None = None,
    kind: JobKind | str | None = None,
    owner: str | None = None,
    limit: int = 50,
) -> list[Job]:
    """The newest jobs, with their assets, inputs and webhook deliveries (what ``JobOut`` shows)."""
    if status is not None and status not in {s.value for s in JobStatus}:
        raise InvalidInput("status", f"{status!r} is not a status", [s.value for s in JobStatus])
    if kind is not None and kind not in {k.value for k in JobKind}:
        raise InvalidInput("kind", f"{kind!r} is not a kind", [k.value for k in JobKind])
    if not 1 <= limit <= MAX_LISTED:
        raise InvalidInput("limit", f"{limit} is out of range", f"1–{MAX_LISTED}")
    query = (
        select(Job)
        .options(selectinload(Job.assets), selectinload(Job.inputs), selectinload(Job.webhooks))
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if owner:
        query = query.where(Job.owner == owner)
    with studio.db.read() as session:
        return list(session.scalars(query))


def retry_chain(studio: Studio, job_id: str) -> list[Job]:
    """The job's ancestors and descendants through ``retried_from``, oldest first."""
    with studio.db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        chain = [job]
        while chain[0].retried_from and len(chain) < 100:
            parent = session.get(Job, chain[0].retried_from)
            if parent is None:
                break
            chain.insert(0, parent)
        while len(chain) < 100:
            child = session.scalars(
                select(Job).where(Job.retried_from == chain[-1].id).order_by(Job.created_at)
            ).first()
            if child is None:
                break
            chain.append(child)
        return chain
