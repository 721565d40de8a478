"""Reading jobs back for people: the gallery's pages and the history's filters.

Pages are keyset-paginated over (created_at, id), so a deep page costs what the first one does:
the query only ever reads one page of rows, along an index that ends in that order (one per
filter column). Prompt search uses SQLite's FTS5 index of prompts where the database has it
(words and word prefixes, any order) and falls back to a substring match elsewhere.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, exists, func, literal_column, select, text, tuple_
from sqlalchemy.orm import Session, selectinload

from ..db.engine import Database
from ..db.tables import Asset, CollectionAsset, Favourite, Job
from ..errors import InvalidInput
from ..studio import Studio
from .status import JobKind, JobStatus

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

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (for a signed download link); ``from_json`` reads them back."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, date):
                data[name] = value.isoformat()
            elif isinstance(value, tuple | list):
                data[name] = list(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobFilters:
        days = {name: date.fromisoformat(data[name]) for name in ("since", "until") if data.get(name)}
        return cls(**{**data, **days})

    def apply(self, query: Q, *, full_text: bool = False, rowids: tuple[int, int] | None = None) -> Q:
        """Add these filters to ``query`` (over ``Job``); ``full_text`` searches prompts through
        the FTS5 index (see ``has_full_text``) instead of a substring scan, only among the rows
        whose rowid lies in ``rowids`` (inclusive) when given."""
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
                if rowids is None:
                    matching = text("SELECT rowid FROM jobs_fts WHERE jobs_fts MATCH :match").bindparams(match=match)
                else:
                    matching = text(
                        "SELECT rowid FROM jobs_fts WHERE jobs_fts MATCH :match AND rowid BETWEEN :low AND :high"
                    ).bindparams(match=match, low=rowids[0], high=rowids[1])
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
class JobPage:
    """One page of a job list, and where the next starts."""

    jobs: list[Job]
    next_cursor: str | None  # pass back as ``after`` for the following page


def encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = f"{created_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), job_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("page", "the page link is damaged; start from the first page") from None


def _beyond(after: str | None, newest_first: bool) -> list[ColumnElement[bool]]:
    """The condition for rows after the cursor ``after`` in page order (none without a cursor)."""
    if not after:
        return []
    # A row-value comparison, not "a < x OR (a = x AND b < y)": SQLite turns it into one range
    # over the (created_at, id) index; the OR form made page 500 slower than page 1.
    position, cursor = tuple_(Job.created_at, Job.id), decode_cursor(after)
    return [position < cursor if newest_first else position > cursor]


def _page_order(newest_first: bool) -> tuple[ColumnElement[Any], ...]:
    return (Job.created_at.desc(), Job.id.desc()) if newest_first else (Job.created_at.asc(), Job.id.asc())


def seek(query: Q, after: str | None, *, newest_first: bool = True) -> Q:
    """``query`` (over ``Job``) ordered by (created_at, id) and starting after the row named by
    the cursor ``after``; the caller adds the limit."""
    return query.where(*_beyond(after, newest_first)).order_by(*_page_order(newest_first))


# A full-text page looks among this many of the next jobs in page order first, then among eight
# times as many, and so on: see ``_window``.
SEARCH_WINDOW = 2000


@dataclass(frozen=True)
class _Window:
    rows: int
    created: tuple[datetime, datetime]  # inclusive
    rowids: tuple[int, int]  # inclusive; every job created in the window has its rowid in here


def _window(session: Session, after: str | None, newest_first: bool, rows: int) -> _Window | None:
    """The next ``rows`` jobs in page order, as a span of creation times and the span of rowids
    that covers every job created within it; None when fewer jobs are left (search them all).

    Why: the FTS index gives every match at once, so a common word made a search page cost in
    proportion to the whole library. Jobs are inserted as they are created, so their rowids follow
    creation order and a rowid span lets FTS5 read only the window's part of each word's list.
    (When rowids do not follow creation order, the span is just wider: the result is the same.)
    """
    beyond = _beyond(after, newest_first)
    edge = session.scalar(
        select(Job.created_at).where(*beyond).order_by(*_page_order(newest_first)).offset(rows - 1).limit(1)
    )
    if edge is None:
        return None
    within = Job.created_at >= edge if newest_first else Job.created_at <= edge
    rowid = literal_column("jobs.rowid", Integer)
    low, high, first, last = session.execute(
        select(func.min(rowid), func.max(rowid), func.min(Job.created_at), func.max(Job.created_at)).where(
            within, *beyond
        )
    ).one()
    return _Window(rows, (first, last), (low, high))


def page_of_jobs(
    studio: Studio,
    filters: JobFilters,
    *,
    after: str | None = None,
    limit: int = 24,
    newest_first: bool = True,
) -> JobPage:
    if not 1 <= limit <= 200:
        raise InvalidInput("page size", f"{limit} is out of range", "1–200")
    filters.validate()
    full_text = has_full_text(studio.db) and fts_query(filters.text) is not None
    with studio.db.read() as session:
        window = SEARCH_WINDOW if full_text else None
        while True:
            bounds = _window(session, after, newest_first, window) if window else None
            query = filters.apply(select(Job), full_text=full_text, rowids=bounds.rowids if bounds else None)
            if bounds:
                query = query.where(Job.created_at.between(*bounds.created))
            query = seek(query.options(selectinload(Job.assets)), after, newest_first=newest_first)
            rows = list(session.scalars(query.limit(limit + 1)))
            if bounds is None or len(rows) > limit:
                break
            window = bounds.rows * 8
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)


def count_jobs(studio: Studio, filters: JobFilters) -> int:
    query = filters.validate().apply(select(func.count()).select_from(Job), full_text=has_full_text(studio.db))
    with studio.db.read() as session:
        return int(session.scalar(query) or 0)


# Each step seeks the next model name along ix_jobs_model_created, so listing the few models in
# use costs a few index lookups each, not a scan of every job (SELECT DISTINCT reads them all).
_DISTINCT_MODELS = text(
    "WITH RECURSIVE found(model) AS ("
    " SELECT min(model) FROM jobs"
    " UNION ALL"
    " SELECT (SELECT min(model) FROM jobs WHERE model > found.model) FROM found WHERE found.model IS NOT NULL"
    ") SELECT model FROM found WHERE model IS NOT NULL"
)


def models_in_use(studio: Studio) -> list[str]:
    with studio.db.read() as session:
        return list(session.scalars(_DISTINCT_MODELS))


def video_page(
    studio: Studio, *, owner: str | None, after: str | None, limit: int, newest_first: bool = True
) -> tuple[list[Job], bool]:
    """A page of video jobs after the job with id ``after`` (OpenAI's cursor: the last id of the
    previous page), and whether more follow."""
    query = select(Job).where(Job.kind == JobKind.VIDEO).options(selectinload(Job.assets))
    if owner:
        query = query.where(Job.owner == owner)
    with studio.db.read() as session:
        cursor = None
        if after:
            mark = session.get(Job, after)
            if mark is None or mark.kind != JobKind.VIDEO or (owner and mark.owner != owner):
                raise InvalidInput("after", f"{after!r} is not the id of a video in this list")
            cursor = encode_cursor(mark.created_at, mark.id)
        found = list(session.scalars(seek(query, cursor, newest_first=newest_first).limit(limit + 1)))
    return found[:limit], len(found) > limit
