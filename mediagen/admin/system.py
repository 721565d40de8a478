"""What the System page reports: providers, storage (with a live self-check), database, workers."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from ..db.engine import masked_url
from ..db.tables import Job, WebhookDelivery, WorkerHeartbeat, utcnow
from ..jobs.status import ACTIVE_STATUSES
from ..library.deletion import DeletionBacklog, deletion_backlog
from ..providers import PROVIDERS
from ..providers.settings import RemoteSettings
from ..studio import Studio
from ..webhooks.status import DeliveryStatus


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def storage_self_check(studio: Studio) -> list[Check]:
    """Write a probe object, read it back, fetch its URL over HTTP, delete it."""
    storage = studio.storage
    key = f"_selfcheck/{uuid.uuid4().hex}.txt"
    payload = f"mediagen self-check {utcnow().isoformat()}".encode()
    checks: list[Check] = []
    try:
        storage.put(key, io.BytesIO(payload), "text/plain")
        checks.append(Check("write", True, f"wrote {key}"))
        with storage.open(key) as handle:
            same = handle.read() == payload
        checks.append(Check("read back", same, "bytes match" if same else "bytes differ"))
        url = storage.url(key)
        try:
            answer = httpx.get(url, timeout=5.0)
            served = answer.status_code == 200 and answer.content == payload
            detail = f"HTTP {answer.status_code} from {url}"
        except httpx.HTTPError as exc:
            served, detail = False, f"{type(exc).__name__} fetching {url}: is MEDIAGEN_PUBLIC_BASE_URL right?"
        checks.append(Check("URL answers", served, detail))
    except Exception as exc:
        checks.append(Check("write/read", False, f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            storage.delete(key)
            checks.append(Check("delete", not storage.exists(key), "probe removed"))
        except Exception as exc:
            checks.append(Check("delete", False, f"{type(exc).__name__}: {exc}"))
    return checks


@dataclass(frozen=True)
class WorkerStatus:
    worker_id: str
    last_tick_at: datetime | None
    ticks: int
    last_error: str | None
    stale: bool
    stopped: bool


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    label: str
    configured: bool
    models: list[str]
    switch_on: str | None  # the variable that turns the provider on, when it takes one


@dataclass
class SystemReport:
    providers: list[ProviderStatus] = field(default_factory=list)
    storage: str = ""
    public_base_url: str = ""
    database: str = ""
    workers: list[WorkerStatus] = field(default_factory=list)
    active_jobs: dict[str, int] = field(default_factory=dict)
    webhooks_enabled: bool = False
    webhooks: dict[str, int] = field(default_factory=dict)  # deliveries by status
    oldest_pending_webhook: datetime | None = None
    deletions: DeletionBacklog | None = None  # objects of deleted jobs still stored


def stale_after(studio: Studio) -> timedelta:
    return timedelta(seconds=max(30.0, studio.settings.poll_interval_s * 5))


def system_report(studio: Studio) -> SystemReport:
    report = SystemReport(
        storage=studio.storage.name,
        public_base_url=studio.settings.public_base_url
        or ("presigned URLs" if studio.settings.storage == "s3" else studio.serving.media_base()),
        database=masked_url(studio.db.url),
    )
    for name, entry in PROVIDERS.items():
        own = studio.provider_settings[name]
        report.providers.append(
            ProviderStatus(
                name=name,
                label=entry.label,
                configured=own.configured,
                models=[m.name for m in entry.models(own)],
                switch_on=entry.settings.key_variable() if issubclass(entry.settings, RemoteSettings) else None,
            )
        )
    now, limit = utcnow(), stale_after(studio)
    with studio.db.read() as session:
        beats = session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_tick_at.desc()).limit(20)).all()
        counts = session.execute(
            select(Job.status, func.count())
            .where(Job.status.in_([s.value for s in ACTIVE_STATUSES]))
            .group_by(Job.status)
        ).all()
        deliveries = session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        ).all()
        report.oldest_pending_webhook = session.scalar(
            select(func.min(WebhookDelivery.created_at)).where(WebhookDelivery.status == DeliveryStatus.PENDING)
        )
    for beat in beats:
        stopped = beat.stopped_at is not None
        stale = not stopped and (beat.last_tick_at is None or now - beat.last_tick_at > limit)
        report.workers.append(
            WorkerStatus(beat.worker_id, beat.last_tick_at, beat.ticks, beat.last_error, stale, stopped)
        )
    report.active_jobs = {s.value: 0 for s in ACTIVE_STATUSES} | {str(s): int(n) for s, n in counts}
    report.webhooks_enabled = studio.settings.webhook_secret is not None
    report.webhooks = dict.fromkeys((s.value for s in DeliveryStatus), 0) | {str(s): int(n) for s, n in deliveries}
    report.deletions = deletion_backlog(studio)
    return report
