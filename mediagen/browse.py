"""Reading jobs back for people: the gallery's pages and the history's filters.

Pages are keyset-paginated over (created_at, id), so a deep page costs what the first one does:
the query only ever reads one page of rows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import selectinload

from .errors import InvalidInput
from .models import Job
from .states import JobKind, JobStatus
from .studio import Studio

PAGE_SIZES = (12, 24, 48, 96)
Q = TypeVar("Q", bound=Select)  # type: ignore[type-arg]


@dataclass(frozen=True)
class JobFilters:
    kinds: Sequence[str] = ()
    statuses: Sequence[str] = ()
    models: Sequence[str] = ()
    since: date | None = None  # inclusive, by UTC calendar day
    until: date | None = None  # inclusive
    text: str = ""
    owner: str | None = None

    def validate(self) -> JobFilters:
        _check_choices("kind", self.kinds, [k.value for k in JobKind])
        _check_choices("status", self.statuses, [s.value for s in JobStatus])
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("date range", f"starts {self.since} after it ends {self.until}")
        return self

    def apply(self, query: Q) -> Q:
        if self.kinds:
            query = query.where(Job.kind.in_(list(self.kinds)))
        if self.statuses:
            query = query.where(Job.status.in_(list(self.statuses)))
        if self.models:
            query = query.where(Job.model.in_(list(self.models)))
        if self.since:
            query = query.where(Job.created_at >= datetime.combine(self.since, time.min, UTC))
        if self.until:
            query = query.where(Job.created_at < datetime.combine(self.until + timedelta(days=1), time.min, UTC))
        if self.text.strip():
            needle = self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Job.prompt.ilike(f"%{needle}%", escape="\\"))
        if self.owner:
            query = query.where(Job.owner == self.owner)
        return query


def _check_choices(field: str, given: Sequence[str], allowed: list[str]) -> None:
    unknown = [g for g in given if g not in allowed]
    if unknown:
        raise InvalidInput(field, f"{unknown[0]!r} is not a {field}", allowed)


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None  # pass back as ``after`` for the following page


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), job_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("page", "the page link is damaged; start from the first page") from None


def page_of_jobs(
    studio: Studio,
    filters: JobFilters,
    *,
    after: str | None = None,
    limit: int = 24,
    newest_first: bool = True,
) -> Page:
    if not 1 <= limit <= 200:
        raise InvalidInput("page size", f"{limit} is out of range", "1–200")
    query = filters.validate().apply(select(Job)).options(selectinload(Job.assets))
    if after:
        created, job_id = decode_cursor(after)
        if newest_first:
            query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
        else:
            query = query.where(or_(Job.created_at > created, and_(Job.created_at == created, Job.id > job_id)))
    order = (Job.created_at.desc(), Job.id.desc()) if newest_first else (Job.created_at.asc(), Job.id.asc())
    with studio.db.read() as session:
        rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def count_jobs(studio: Studio, filters: JobFilters) -> int:
    query = filters.validate().apply(select(func.count()).select_from(Job))
    with studio.db.read() as session:
        return int(session.scalar(query) or 0)


def models_in_use(studio: Studio) -> list[str]:
    with studio.db.read() as session:
        return sorted(session.scalars(select(Job.model).distinct()))
