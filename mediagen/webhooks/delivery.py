"""Delivering the outbox: signed webhooks for finished jobs, with retries.

``deliver_due`` (run by every worker after each tick) claims due deliveries with a lease
(``db.leases``), POSTs them signed per Standard Webhooks (the `webhook-id` stays the same on every
retry), and records each attempt. Only a 2xx counts; redirects are not followed; 410 Gone stops all
deliveries to that URL; a URL that can never be sent (refused by the outbound guard) fails at once;
anything else, whatever one attempt raised, is that attempt's recorded outcome, retried with
exponential backoff and jitter until `MEDIAGEN_WEBHOOK_RETRY_WINDOW_S` has passed since the job
ended. One delivery never stalls or re-sends another of its batch.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from standardwebhooks import Webhook

from ..db import leases
from ..db.tables import Job, WebhookAttempt, WebhookDelivery, utcnow
from ..errors import DatabaseUnavailable, RefusedURL
from ..netguard import OutboundGuard, guarded_stream
from ..studio import Studio
from .outbox import payload
from .status import AttemptOutcome, DeliveryStatus

log = logging.getLogger(__name__)
BATCH = 20
RESPONSE_EXCERPT = 200
BACKOFF_CAP_S = 3600.0


@dataclass(frozen=True)
class _Claimed:
    id: str
    url: str
    job_id: str
    event: str
    attempts: int


def deliver_due(studio: Studio, worker_id: str, *, now: datetime | None = None) -> Counter[AttemptOutcome]:
    """Deliver what is due; return how many attempts ended in each outcome."""
    secret = studio.settings.webhook_secret
    counts: Counter[AttemptOutcome] = Counter()
    if secret is None:
        return counts
    claimed = _claim(studio, worker_id, now or utcnow())
    if not claimed:
        return counts
    signer = Webhook(secret.get_secret_value())
    with httpx.Client(timeout=studio.settings.webhook_timeout_s) as client:
        for delivery in claimed:
            try:
                counts[_deliver(studio, client, signer, delivery, worker_id)] += 1
            except DatabaseUnavailable:
                raise  # so is every other outcome of the batch: its worker hands the leases back later
            except Exception:
                # Recording the outcome failed (the database, most likely): the lease runs out and
                # the delivery is claimed again; the rest of the batch goes on.
                log.exception("webhook %s: could not record the attempt's outcome", delivery.id)
    return counts


def _claim(studio: Studio, worker_id: str, now: datetime) -> list[_Claimed]:
    due = (WebhookDelivery.status == DeliveryStatus.PENDING) & (WebhookDelivery.next_attempt_at <= now)
    with studio.db.write() as session:
        taken = leases.claim(
            session,
            WebhookDelivery,
            due=due,
            order_by=(WebhookDelivery.next_attempt_at,),
            limit=BATCH,
            owner=worker_id,
            lease_s=studio.settings.webhook_timeout_s * 3 + 30,
            now=now,
        )
        return [_Claimed(d.id, d.url, d.job_id, d.event, d.attempts) for d in taken]


@dataclass(frozen=True)
class _Result:
    """How one attempt ended, before it is recorded."""

    status: DeliveryStatus
    status_code: int | None = None
    error: str | None = None


def _deliver(
    studio: Studio, client: httpx.Client, signer: Webhook, claimed: _Claimed, worker_id: str
) -> AttemptOutcome:
    started = time.monotonic()
    try:
        result = _attempt(studio, client, signer, claimed)
    except RefusedURL as exc:
        status = DeliveryStatus.PENDING if exc.transient else DeliveryStatus.FAILED
        result = _Result(status, None, f"refused: {exc}"[:RESPONSE_EXCERPT])
    except Exception as exc:
        # Whatever one attempt raised (presigning the payload's URLs, the network, a bug) is that
        # attempt's outcome: recorded, retried with backoff, and the batch goes on.
        if not isinstance(exc, httpx.HTTPError):
            log.warning("webhook %s: the attempt raised", claimed.id, exc_info=True)
        result = _Result(DeliveryStatus.PENDING, None, f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT])
    elapsed_ms = int((time.monotonic() - started) * 1000)
    return _settle(studio, claimed, worker_id, result.status, result.status_code, result.error, elapsed_ms)


def _attempt(studio: Studio, client: httpx.Client, signer: Webhook, claimed: _Claimed) -> _Result:
    with studio.db.read() as session:
        gone_before = session.scalar(
            select(WebhookDelivery.id).where(
                WebhookDelivery.url == claimed.url, WebhookDelivery.status == DeliveryStatus.GONE
            )
        )
        job = session.get(Job, claimed.job_id)
        body = json.dumps(payload(studio, job, claimed.event), separators=(",", ":")) if job else None
    if gone_before or body is None:
        reason = "the endpoint answered 410 Gone to an earlier delivery" if gone_before else "the job was deleted"
        return _Result(DeliveryStatus.GONE, None, reason)
    status_code = _post(client, studio.guard, signer, claimed, body)
    if 200 <= status_code < 300:
        return _Result(DeliveryStatus.DELIVERED, status_code)
    if status_code == 410:
        return _Result(DeliveryStatus.GONE, 410, "410 Gone: no more deliveries to this URL")
    error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    return _Result(DeliveryStatus.PENDING, status_code, error)


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
    outcome: DeliveryStatus,
    status_code: int | None,
    error: str | None,
    elapsed_ms: int,
) -> AttemptOutcome:
    """Record the attempt and where the delivery stands now."""
    now = utcnow()
    with studio.db.write() as session:
        delivery = session.get(WebhookDelivery, claimed.id)
        if delivery is None or delivery.lease_owner != worker_id or delivery.status != DeliveryStatus.PENDING:
            return AttemptOutcome.STALE  # our lease ran out and another worker took the delivery over
        delivery.attempts += 1
        session.add(
            WebhookAttempt(delivery=delivery, at=now, status_code=status_code, error=error, duration_ms=elapsed_ms)
        )
        delivery.last_status_code, delivery.last_error = status_code, error
        leases.release(delivery)
        if outcome == DeliveryStatus.PENDING:
            window_ends = (delivery.job.finished_at or delivery.created_at) + timedelta(
                seconds=studio.settings.webhook_retry_window_s
            )
            retry_at = now + timedelta(seconds=backoff_s(studio.settings.webhook_retry_base_s, delivery.attempts))
            if retry_at > window_ends:
                outcome = DeliveryStatus.FAILED
                delivery.last_error = f"{error}; gave up after {delivery.attempts} attempts"
            else:
                delivery.next_attempt_at = retry_at
        delivery.status = outcome
        if outcome == DeliveryStatus.DELIVERED:
            delivery.delivered_at = now
        if outcome != DeliveryStatus.PENDING:
            delivery.next_attempt_at = None
        if outcome == DeliveryStatus.GONE and status_code == 410:
            # Every other delivery still waiting for this URL stops too.
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.url == claimed.url, WebhookDelivery.status == DeliveryStatus.PENDING)
                .where(WebhookDelivery.id != claimed.id, WebhookDelivery.lease_owner.is_(None))
                .values(status=DeliveryStatus.GONE, next_attempt_at=None, last_error="the endpoint answered 410 Gone")
            )
    if outcome != DeliveryStatus.DELIVERED:
        log.info("webhook %s to %s: %s (%s)", claimed.id, claimed.url.split("?", 1)[0], outcome, error)
    return AttemptOutcome.RETRYING if outcome == DeliveryStatus.PENDING else AttemptOutcome(outcome.value)


def backoff_s(base_s: float, attempts: int) -> float:
    """Exponential with full jitter over its upper half. The schedule lives in the database (a
    retry may run in another process hours later), so it is computed here, not by a retry loop."""
    ceiling = min(BACKOFF_CAP_S, base_s * 2 ** max(0, attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)
