"""Admin metrics from the daily roll-up (``JobStat``): volume, success, time to result, failure
reasons, usage and estimated cost per model, provider and user.

Every job that ends adds itself to one roll-up line (its creation day, provider, model, owner,
kind, status, error code and price variant) in the transaction that ends it; a succeeded job also
counts its time to result in one of a set of log-spaced buckets, so p50/p95 over any period and
any grouping come from summing a few bucket counts instead of reading every job; the estimate is
within one bucket (±9 %) of the exact percentile. ``rebuild`` recomputes both from the jobs.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from ..config import ModelPrice
from ..db.engine import dialect_insert
from ..db.tables import Asset, Job, JobDuration, JobStat
from ..jobs.status import FINAL_STATUSES, JobKind, JobStatus

# Upper bounds of the time-to-result buckets: 0.25 s up to 18 h, four per doubling; one more
# bucket holds anything longer.
BUCKET_BOUNDS: tuple[float, ...] = tuple(0.25 * 2 ** (i / 4) for i in range(73))


def bucket_of(seconds: float) -> int:
    return bisect.bisect_left(BUCKET_BOUNDS, seconds)


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0–1) of the durations counted in ``histogram``, interpolated within its
    bucket on the log scale the buckets are spaced on; None when nothing was counted."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index == len(BUCKET_BOUNDS):  # beyond the last bound: all we know is the bound
                return BUCKET_BOUNDS[-1]
            upper = BUCKET_BOUNDS[index]
            share = (rank - seen) / count
            if index == 0:
                return upper * share
            lower = BUCKET_BOUNDS[index - 1]
            return float(lower * (upper / lower) ** share)
        seen += count
    return BUCKET_BOUNDS[-1]


# --- What a finished job adds ---------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """The facts about one ended job that the roll-up needs."""

    created_at: datetime
    finished_at: datetime
    provider: str
    model: str
    owner: str
    kind: str
    status: str
    error_code: str | None
    params: Mapping[str, Any]
    usage: Mapping[str, Any] | None
    asset_count: int
    asset_seconds: float

    @property
    def key(self) -> tuple[date, str, str, str, str, str, str, str]:
        return (
            self.created_at.astimezone(UTC).date(),
            self.provider,
            self.model,
            self.owner,
            self.kind,
            self.status,
            self.error_code or "",
            price_variant(self.kind, self.params, self.usage or {}),
        )

    @property
    def duration_key(self) -> dict[str, Any]:
        day, provider, model, owner, kind = self.key[:5]
        return {
            "day": day,
            "provider": provider,
            "model": model,
            "owner": owner,
            "kind": kind,
            "bucket": bucket_of(self.seconds),
        }

    @property
    def seconds(self) -> float:
        return max(0.0, (self.finished_at - self.created_at).total_seconds())

    @property
    def units(self) -> float:
        """Images made, or seconds of video made; a job without a result used none."""
        if self.status != JobStatus.SUCCEEDED:
            return 0.0
        usage = self.usage or {}
        if self.kind == JobKind.IMAGE:
            return float(usage.get("images") or self.asset_count or self.params.get("n") or 1)
        duration = usage.get("seconds") or self.params.get("duration") or self.params.get("seconds")
        return float(duration or self.asset_seconds)


def price_variant(kind: str, params: Mapping[str, Any], usage: Mapping[str, Any]) -> str:
    """What a price depends on besides the model: ``size/quality`` of an image (either alone when
    the other is not an option), the resolution of a video."""
    if kind == JobKind.IMAGE:
        parts = [str(params[name]) for name in ("size", "aspect_ratio", "quality") if params.get(name)]
        return "/".join(parts[:1] + parts[-1:] if len(parts) > 1 else parts)
    if params.get("resolution"):
        return str(params["resolution"])
    if usage.get("width") and usage.get("height"):
        return f"{usage['width']}x{usage['height']}"
    return str(usage.get("size") or params.get("size") or "")


def finished_from(job: Job) -> Finished:
    assert job.finished_at is not None
    return Finished(
        created_at=job.created_at,
        finished_at=job.finished_at,
        provider=job.provider,
        model=job.model,
        owner=job.owner,
        kind=str(job.kind),
        status=str(job.status),
        error_code=job.error_code,
        params=job.params or {},
        usage=job.usage,
        asset_count=len(job.assets),
        asset_seconds=sum(asset.duration_s or 0.0 for asset in job.assets),
    )


_COLUMNS = ("day", "provider", "model", "owner", "kind", "status", "error_code", "variant")
_DURATION_COLUMNS = ("day", "provider", "model", "owner", "kind")


def count_finished(session: Session, job: Job) -> None:
    """Add the job that just ended to its roll-up line (and, when it succeeded, its time to result
    to its bucket), in the caller's transaction. Upserts that add to what is there, so workers
    ending jobs on the same line at once all count, on PostgreSQL as on SQLite."""
    done = finished_from(job)
    insert_into = dialect_insert(session)
    line = insert_into(JobStat).values(
        **dict(zip(_COLUMNS, done.key, strict=True)), jobs=1, seconds_sum=done.seconds, usage_units=done.units
    )
    session.execute(
        line.on_conflict_do_update(
            index_elements=list(_COLUMNS),
            set_={
                "jobs": JobStat.jobs + 1,
                "seconds_sum": JobStat.seconds_sum + done.seconds,
                "usage_units": JobStat.usage_units + done.units,
            },
        )
    )
    if done.status == JobStatus.SUCCEEDED:
        bucket = insert_into(JobDuration).values(**done.duration_key, jobs=1)
        session.execute(
            bucket.on_conflict_do_update(
                index_elements=[*_DURATION_COLUMNS, "bucket"], set_={"jobs": JobDuration.jobs + 1}
            )
        )


def rebuild(connection: Connection) -> int:
    """Recompute the whole roll-up from the jobs table (migration 0006 and ``mediagen db
    rebuild-metrics``); returns the number of jobs counted. Deleted jobs are no longer known."""
    per_asset = (
        select(
            Asset.job_id,
            func.count().label("asset_count"),
            func.coalesce(func.sum(Asset.duration_s), 0.0).label("asset_seconds"),
        )
        .group_by(Asset.job_id)
        .subquery()
    )
    query = (
        select(
            Job.created_at,
            Job.finished_at,
            Job.provider,
            Job.model,
            Job.owner,
            Job.kind,
            Job.status,
            Job.error_code,
            Job.params,
            Job.usage,
            func.coalesce(per_asset.c.asset_count, literal(0)).label("asset_count"),
            func.coalesce(per_asset.c.asset_seconds, literal(0.0)).label("asset_seconds"),
        )
        .outerjoin(per_asset, per_asset.c.job_id == Job.id)
        .where(Job.status.in_([s.value for s in FINAL_STATUSES]), Job.finished_at.is_not(None))
    )
    if connection.dialect.name == "postgresql":
        # Right after a bulk load or a restore PostgreSQL has no statistics yet and joins the two
        # tables by a nested loop: 13 minutes at 100k jobs instead of 6 seconds.
        connection.exec_driver_sql("ANALYZE jobs, assets")
    lines: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    buckets: Counter[tuple[Any, ...]] = Counter()
    for row in connection.execute(query.execution_options(yield_per=5000)):
        done = Finished(**row._mapping)
        line = lines[done.key]
        line[0] += 1
        line[1] += done.seconds
        line[2] += done.units
        if done.status == JobStatus.SUCCEEDED:
            buckets[tuple(done.duration_key.values())] += 1
    connection.execute(delete(JobStat))
    connection.execute(delete(JobDuration))
    stats = [
        dict(zip(_COLUMNS, key, strict=True)) | {"jobs": jobs, "seconds_sum": seconds, "usage_units": units}
        for key, (jobs, seconds, units) in lines.items()
    ]
    durations = [
        dict(zip((*_DURATION_COLUMNS, "bucket"), key, strict=True)) | {"jobs": jobs} for key, jobs in buckets.items()
    ]
    for table, rows in ((JobStat, stats), (JobDuration, durations)):
        for start in range(0, len(rows), 1000):
            connection.execute(insert(table), rows[start : start + 1000])
    return int(sum(line[0] for line in lines.values()))


# --- Prices ------------------------------------------------------------------------------------


def unit_price(prices: Mapping[str, ModelPrice], model: str, kind: str, variant: str) -> float | None:
    """USD per image or per second of video for this model and variant; None when the price table
    does not say (the cost is then unknown, not zero)."""
    table = prices.get(model)
    if table is None:
        return None
    per_unit = table.per_image if kind == JobKind.IMAGE else table.per_second
    candidates = [variant, *variant.split("/")] if kind == JobKind.IMAGE else [variant]
    for key in (*candidates, "*"):
        if key in per_unit:
            return per_unit[key]
    return None
