"""Where a job came from: the job it was made from and how, recorded when it is created.

Both directions are read from the same links: a job's ``derived_from`` ("this video came from that
image") and the jobs whose ``derived_from`` is it ("that image led to these"), and likewise an
input image's ``source_job_id`` (a job started from another job's result). A comparison's
columns are a group, not a lineage: see ``jobs.compare``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from ..db.tables import Job, JobInput
from ..errors import NotFound
from ..studio import Studio


class Derivation(StrEnum):
    RERUN = "rerun"  # "Run again with changes": same form, prefilled, perhaps changed
    VIDEO = "video"  # a video that starts on the parent's image
    EDIT = "edit"  # the parent's image changed as a prompt says
    VARIATION = "variation"  # the parent's image redrawn with another seed


@dataclass(frozen=True)
class Lineage:
    parent: str  # the job id
    how: Derivation


@dataclass(frozen=True)
class Placement:
    """A job's place in a comparison: which group, which column (0-based)."""

    comparison_id: str
    column: int


MAX_GENERATIONS = 100  # how far ``parents`` climbs: lineage is a chain people made by hand


def _parent_id(session: Session, job: Job) -> str | None:
    """The job this one came from: its recorded lineage, else the job whose result it started
    from (an image named by id without saying how)."""
    if job.derived_from:
        return job.derived_from
    query = select(JobInput.source_job_id).where(
        JobInput.job_id == job.id, JobInput.role == "image", JobInput.source_job_id.is_not(None)
    )
    return session.scalars(query.order_by(JobInput.index).limit(1)).first()


def parents(studio: Studio, job_id: str, *, owner: str | None = None) -> list[Job]:
    """The jobs ``job_id`` came from, nearest first (with their assets), as far as they still
    exist; with ``owner``, the climb stops at a job of someone else (creators see their own)."""
    found: list[Job] = []
    with studio.db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        seen = {job.id}
        while len(found) < MAX_GENERATIONS:
            parent_id = _parent_id(session, job)
            if parent_id is None or parent_id in seen:
                break
            parent = session.scalars(
                select(Job).where(Job.id == parent_id).options(selectinload(Job.assets))
            ).one_or_none()
            if parent is None or (owner is not None and parent.owner != owner):
                break
            seen.add(parent.id)
            found.append(parent)
            job = parent
    return found


def children(studio: Studio, job_id: str, *, owner: str | None = None) -> list[Job]:
    """The jobs made from ``job_id``: derived from it, or started from its result (with their
    assets), each once, newest first; with ``owner``, only theirs."""
    using_its_result = select(JobInput.job_id).where(JobInput.source_job_id == job_id)
    query = (
        select(Job)
        .where(or_(Job.derived_from == job_id, Job.id.in_(using_its_result)), Job.id != job_id)
        .options(selectinload(Job.assets))
        .order_by(Job.created_at.desc(), Job.id.desc())
    )
    if owner is not None:
        query = query.where(Job.owner == owner)
    with studio.db.read() as session:
        if session.get(Job, job_id) is None:
            raise NotFound(f"no job with id {job_id!r}")
        return list(session.scalars(query))
