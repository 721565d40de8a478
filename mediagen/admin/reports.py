"""The admin metrics of the Task history page as pandas frames, read from the daily roll-up
(``rollup``): a period's worth is a few rows per day, however many jobs it holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import pandas as pd
from sqlalchemy import Select, false, func, select

from ..db.tables import Job, JobDuration, JobStat
from ..jobs.browse import JobFilters
from ..jobs.status import JobKind, JobStatus
from ..studio import Studio
from .rollup import BUCKET_BOUNDS, percentile, unit_price

LINE_COLUMNS = ["day", "provider", "model", "owner", "kind", "status", "error_code", "variant", "jobs", "usage_units"]
# Not the provider's fault: a user canceled. Success rate is over the jobs that could succeed.
OUTCOMES = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT]
FAILURES = [JobStatus.FAILED.value, JobStatus.TIMED_OUT.value]


S = TypeVar("S", bound=Select)  # type: ignore[type-arg]


def _matching(query: S, filters: JobFilters, table: type[JobStat] | type[JobDuration] = JobStat) -> S:
    """``query`` over a roll-up table narrowed to the history filters (kind, status, model, owner,
    creation days)."""
    filters.validate()
    for name, chosen in (("kind", filters.kinds), ("model", filters.models)):
        if chosen:
            query = query.where(getattr(table, name).in_(list(chosen)))
    if filters.statuses:
        if table is JobStat:
            query = query.where(JobStat.status.in_(list(filters.statuses)))
        elif JobStatus.SUCCEEDED.value not in filters.statuses:
            query = query.where(false())  # only succeeded jobs have a time to result
    if filters.owner:
        query = query.where(table.owner == filters.owner)
    if filters.since:
        query = query.where(table.day >= filters.since)
    if filters.until:
        query = query.where(table.day <= filters.until)
    return query


def stat_frame(studio: Studio, filters: JobFilters) -> pd.DataFrame:
    """The roll-up lines matching the history filters, each with its estimated cost: NaN where
    the price table has no price for it."""
    with studio.db.read() as session:
        rows = session.execute(_matching(select(*(getattr(JobStat, c) for c in LINE_COLUMNS)), filters)).all()
    values = list(zip(*rows, strict=True)) if rows else [()] * len(LINE_COLUMNS)
    frame = pd.DataFrame(dict(zip(LINE_COLUMNS, values, strict=True)), columns=LINE_COLUMNS)
    # Priced per distinct (model, kind, variant), from the plain tuples: iterating pandas'
    # string columns costs more than the lookups.
    keys = list(zip(*values[2:3], *values[4:5], *values[7:8], strict=True))
    prices = studio.settings.prices
    price_of = {key: unit_price(prices, *key) for key in set(keys)}
    frame["unit_price"] = pd.Series([price_of[key] for key in keys], dtype="float64")
    frame["cost_usd"] = (frame["usage_units"] * frame["unit_price"]).where(frame["usage_units"] > 0, 0.0)
    return frame


def time_to_result(studio: Studio, filters: JobFilters, by: Sequence[str] = ()) -> pd.DataFrame:
    """p50 and p95 time to result of the succeeded jobs matching the filters, per ``by`` (columns
    of ``JobDuration``, e.g. provider and model) or overall."""
    groups = [getattr(JobDuration, name) for name in by]
    query = select(*groups, JobDuration.bucket, func.sum(JobDuration.jobs)).group_by(*groups, JobDuration.bucket)
    with studio.db.read() as session:
        rows = session.execute(_matching(query, filters, JobDuration)).all()
    histograms: dict[tuple[object, ...], list[int]] = {}
    for *group, bucket, jobs in rows:
        histogram = histograms.setdefault(tuple(group), [0] * (len(BUCKET_BOUNDS) + 1))
        histogram[bucket] += int(jobs)
    table = [
        [*group, _rounded(percentile(histogram, 0.5)), _rounded(percentile(histogram, 0.95))]
        for group, histogram in histograms.items()
    ]
    return pd.DataFrame(table, columns=[*by, "p50_s", "p95_s"])


def _rounded(seconds: float | None) -> float:
    return float("nan") if seconds is None else round(seconds, 1)


def _jobs_with(frame: pd.DataFrame, status: str | Sequence[str]) -> int:
    statuses = [status] if isinstance(status, str) else list(status)
    return int(frame.loc[frame["status"].isin(statuses), "jobs"].sum())


def _success_rate(frame: pd.DataFrame) -> float:
    could_succeed = _jobs_with(frame, [s.value for s in OUTCOMES])
    return _jobs_with(frame, JobStatus.SUCCEEDED.value) / could_succeed if could_succeed else float("nan")


@dataclass(frozen=True)
class Overview:
    finished: int
    succeeded: int
    canceled: int  # left out of the success rate: a user stopped them
    success_rate: float  # succeeded of succeeded, failed and timed out; NaN with none of those
    p50_s: float  # time to result of succeeded jobs; NaN with none
    p95_s: float
    timeouts: int
    failures: int
    cost_usd: float
    unpriced_models: list[str]  # models with usage but no price: the cost leaves them out


def overview(studio: Studio, frame: pd.DataFrame, filters: JobFilters) -> Overview:
    unpriced = frame[(frame["usage_units"] > 0) & frame["unit_price"].isna()]
    times = time_to_result(studio, filters)
    p50, p95 = (times.iloc[0]["p50_s"], times.iloc[0]["p95_s"]) if len(times) else (float("nan"), float("nan"))
    return Overview(
        finished=int(frame["jobs"].sum()),
        succeeded=_jobs_with(frame, JobStatus.SUCCEEDED.value),
        canceled=_jobs_with(frame, JobStatus.CANCELED.value),
        success_rate=_success_rate(frame),
        p50_s=float(p50),
        p95_s=float(p95),
        timeouts=_jobs_with(frame, JobStatus.TIMED_OUT.value),
        failures=_jobs_with(frame, JobStatus.FAILED.value),
        cost_usd=float(frame["cost_usd"].sum(skipna=True)),
        unpriced_models=sorted(set(unpriced["model"])),
    )


def by_model(studio: Studio, frame: pd.DataFrame, filters: JobFilters) -> pd.DataFrame:
    """Per provider and model: volume, outcome counts, success rate, p50/p95 time to result."""
    rows = []
    for (provider, model), lines in frame.groupby(["provider", "model"], sort=True):
        rows.append(
            {
                "provider": provider,
                "model": model,
                "jobs": int(lines["jobs"].sum()),
                **{status.value: _jobs_with(lines, status.value) for status in JobStatus if status.is_final},
                "success_rate": _success_rate(lines),
            }
        )
    columns = ["provider", "model", "jobs", *(s.value for s in JobStatus if s.is_final), "success_rate"]
    counts = pd.DataFrame(rows, columns=columns)
    times = time_to_result(studio, filters, by=("provider", "model"))
    return counts.merge(times, on=["provider", "model"], how="left")


def failure_reasons(studio: Studio, frame: pd.DataFrame) -> pd.DataFrame:
    """Failures and timeouts grouped by reason, most frequent first, with the models affected and
    the latest message given for each reason."""
    failed = frame[frame["status"].isin(FAILURES)]
    rows = []
    total = int(failed["jobs"].sum())
    for code, lines in failed.groupby("error_code", sort=False):
        rows.append(
            {
                "reason": code or "(none given)",
                "jobs": int(lines["jobs"].sum()),
                "share": int(lines["jobs"].sum()) / total,
                "models": ", ".join(sorted(set(lines["model"]))),
                "latest_message": _latest_message(studio, str(code)),
            }
        )
    reasons = pd.DataFrame(rows, columns=["reason", "jobs", "share", "models", "latest_message"])
    return reasons.sort_values(["jobs", "reason"], ascending=[False, True], ignore_index=True)


def _latest_message(studio: Studio, code: str) -> str | None:
    query = (
        select(Job.error_message)
        .where(Job.error_code == (code or None), Job.status.in_(FAILURES))
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    with studio.db.read() as session:
        return session.scalar(query)


def daily(frame: pd.DataFrame, value: str = "jobs", start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """``value`` (jobs or cost_usd) per creation day, one column per status, every day from
    ``start`` to ``end`` (default: the first and last day with jobs), so a chart's gaps are real."""
    if frame.empty:
        return pd.DataFrame()
    table = frame.pivot_table(index="day", columns="status", values=value, aggfunc="sum", fill_value=0)
    days = pd.date_range(start or min(frame["day"]), end or max(frame["day"]), freq="D").date
    table = table.reindex(days, fill_value=0)
    table.index.name = "day"
    table.columns = [str(c) for c in table.columns]
    return table


def usage(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per ``model`` or ``owner``: jobs, images made, seconds of video made and estimated cost
    (NaN when some of the usage has no price)."""
    rows = []
    for name, lines in frame.groupby(by, sort=True):
        images = lines["kind"] == JobKind.IMAGE.value
        unpriced = bool(((lines["usage_units"] > 0) & lines["unit_price"].isna()).any())
        rows.append(
            {
                by: name,
                "jobs": int(lines["jobs"].sum()),
                "images": int(lines.loc[images, "usage_units"].sum()),
                "video_s": float(lines.loc[~images, "usage_units"].sum()),
                "cost_usd": float("nan") if unpriced else round(float(lines["cost_usd"].sum()), 2),
            }
        )
    table = pd.DataFrame(rows, columns=[by, "jobs", "images", "video_s", "cost_usd"])
    return table.sort_values(["cost_usd", "jobs"], ascending=False, na_position="last", ignore_index=True)


def owners(studio: Studio) -> list[str]:
    """Users with finished jobs (from the roll-up: a few rows, not a scan of every job)."""
    with studio.db.read() as session:
        return sorted(session.scalars(select(JobStat.owner).distinct()))
