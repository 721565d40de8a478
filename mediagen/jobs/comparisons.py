"""Reading comparisons back: one group with its columns side by side, and the groups page by page
(for the gallery). Starting, starring and re-running them is in ``compare``.

Each column shows its newest job: a re-run keeps the column's number, so the earlier runs stay
stored (and in the gallery) while the comparison shows the latest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, selectinload

from ..admin.rollup import price_variant, unit_price
from ..auth.roles import Role, User
from ..config import ModelPrice
from ..db.tables import Comparison, Job, utcnow
from ..errors import InvalidInput, NotFound
from ..studio import Studio
from .browse import decode_cursor, encode_cursor
from .status import JobKind, JobStatus

MAX_PAGE = 200


@dataclass(frozen=True)
class ColumnView:
    """One column: what it asked for and its newest job (None when it could not be started)."""

    index: int
    model: str
    params: dict[str, Any]
    skipped: list[str]  # shared options its model does not take, left out for it
    job: Job | None
    runs: int  # jobs made in this column, re-runs included
    seconds: float | None  # created → finished, or so far
    estimated_cost: float | None  # USD; None when the price table does not say
    error: str | None  # why it failed, or why it could not be started

    @property
    def status(self) -> str:
        return str(self.job.status) if self.job is not None else JobStatus.FAILED.value

    @property
    def finished(self) -> bool:
        return self.job is None or JobStatus(self.job.status).is_final


@dataclass(frozen=True)
class ComparisonView:
    comparison: Comparison
    columns: list[ColumnView]
    job_ids: frozenset[str]  # every run of every column, earlier re-runs included

    @property
    def id(self) -> str:
        return self.comparison.id

    @property
    def kind(self) -> str:
        return str(self.comparison.kind)

    @property
    def prompt(self) -> str:
        return self.comparison.prompt

    @property
    def owner(self) -> str:
        return self.comparison.owner

    @property
    def winner_job_id(self) -> str | None:
        """The starred job, while it is still there (a deleted winner shows none)."""
        winner = self.comparison.winner_job_id
        return winner if winner in self.job_ids else None

    @property
    def created_at(self) -> datetime:
        return self.comparison.created_at

    @property
    def jobs(self) -> list[Job]:
        return [c.job for c in self.columns if c.job is not None]

    @property
    def finished(self) -> bool:
        return all(c.finished for c in self.columns)

    @property
    def all_succeeded(self) -> bool:
        return all(c.status == JobStatus.SUCCEEDED for c in self.columns)

    @property
    def estimated_cost(self) -> float | None:
        """The columns' estimates added up; None when no column has a price."""
        known = [c.estimated_cost for c in self.columns if c.estimated_cost is not None]
        return round(sum(known), 6) if known else None


@dataclass(frozen=True)
class ComparisonPage:
    comparisons: list[ComparisonView]
    next_cursor: str | None  # pass back as ``after`` for the following page


def estimated_cost(prices: Mapping[str, ModelPrice], job: Job) -> float | None:
    """What the job costs by the price table: images × price per image, or seconds × price per
    second. A job still running is estimated from what it asked for; one that failed made
    nothing and costs 0 (as the task history counts it)."""
    price = unit_price(
        prices, job.model, str(job.kind), price_variant(str(job.kind), job.params or {}, job.usage or {})
    )
    if price is None:
        return None
    status = JobStatus(job.status)
    if status.is_final and status is not JobStatus.SUCCEEDED:
        return 0.0
    usage, params = job.usage or {}, job.params or {}
    if job.kind == JobKind.IMAGE:
        units = float(usage.get("images") or (len(job.assets) if status.is_final else 0) or params.get("n") or 1)
    else:
        units = float(usage.get("seconds") or params.get("duration") or params.get("seconds") or 0)
    return round(units * price, 6)


def seconds_taken(job: Job, now: datetime | None = None) -> float:
    end = job.finished_at or now or utcnow()
    return round(max(0.0, (end - job.created_at).total_seconds()), 3)


def may_see(viewer: User | None, comparison: Comparison) -> bool:
    """Creators see their own groups; reviewers and admins everyone's (as with jobs)."""
    return viewer is None or viewer.role is not Role.CREATOR or comparison.owner == viewer.email


def get(studio: Studio, comparison_id: str, *, viewer: User | None = None) -> ComparisonView:
    """The group with each column's newest job; another creator's group is as good as absent."""
    with studio.db.read() as session:
        comparison = session.get(Comparison, comparison_id)
        if comparison is None or not may_see(viewer, comparison):
            raise NotFound(f"no comparison with id {comparison_id!r}")
        return _views(studio, session, [comparison])[0]


def views_of(studio: Studio, comparison_ids: Sequence[str]) -> dict[str, ComparisonView]:
    """The groups with these ids that are still there, by id, read together (a gallery page's
    comparisons: two queries, however many are on the page)."""
    if not comparison_ids:
        return {}
    with studio.db.read() as session:
        found = list(session.scalars(select(Comparison).where(Comparison.id.in_(sorted(set(comparison_ids))))))
        return {view.id: view for view in _views(studio, session, found)}


def list_comparisons(
    studio: Studio, *, owner: str | None = None, limit: int = 24, after: str | None = None
) -> ComparisonPage:
    """Groups newest first, keyset-paged over (created_at, id) like the gallery's jobs."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"{limit} is out of range", f"1–{MAX_PAGE}")
    query = select(Comparison)
    if owner:
        query = query.where(Comparison.owner == owner)
    if after:
        query = query.where(tuple_(Comparison.created_at, Comparison.id) < decode_cursor(after))
    query = query.order_by(Comparison.created_at.desc(), Comparison.id.desc()).limit(limit + 1)
    with studio.db.read() as session:
        found = list(session.scalars(query))
        page = found[:limit]
        views = _views(studio, session, page)
    more = len(found) > limit
    return ComparisonPage(views, encode_cursor(page[-1].created_at, page[-1].id) if more and page else None)


def _views(studio: Studio, session: Session, comparisons: Sequence[Comparison]) -> list[ComparisonView]:
    """Each group with its columns, from one query for all their jobs."""
    ids = [c.id for c in comparisons]
    query = (
        select(Job)
        .where(Job.comparison_id.in_(ids))
        .options(selectinload(Job.assets), selectinload(Job.inputs))
        .order_by(Job.created_at, Job.id)
    )
    by_column: dict[tuple[str, int], list[Job]] = {}
    for found in session.scalars(query):
        by_column.setdefault((found.comparison_id or "", found.comparison_column or 0), []).append(found)
    now = utcnow()
    views = []
    for comparison in comparisons:
        columns = []
        for index, asked in enumerate(comparison.columns):
            runs = by_column.get((comparison.id, index), [])
            job = runs[-1] if runs else None
            columns.append(
                ColumnView(
                    index=index,
                    model=asked["model"],
                    params=dict(asked.get("params") or {}),
                    skipped=list(asked.get("skipped") or []),
                    job=job,
                    runs=len(runs),
                    seconds=seconds_taken(job, now) if job is not None else None,
                    estimated_cost=estimated_cost(studio.settings.prices, job) if job is not None else None,
                    error=(job.error_message if job is not None else asked.get("error") or "not started"),
                )
            )
        made = frozenset(job.id for (group, _), runs in by_column.items() if group == comparison.id for job in runs)
        views.append(ComparisonView(comparison, columns, made))
    return views
