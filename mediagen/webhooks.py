"""Signed webhooks for finished jobs, delivered from an outbox.

`lifecycle.record` writes a `WebhookDelivery` in the same transaction that gives a job its final
state, so a crash can never end a job without its webhook, nor send one for a state that was
rolled back. `deliver_due` (run by the scheduler after each poll tick) claims due deliveries with
a lease, POSTs them signed per Standard Webhooks (the `webhook-id` stays the same on every retry),
and records each attempt. Only a 2xx counts; redirects are not followed; 410 Gone stops all
deliveries to that URL; anything else is retried with exponential backoff and jitter until
`MEDIAGEN_WEBHOOK_RETRY_WINDOW_S` has passed since the job ended.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from .errors import InvalidInput
from .models import Job, WebhookAttempt, WebhookDelivery, utcnow
from .netguard import OutboundGuard, RefusedURL, guarded_stream
from .states import JobStatus
from .studio import Studio

log = logging.getLogger(__name__)
BATCH = 20
MAX_URL_CHARS = 2048
RESPONSE_EXCERPT = 200
BACKOFF_CAP_S = 3600.0


class Outcome:
    DELIVERED = "delivered"
    FAILED = "failed"
    GONE = "gone"
    PENDING = "pending"
    ALL = (PENDING, DELIVERED, FAILED, GONE)


def check_webhook_url(studio: Studio, url: str | None) -> str | None:
    """The URL a job may carry, or a clear ``InvalidInput`` naming the field."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    if studio.settings.webhook_secret is None:
        raise InvalidInput(
            "webhook_url", "webhooks are off on this server", "set MEDIAGEN_WEBHOOK_SECRET to turn them on"
        )
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput("webhook_url", f"is {len(url)} characters long", f"at most {MAX_URL_CHARS}")
    try:
        studio.guard.check_url(url)
    except RefusedURL as exc:
        raise InvalidInput("webhook_url", str(exc), "an http(s) URL of a public host") from None
    return url


def enqueue(session: Session, job: Job, status: JobStatus, now: datetime) -> None:
    """Add the delivery for a job's final state to the current transaction (the outbox)."""
    if job.webhook_url:
        session.add(WebhookDelivery(job=job, url=job.webhook_url, event=f"job.{status.value}", next_attempt_at=now))


def payload(studio: Studio, job: Job, event: str) -> dict[str, Any]:
    """What the receiver gets: Standard Webhooks' {type, timestamp, data} with the job in data.
    Built at each attempt, so presigned asset URLs are fresh even on a retry hours later."""
    from .jobs import job_to_dict  # jobs imports this module for submit-time validation

    data = job_to_dict(studio, job)
    data.pop("params", None)
    return {"type": event, "timestamp": (job.finished_at or utcnow()).isoformat(), "data": data}


@dataclass(frozen=True)
class _Claimed:
    id: str
    url: str
    job_id: str
    event: str
    attempts: int


