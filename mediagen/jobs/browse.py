"""Reading jobs back for people: the gallery's pages and the history's filters.

Pages are keyset-paginated over (created_at, id), so a deep page costs what the first one does:
the query only ever reads one page of rows, along an index that ends in that order (one per
filter column). Prompt search reads the database's full-text index of prompts where it has one
(SQLite's FTS5 table, migration 0005; PostgreSQL's tsvector column with a GIN index, migration
0009): every typed word as a word prefix, in any order, accents and case aside. Elsewhere it falls
back to a substring match.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session, aliased, selectinload

from ..db.tables import Asset, CollectionAsset, Favourite, Job
from ..errors import InvalidInput
from ..studio import Studio
from .prompt_search import PromptHasWords, PromptHasWordsInWindow, has_full_text, search_words
from .status import JobKind, JobStatus

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
    starred_by: str | None = None  # only jobs with an asset this user starred
    collection_id: int | None = None  # only jobs with an asset in this collection
    comparisons_only: bool = False  # only the columns of comparisons (one prompt on several models)

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

    def apply(self, query: Q, *, full_text: bool = False, window: _Window | None = None) -> Q:
        """Add these filters to ``query`` (over ``Job``); ``full_text`` searches prompts through
        the database's full-text index (see ``has_full_text``) instead of a substring scan, only
        among the jobs of ``window`` when given (see ``page_of_jobs``)."""
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
            words = search_words(self.text) if full_text else []
            if words and window:
                query = query.where(window.created, PromptHasWordsInWindow(words, window.rowids))
            elif words:
                query = query.where(PromptHasWords(words))
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
        if self.comparisons_only:
            query = query.where(Job.comparison_id.is_not(None))
        return query

    @property
    def picks_jobs(self) -> bool:
        """Whether these filters choose among a comparison's columns (by model, status, star or
        collection): then each matching column is a result of its own, not its comparison's card."""
        return bool(self.models or self.statuses or self.starred_by or self.collection_id is not None)


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


def first_of_its_comparison() -> ColumnElement[bool]:
    """Jobs outside any comparison, and the first job of each comparison: a list that shows a
    comparison as one entry, where its first column was made. One lookup along
    ix_jobs_comparison_id per job of a comparison, so paging stays keyset-cheap."""
    earlier = aliased(Job)
    before = tuple_(earlier.created_at, earlier.id) < tuple_(Job.created_at, Job.id)
    return or_(
        Job.comparison_id.is_(None),
        ~exists(select(earlier.id).where(earlier.comparison_id == Job.comparison_id, before)),
    )


def _page_order(newest_first: bool) -> tuple[ColumnElement[Any], ...]:
    return (Job.created_at.desc(), Job.id.desc()) if newest_first else (Job.created_at.asc(), Job.id.asc())


def seek(query: Q, after: str | None, *, newest_first: bool = True) -> Q:
    """``query`` (over ``Job``) ordered by (created_at, id) and starting after the row named by
    the cursor ``after``; the caller adds the limit."""
    return query.where(*_beyond(after, newest_first)).order_by(*_page_order(newest_first))


# A full-text page looks among this many of the next jobs in page order first: see ``_window``.
SEARCH_WINDOW = 2000
_CREATED = Job.created_at.type
_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Window:
    rows: int
    created: ColumnElement[bool]  # the window's far edge; the page's cursor is its near one
    rowids: tuple[int, int] | None  # SQLite: every job created in the window has its rowid in here


