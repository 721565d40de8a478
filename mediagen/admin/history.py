"""Task history as pandas frames for admins: pages of jobs, counts, CSV export, event timelines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from ..db.tables import Job, JobEvent, WebhookAttempt, WebhookDelivery
from ..jobs import browse
from ..jobs.browse import JobFilters
from ..jobs.status import ACTIVE_STATUSES, JobStatus
from ..studio import Studio

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
    # The job's fencing token: one per claim (a worker's submit or status check, the app running
    # an image) and per cancel. Named for what it counts; it is not a retry count.
    "worker_steps": Job.attempt,
    "error": Job.error_message,
    "retried_from": Job.retried_from,
}
HISTORY_COLUMNS = [*list(_SELECTED)[:8], "duration_s", *list(_SELECTED)[8:]]
PAGE_ROWS = 100
EXPORT_ROWS = 100_000


def history_page(
    studio: Studio, filters: JobFilters, *, after: str | None = None, limit: int | None = None
) -> tuple[pd.DataFrame, str | None]:
    """One keyset page of matching jobs, newest first, and the cursor of the next (None at the
    end): the table costs the same however many jobs match."""
    limit = limit or PAGE_ROWS
    query = browse.seek(filters.validate().apply(select(*_SELECTED.values())), after)
    with studio.db.read() as session:
        rows = session.execute(query.limit(limit + 1)).all()
    more = len(rows) > limit
    frame = _frame(rows[:limit])
    last = frame.iloc[-1] if more else None
    return frame, None if last is None else browse.encode_cursor(last["created"].to_pydatetime(), last["id"])


def export_csv(studio: Studio, filters: JobFilters, *, limit: int = EXPORT_ROWS) -> bytes:
    """Every matching job (up to ``limit``, newest first) as CSV; built only when asked for."""
    query = browse.seek(filters.validate().apply(select(*_SELECTED.values())), None).limit(limit)
    with studio.db.read() as session:
        return to_csv(_frame(session.execute(query).all()))


def _frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(_SELECTED))
    for column in ("created", "started", "finished"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration_s"] = (frame["finished"] - frame["created"]).dt.total_seconds().round(1)
    return frame[HISTORY_COLUMNS]


def status_counts(studio: Studio, filters: JobFilters, lines: pd.DataFrame) -> dict[str, int]:
    """Jobs per status: finished ones from ``lines``, the daily roll-up for these filters (so
    including jobs deleted since), queued and running ones counted live (there are few)."""
    counts = {status.value: 0 for status in JobStatus}
    counts.update({str(status): int(jobs) for status, jobs in lines.groupby("status")["jobs"].sum().items()})
    active = [s.value for s in ACTIVE_STATUSES if not filters.statuses or s.value in filters.statuses]
    query = filters.apply(select(Job.status, func.count()).where(Job.status.in_(active)).group_by(Job.status))
    with studio.db.read() as session:
        counts.update({str(status): int(n) for status, n in session.execute(query)})
    return counts


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