def deliver_due(studio: Studio, worker_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Deliver what is due; return how many ended in each outcome."""
    secret = studio.settings.webhook_secret
    if secret is None:
        return {}
    claimed = _claim(studio, worker_id, now or utcnow())
    if not claimed:
        return {}
    signer = Webhook(secret.get_secret_value())
    counts: dict[str, int] = {}
    with httpx.Client(timeout=studio.settings.webhook_timeout_s) as client:
        for delivery in claimed:
            outcome = _deliver(studio, client, signer, delivery, worker_id)
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _claim(studio: Studio, worker_id: str, now: datetime) -> list[_Claimed]:
    lease = timedelta(seconds=studio.settings.webhook_timeout_s * 3 + 30)
    with studio.db.write() as session:
        due = session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status == Outcome.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for delivery in due:
            delivery.lease_owner, delivery.lease_until = worker_id, now + lease
        return [_Claimed(d.id, d.url, d.job_id, d.event, d.attempts) for d in due]


def _deliver(studio: Studio, client: httpx.Client, signer: Webhook, claimed: _Claimed, worker_id: str) -> str:
    with studio.db.read() as session:
        gone_before = session.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.url == claimed.url, WebhookDelivery.status == Outcome.GONE)
        )
        job = session.get(Job, claimed.job_id)
        body = json.dumps(payload(studio, job, claimed.event), separators=(",", ":")) if job else None
    if gone_before or body is None:
        reason = "the endpoint answered 410 Gone to an earlier delivery" if gone_before else "the job was deleted"
        return _settle(studio, claimed, worker_id, Outcome.GONE, None, reason, 0)
    status_code, error, started = None, None, time.monotonic()
    try:
        status_code = _post(client, studio.guard, signer, claimed, body)
    except RefusedURL as exc:
        return _settle(studio, claimed, worker_id, Outcome.FAILED, None, f"refused: {exc}", 0)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT]
    elapsed_ms = int((time.monotonic() - started) * 1000)
    if status_code is not None and 200 <= status_code < 300:
        return _settle(studio, claimed, worker_id, Outcome.DELIVERED, status_code, None, elapsed_ms)
    if status_code == 410:
        return _settle(
            studio, claimed, worker_id, Outcome.GONE, 410, "410 Gone: no more deliveries to this URL", elapsed_ms
        )
    if status_code is not None:
        error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    return _settle(studio, claimed, worker_id, Outcome.PENDING, status_code, error, elapsed_ms)


def _post(client: httpx.Client, guard: OutboundGuard, signer: Webhook, claimed: _Claimed, body: str) -> int:
    sent_at = datetime.now(UTC)  # the library reads the timestamp as UTC whatever its tzinfo
    headers = {
        "content-type": "application/json",
        "user-agent": "mediagen-webhooks/1",
        "webhook-id": claimed.id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(claimed.id, sent_at, body),
    }
    with guarded_stream(
        client, "POST", claimed.url, guard, follow_redirects=False, content=body.encode(), headers=headers
    ) as response:
        return response.status_code


def _settle(
    studio: Studio,
    claimed: _Claimed,
    worker_id: str,
    outcome: str,
    status_code: int | None,
    error: str | None,
    elapsed_ms: int,
) -> str:
    now = utcnow()
    with studio.db.write() as session:
        delivery = session.get(WebhookDelivery, claimed.id)
        if delivery is None or delivery.lease_owner != worker_id or delivery.status != Outcome.PENDING:
            return "stale"  # our lease ran out and another worker took the delivery over
        delivery.attempts += 1
        session.add(
            WebhookAttempt(delivery=delivery, at=now, status_code=status_code, error=error, duration_ms=elapsed_ms)
        )
        delivery.last_status_code, delivery.last_error = status_code, error
        delivery.lease_owner = delivery.lease_until = None
        if outcome == Outcome.PENDING:
            window_ends = (delivery.job.finished_at or delivery.created_at) + timedelta(
                seconds=studio.settings.webhook_retry_window_s
            )
            retry_at = now + timedelta(seconds=backoff_s(studio.settings.webhook_retry_base_s, delivery.attempts))
            if retry_at > window_ends:
                outcome, delivery.last_error = Outcome.FAILED, f"{error}; gave up after {delivery.attempts} attempts"
            else:
                delivery.next_attempt_at = retry_at
        delivery.status = outcome
        if outcome == Outcome.DELIVERED:
            delivery.delivered_at = now
        if outcome != Outcome.PENDING:
            delivery.next_attempt_at = None
        if outcome == Outcome.GONE and status_code == 410:
            # Every other delivery still waiting for this URL stops too.
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.url == claimed.url, WebhookDelivery.status == Outcome.PENDING)
                .where(WebhookDelivery.id != claimed.id, WebhookDelivery.lease_owner.is_(None))
                .values(status=Outcome.GONE, next_attempt_at=None, last_error="the endpoint answered 410 Gone")
            )
    if outcome != Outcome.DELIVERED:
        log.info("webhook %s to %s: %s (%s)", claimed.id, claimed.url.split("?", 1)[0], outcome, error)
    return outcome


def backoff_s(base_s: float, attempts: int) -> float:
    """Exponential with full jitter over its upper half. The schedule lives in the database (a
    retry may run in another process hours later), so it is computed here, not by a retry loop."""
    ceiling = min(BACKOFF_CAP_S, base_s * 2 ** max(0, attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)
