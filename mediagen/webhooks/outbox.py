"""The webhook outbox: a job that carries a webhook URL gets a delivery row in the transaction
that gives it its final state (``jobs.transitions.record``), so a crash can never end a job without
its webhook, nor send one for a state that was rolled back. ``delivery`` sends them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db.tables import Job, WebhookDelivery, utcnow
from ..errors import InvalidInput, RefusedURL
from ..jobs.schema import JobOut
from ..jobs.status import JobStatus
from ..studio import Studio

MAX_URL_CHARS = 2048
URL_ALLOWED = (
    f"an http or https URL with a host that resolves to public addresses, at most {MAX_URL_CHARS} characters, "
    "without whitespace or control characters"
)


def check_webhook_url(studio: Studio, url: str | None) -> str | None:
    """The URL a job may carry, or a clear ``InvalidInput`` naming the field. Every way in (pages,
    CLI, HTTP API, retries) submits through ``jobs.actions.validate``, which calls this; the check
    is the one delivery makes before each attempt, so what passes here can be sent."""
    if url is None or not url.strip():
        return None
    url = url.strip()  # blanks around a pasted URL; any inside it are refused below
    if studio.settings.webhook_secret is None:
        raise InvalidInput(
            "webhook_url", "webhooks are off on this server", "set MEDIAGEN_WEBHOOK_SECRET to turn them on"
        )
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput("webhook_url", f"is {len(url)} characters long", URL_ALLOWED)
    try:
        studio.guard.check_url(url)
    except RefusedURL as exc:
        raise InvalidInput("webhook_url", str(exc), URL_ALLOWED) from None
    return url


def enqueue(session: Session, job: Job, status: JobStatus, now: datetime) -> None:
    """Add the delivery for a job's final state to the current transaction (the outbox)."""
    if job.webhook_url:
        session.add(WebhookDelivery(job=job, url=job.webhook_url, event=f"job.{status.value}", next_attempt_at=now))


def payload(studio: Studio, job: Job, event: str) -> dict[str, Any]:
    """What the receiver gets: Standard Webhooks' {type, timestamp, data} with the job in data.
    Built at each attempt, so presigned asset URLs are fresh even on a retry hours later."""
    data = JobOut.of(job, studio.storage).data()
    data.pop("params", None)
    return {"type": event, "timestamp": (job.finished_at or utcnow()).isoformat(), "data": data}
