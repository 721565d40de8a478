"""Reading jobs back for people: the gallery's pages and the history's filters.

Pages are keyset-paginated over (created_at, id), so a deep page costs what the first one does:
the query only ever reads one page of rows, along an index that ends in that order (one per
filter column). Prompt search uses SQLite's FTS5 index of prompts where the database has it
(words and word prefixes, any order) and falls back to a substring match elsewhere.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from sqlalchemy import Select, exists, func, literal_column, select, text, tuple_
from sqlalchemy.orm import selectinload

from .db import Database
from .errors import InvalidInput
from .models import Asset, Collection, CollectionAsset, Favourite, Job
from .states import JobKind, JobStatus
from .studio import Studio

PAGE_SIZES = (12, 24, 48, 96)
MAX_SEARCH_WORDS = 16
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
    starred_by: str | None = None  # only jobs with an asset this user starred
    collection_id: int | None = None  # only jobs with an asset in this collection

    def validate(self) -> JobFilters:
        _check_choices("kind", self.kinds, [k.value for k in JobKind])
        _check_choices("status", self.statuses, [s.value for s in JobStatus])
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("date range", f"starts {self.since} after it ends {self.until}")
        return self

    def apply(self, query: Q, *, full_text: bool = False) -> Q:
        """Add these filters to ``query`` (over ``Job``); ``full_text`` searches prompts through
        the FTS5 index (see ``has_full_text``) instead of a substring scan."""
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
            match = fts_query(self.text) if full_text else None
            if match:
                matching = text("SELECT rowid FROM jobs_fts WHERE jobs_fts MATCH :match").bindparams(match=match)
                query = query.where(literal_column("jobs.rowid").in_(matching))
            else:
                needle = self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(Job.prompt.ilike(f"%{needle}%", escape="\\"))
        if self.owner:
            query = query.where(Job.owner == self.owner)
        if self.starred_by:
            starred = select(Asset.id).join(Favourite, Favourite.asset_id == Asset.id)
            query = query.where(exists(starred.where(Asset.job_id == Job.id, Favourite.owner == self.starred_by)))
        if self.collection_id is not None:
            grouped = select(Asset.id).join(CollectionAsset, CollectionAsset.asset_id == Asset.id)
            query = query.where(
                exists(grouped.where(Asset.job_id == Job.id, CollectionAsset.collection_id == self.collection_id))
            )
        return query


def fts_query(typed: str) -> str | None:
    """An FTS5 query for what a person typed: every word, as a prefix, in any order. Only word
    characters reach the query, so nothing typed can be FTS5 syntax."""
    words = re.findall(r"[^\W_]+", typed)[:MAX_SEARCH_WORDS]
    return " ".join(f'"{word}"*' for word in words) or None


def has_full_text(db: Database) -> bool:
    """Whether this database has the FTS5 prompt index (SQLite with FTS5; migration 0005)."""
    known = getattr(db, "_has_full_text", None)
    if known is None:
        known = False
        if db.is_sqlite:
            with db.read() as session:
                found = session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'jobs_fts'")).first()
            known = found is not None
        db._has_full_text = known  # type: ignore[attr-defined]
    return known


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
    query = filters.validate().apply(select(Job), full_text=has_full_text(studio.db))
    query = query.options(selectinload(Job.assets))
    if after:
        created, job_id = decode_cursor(after)
        # A row-value comparison, not "a < x OR (a = x AND b < y)": SQLite turns it into one range
        # over the (created_at, id) index; the OR form made page 500 slower than page 1.
        position = tuple_(Job.created_at, Job.id)
        query = query.where(position < (created, job_id) if newest_first else position > (created, job_id))
    order = (Job.created_at.desc(), Job.id.desc()) if newest_first else (Job.created_at.asc(), Job.id.asc())
    with studio.db.read() as session:
        rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def count_jobs(studio: Studio, filters: JobFilters) -> int:
    query = filters.validate().apply(select(func.count()).select_from(Job), full_text=has_full_text(studio.db))
    with studio.db.read() as session:
        return int(session.scalar(query) or 0)


def models_in_use(studio: Studio) -> list[str]:
    with studio.db.read() as session:
        return sorted(session.scalars(select(Job.model).distinct()))


def collections_of(studio: Studio, owner: str) -> list[tuple[int, str]]:
    """This user's collections as (id, name), by name: the gallery's collection filter."""
    with studio.db.read() as session:
        rows = session.execute(select(Collection.id, Collection.name).where(Collection.owner == owner))
        return sorted(((row.id, row.name) for row in rows), key=lambda pair: pair[1].casefold())
