"""Task history as pandas frames for admins: rows, counts, jobs over time, event timelines."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from .browse import JobFilters
from .models import Job, JobEvent, WebhookAttempt, WebhookDelivery
from .studio import Studio

# Frame column -> the job attribute it comes from; duration_s is computed.
_SELECTED = {
    "id": Job.id,
    "kind": Job.kind,
    "status": Job.status,
    "model": Job.model,
    "prompt": Job.prompt,
    "created": Job.created_at,
    "started": Job.started_at,
    "finished": Job.finished_at,
    "attempts": Job.attempt,
    "error": Job.error_message,
    "retried_from": Job.retried_from,
}
HISTORY_COLUMNS = [*list(_SELECTED)[:8], "duration_s", *list(_SELECTED)[8:]]
MAX_HISTORY_ROWS = 10_000


def history_frame(studio: Studio, filters: JobFilters, *, limit: int = MAX_HISTORY_ROWS) -> pd.DataFrame:
    query = filters.validate().apply(select(*_SELECTED.values()))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    with studio.db.read() as session:
        rows = session.execute(query).all()
    frame = pd.DataFrame(rows, columns=list(_SELECTED))
    for column in ("created", "started", "finished"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration_s"] = (frame["finished"] - frame["created"]).dt.total_seconds().round(1)
    return frame[HISTORY_COLUMNS]


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["status"].value_counts().items()}


def jobs_over_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Jobs created per hour (a span of up to two days) or per day, one column per status."""
    if frame.empty:
        return pd.DataFrame()
    span = frame["created"].max() - frame["created"].min()
    bucket = "h" if span <= pd.Timedelta(days=2) else "D"
    periods = frame["created"].dt.tz_convert(None).dt.floor(bucket)
    table = frame.assign(period=periods).pivot_table(
        index="period", columns="status", values="id", aggfunc="count", fill_value=0
    )
    table.columns = [str(c) for c in table.columns]
    return table


def events_frame(studio: Studio, job_id: str) -> pd.DataFrame:
    query = select(JobEvent.at, JobEvent.status, JobEvent.progress, JobEvent.message).where(JobEvent.job_id == job_id)
    with studio.db.read() as session:
        rows = session.execute(query.order_by(JobEvent.id)).all()
    frame = pd.DataFrame(rows, columns=["at", "status", "progress", "message"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def webhook_attempts_frame(studio: Studio, job_id: str) -> pd.DataFrame:
    """Every delivery attempt of the job's webhooks, oldest first: one row per POST we made, plus
    a row for a delivery not yet attempted."""
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.event,
            WebhookDelivery.status,
            WebhookAttempt.at,
            WebhookAttempt.status_code,
            WebhookAttempt.error,
            WebhookAttempt.duration_ms,
            WebhookDelivery.next_attempt_at,
        )
        .outerjoin(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at, WebhookAttempt.id)
    )
    with studio.db.read() as session:
        rows = session.execute(query).all()
    columns = ["webhook_id", "event", "delivery", "attempted", "http_status", "error", "ms", "next_attempt"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("attempted", "next_attempt"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")