def _window(session: Session, after: str | None, newest_first: bool, rows: int, *, rowids: bool) -> _Window | None:
    """The next ``rows`` jobs in page order, as the creation time of the last of them and (with
    ``rowids``) the span of rowids that covers every job created in the window; None when fewer
    jobs are left (search them all).

    Why: a full-text index gives every match at once, so a common word made a search page cost
    in proportion to the whole library, where a page of it is found among its next few dozen
    jobs. On SQLite, jobs are inserted as they are created, so their rowids follow creation order
    and a rowid span lets FTS5 read only the window's part of each word's list. (When rowids do
    not follow creation order, the span is just wider: the result is the same.) On PostgreSQL
    (no ``rowids``) the window's jobs are read in page order and their words checked one by one;
    its edge is found by the search's own statement, a round trip fewer (with fewer jobs left
    than ``rows``, the window holds them all).
    """
    beyond = _beyond(after, newest_first)
    edge_of = select(Job.created_at).where(*beyond).order_by(*_page_order(newest_first)).offset(rows - 1).limit(1)
    if not rowids:
        edge = func.coalesce(edge_of.scalar_subquery(), literal(_EARLIEST if newest_first else _LATEST, _CREATED))
        return _Window(rows, Job.created_at >= edge if newest_first else Job.created_at <= edge, None)
    found = session.scalar(edge_of)
    if found is None:
        return None
    within = Job.created_at >= found if newest_first else Job.created_at <= found
    rowid = literal_column("jobs.rowid", Integer)
    low, high = session.execute(select(func.min(rowid), func.max(rowid)).where(within, *beyond)).one()
    return _Window(rows, within, (low, high))


def _matches_first(query: Select[Any], after: str | None, newest_first: bool, limit: int) -> Select[Any]:
    """PostgreSQL: ``query``'s page (a search over every job) taken from all its matches, found
    through the GIN index first. Asked plainly, the planner guesses how common the words are
    (with few distinct common words in the statistics it guesses 2 % for every prefix) and, when
    it guesses common, walks the jobs in page order checking each: for a rare or mistyped word
    that reads the whole library. MATERIALIZED keeps the matches a step of their own."""
    matches = query.with_only_columns(Job.id, Job.created_at).where(*_beyond(after, newest_first))
    found = matches.cte("matches").prefix_with("MATERIALIZED")
    order = (found.c.created_at, found.c.id)
    first = select(found.c.id).order_by(*(c.desc() if newest_first else c.asc() for c in order)).limit(limit + 1)
    return select(Job).where(Job.id.in_(first))


def page_of_jobs(
    studio: Studio,
    filters: JobFilters,
    *,
    after: str | None = None,
    limit: int = 24,
    newest_first: bool = True,
    one_per_comparison: bool = False,
) -> JobPage:
    """A page of jobs matching ``filters``. A full-text search looks among the next
    ``SEARCH_WINDOW`` jobs first (``_window``), which fills the page of a common word; for rarer
    words SQLite looks among eight times as many and so on, as FTS5 reads only a window's part
    of each word's list, while PostgreSQL goes straight to all of them through the GIN index
    (``_matches_first``), which costs what the rare word's matches do. ``one_per_comparison``
    keeps only the first job of each comparison (see ``first_of_its_comparison``)."""
    if not 1 <= limit <= 200:
        raise InvalidInput("page size", f"{limit} is out of range", "1–200")
    filters.validate()
    full_text = has_full_text(studio.db) and bool(search_words(filters.text))
    sqlite = studio.db.is_sqlite
    with studio.db.read() as session:
        window = SEARCH_WINDOW if full_text else None
        while True:
            bounds = _window(session, after, newest_first, window, rowids=sqlite) if window else None
            query = filters.apply(select(Job), full_text=full_text, window=bounds)
            if one_per_comparison:
                query = query.where(first_of_its_comparison())
            if full_text and bounds is None and not sqlite:
                query = _matches_first(query, after, newest_first, limit)
            query = seek(query.options(selectinload(Job.assets)), after, newest_first=newest_first)
            rows = list(session.scalars(query.limit(limit + 1)))
            if bounds is None or len(rows) > limit:
                break
            window = bounds.rows * 8 if sqlite else None
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)


def count_jobs(studio: Studio, filters: JobFilters, *, one_per_comparison: bool = False) -> int:
    query = filters.validate().apply(select(func.count()).select_from(Job), full_text=has_full_text(studio.db))
    if one_per_comparison:
        query = query.where(first_of_its_comparison())
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
