"""The tables, as SQLAlchemy 2.0 typed classes. Statuses and kinds are str enums stored as text.

(Called tables, not models: "model" means an AI model everywhere else in the studio.)"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ..jobs.status import JobKind, JobStatus
from ..webhooks.status import DeliveryStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    # 64 random bits: short enough to type in the CLI, far from colliding at our scale.
    return secrets.token_hex(8)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps no zone, so we restore it on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Leased:
    """A row one worker at a time works on: it holds the lease until ``lease_until`` and then it
    is anyone's again, so a dead worker's work is taken over (``db.leases`` claims them all)."""

    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]


class Job(Leased, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "next_poll_at"),
        Index("ix_jobs_created", "created_at", "id"),
        # One per gallery filter, each ending in the page order, so a filtered page is a range scan.
        Index("ix_jobs_kind_created", "kind", "created_at", "id"),
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_model_created", "model", "created_at", "id"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        # The latest message of each failure reason, for the admin metrics.
        Index("ix_jobs_error_code_created", "error_code", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[JobKind] = mapped_column(String(16))
    status: Mapped[JobStatus] = mapped_column(String(16), default=JobStatus.QUEUED)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner: Mapped[str] = mapped_column(String(255), default="local")
    provider_job_id: Mapped[str | None] = mapped_column(String(255))
    # Provenance: the provider's request id (for support tickets) and the prompt it really used.
    provider_request_id: Mapped[str | None] = mapped_column(String(255))
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # Fencing token: bumped on every claim and every user action, so a stale worker's
    # conditional update (WHERE attempt = :seen) matches nothing.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    # Set before a create call is sent; with no provider_job_id after it, the outcome is unknown.
    submitted_at: Mapped[datetime | None]
    # Consecutive transient failures (5xx, network, rate limit) while polling; sets the backoff.
    transient_errors: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    retried_from: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    # Lineage: the job this one was made from (its image as a first frame, an edit or variation of
    # it, or "run again with changes"), and how (``jobs.lineage.Derivation``). The reverse ("that
    # image led to these") is a lookup on the index.
    derived_from: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    derivation: Mapped[str | None] = mapped_column(String(16))
    # A column of a comparison (one prompt on several models side by side); a re-run column keeps
    # its number, and the newest job of a column is the one shown.
    comparison_id: Mapped[str | None] = mapped_column(ForeignKey("comparisons.id"), index=True)
    comparison_column: Mapped[int | None] = mapped_column(Integer)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    usage: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    assets: Mapped[list[Asset]] = relationship(
        back_populates="job", order_by="Asset.index", cascade="all, delete-orphan"
    )
    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )
    webhooks: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="job", order_by="WebhookDelivery.created_at", cascade="all, delete-orphan"
    )
    # The images this job started from (reference images), kept with it, apart from its results.
    inputs: Mapped[list[JobInput]] = relationship(
        back_populates="job", order_by="JobInput.index", cascade="all, delete-orphan"
    )


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_assets_job_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    storage: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    thumbnail_key: Mapped[str | None] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="assets")


class JobInput(Base):
    """An image a job started from (a first frame, the image to edit, its mask), checked and
    copied into our storage under the job's own key prefix before the job was created, so it
    lives and is deleted with the job whatever happens to where it came from."""

    __tablename__ = "job_inputs"
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_job_inputs_job_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # ``catalog.ImageInput.role``: image, mask
    storage: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Where it came from, for people: "job 1a2b…", "upload cat.png", "https://…" (no query string).
    origin: Mapped[str] = mapped_column(String(512))
    # The job whose result it is, when it is one of ours (lineage; kept when that job is deleted).
    source_job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="inputs")


class Comparison(Base):
    """One prompt on several models or settings side by side: its columns are jobs
    (``Job.comparison_id``), made together through the one engine and shown together."""

    __tablename__ = "comparisons"
    __table_args__ = (Index("ix_comparisons_owner_created", "owner", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[JobKind] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(255))
    # What each column asked for, in order: [{"model": ..., "params": {...}}, ...].
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The starred column's job. No foreign key (jobs already refer to comparisons): a winner since
    # deleted simply shows none.
    winner_job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="events")


class WorkerHeartbeat(Base):
    """One row per worker: when it last ticked and how that went."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_tick_at: Mapped[datetime | None]
    ticks: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[dict[str, Any] | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    stopped_at: Mapped[datetime | None]


def new_webhook_id() -> str:
    return "msg_" + secrets.token_hex(12)


class WebhookDelivery(Leased, Base):
    """The outbox: written in the transaction that ends a job, delivered later by a worker.
    Its id is the `webhook-id` header of every attempt, so receivers can drop repeats."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhooks_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_webhook_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048), index=True)
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="webhooks")
    tries: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.id", cascade="all, delete-orphan"
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="tries")


class Favourite(Base):
    """A user's star on an asset."""

    __tablename__ = "favourites"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Collection(Base):
    """A named group of assets, owned by the user who made it."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_collections_owner_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionAsset(Base):
    __tablename__ = "collection_assets"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class StorageDeletion(Leased, Base):
    """The outbox of stored objects to remove: written in the transaction that deletes their rows,
    emptied once the objects are gone, retried by the workers' housekeeping until then."""

    __tablename__ = "storage_deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class HousekeepingTask(Leased, Base):
    """A periodic chore of the workers (retention, the deletion drain, the spool sweep): whoever
    leases the row runs it, so with any number of workers each chore runs once per period."""

    __tablename__ = "housekeeping"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_run_at: Mapped[datetime | None]
    last_outcome: Mapped[dict[str, Any] | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """A key a program calls the HTTP API with, acting as its user. Only a hash of the secret is
    kept: the secret is shown once, when the key is made."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotentRequest(Base):
    """The first answer to a creating request sent with an ``Idempotency-Key``, replayed when the
    same user sends the same key again (within a day), so a retried call creates nothing twice.
    ``status_code`` is empty while the first request is still being answered."""

    __tablename__ = "idempotent_requests"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class _DailyLine:
    """The key both roll-up tables start with: the day a job was created and who made it how."""

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)


class JobStat(_DailyLine, Base):
    """Daily roll-up of finished jobs (by the day they were created), updated in the transaction
    that ends each job, so metrics over any period read a few rows per day instead of every job.
    Deleting a job leaves its line here: what was generated and spent stays in the metrics."""

    __tablename__ = "job_stats"

    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    error_code: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" when none
    # What the price depends on besides the model: "size/quality" of images, resolution of video.
    # Costs are computed when read, so a price table set or changed later applies to all history.
    variant: Mapped[str] = mapped_column(String(64), primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    seconds_sum: Mapped[float] = mapped_column(Float, default=0.0)  # time to result (created → finished)
    usage_units: Mapped[float] = mapped_column(Float, default=0.0)  # images, or seconds of video


class JobDuration(_DailyLine, Base):
    """Times to result of succeeded jobs, counted per log-spaced bucket (``admin.rollup.BUCKET_BOUNDS``)
    and day: percentiles over any period and grouping are a GROUP BY over a few rows."""

    __tablename__ = "job_durations"

    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
