"""The one shape a job is shown in, to the CLI, in webhooks and over HTTP: ``JobOut``.

Asset URLs are made when the job is shown (presigned URLs expire, CDN bases change), never stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer

from ..db.tables import Asset, Job, JobEvent, JobInput, WebhookDelivery
from ..storage.base import Storage

# ISO 8601 with its UTC offset, as Python writes it ("2026-12-02T19:38:32.123456+00:00").
Timestamp = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


class AssetOut(BaseModel):
    url: str
    thumbnail_url: str | None
    content_type: str
    bytes: int
    sha256: str
    width: int | None
    height: int | None
    duration_s: float | None

    @classmethod
    def of(cls, asset: Asset, storage: Storage) -> AssetOut:
        return cls(
            url=storage.url(asset.key),
            thumbnail_url=storage.url(asset.thumbnail_key) if asset.thumbnail_key else None,
            content_type=asset.content_type,
            bytes=asset.bytes,
            sha256=asset.sha256,
            width=asset.width,
            height=asset.height,
            duration_s=asset.duration_s,
        )


class InputOut(BaseModel):
    """An image the job started from (``role`` image or mask), kept with it in our storage."""

    role: str
    url: str
    content_type: str
    bytes: int
    width: int
    height: int
    origin: str  # for people: "job 1a2b…", "upload cat.png", a URL without its query
    source_job_id: str | None  # the job whose result it is, when it is one of ours

    @classmethod
    def of(cls, row: JobInput, storage: Storage) -> InputOut:
        return cls(
            role=row.role,
            url=storage.url(row.key),
            content_type=row.content_type,
            bytes=row.bytes,
            width=row.width,
            height=row.height,
            origin=row.origin,
            source_job_id=row.source_job_id,
        )


class EventOut(BaseModel):
    at: Timestamp
    status: str
    progress: int
    message: str | None

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls(at=event.at, status=event.status, progress=event.progress, message=event.message)


class DeliveryOut(BaseModel):
    id: str
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event=delivery.event,
            status=str(delivery.status),
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
        )


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    model: str
    provider: str
    prompt: str
    params: dict[str, Any]
    progress: int
    error: str | None
    error_code: str | None
    retried_from: str | None
    derived_from: str | None
    derivation: str | None  # ``lineage.Derivation``: rerun, video, edit, variation
    comparison_id: str | None
    comparison_column: int | None
    provider_job_id: str | None
    provider_request_id: str | None
    revised_prompt: str | None
    usage: dict[str, Any] | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    deadline_at: Timestamp | None
    assets: list[AssetOut]
    inputs: list[InputOut]
    # Only for jobs that carry a webhook URL, and only when events are asked for: see ``of``.
    webhook_url: str | None = None
    webhooks: list[DeliveryOut] | None = None
    events: list[EventOut] | None = None

    @classmethod
    def of(cls, job: Job, storage: Storage, *, events: bool = False) -> JobOut:
        """``job`` (with its assets and inputs loaded; its events and webhooks too when shown) as shown now."""
        extra: dict[str, Any] = {}
        if job.webhook_url:
            extra["webhook_url"] = job.webhook_url.split("?", 1)[0]  # a query string may carry a token
            extra["webhooks"] = [DeliveryOut.of(d) for d in job.webhooks]
        if events:
            extra["events"] = [EventOut.of(e) for e in job.events]
        return cls(
            id=job.id,
            kind=str(job.kind),
            status=str(job.status),
            model=job.model,
            provider=job.provider,
            prompt=job.prompt,
            params=job.params,
            progress=job.progress,
            error=job.error_message,
            error_code=job.error_code,
            retried_from=job.retried_from,
            derived_from=job.derived_from,
            derivation=job.derivation,
            comparison_id=job.comparison_id,
            comparison_column=job.comparison_column,
            provider_job_id=job.provider_job_id,
            provider_request_id=job.provider_request_id,
            revised_prompt=job.revised_prompt,
            usage=job.usage,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            deadline_at=job.deadline_at,
            assets=[AssetOut.of(asset, storage) for asset in job.assets],
            inputs=[InputOut.of(row, storage) for row in job.inputs],
            **extra,
        )

    def data(self) -> dict[str, Any]:
        """JSON-ready: the optional parts only where ``of`` gave them."""
        return self.model_dump(mode="json", exclude_unset=True)
