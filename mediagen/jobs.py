"""Use cases: generate an image, submit a video, cancel, retry, and read jobs back.

The UI and the CLI call these and nothing lower. Invalid input raises ``InvalidInput`` before
any row is written; a generation that fails is recorded as a failed job with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .access import User, require_change
from .catalog import ModelSpec, validate_params, validate_prompt
from .errors import IngestError, InvalidInput, MediagenError, NotFound, ProviderError
from .ingest import ingest_outputs
from .lifecycle import clear_leftovers, finish, record
from .models import Job, JobEvent, utcnow
from .states import ACTIVE_STATUSES, RETRYABLE_STATUSES, JobKind, JobStatus
from .studio import Studio
from .webhooks import check_webhook_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A validated request: what a job will be created from."""

    kind: JobKind
    model: ModelSpec
    prompt: str
    params: dict[str, Any]
    webhook_url: str | None = None


def validate(
    studio: Studio,
    kind: JobKind,
    prompt: Any,
    model: str | None,
    params: dict[str, Any] | None,
    webhook_url: str | None = None,
) -> Request:
    spec = studio.model(model, kind)
    limit = min(spec.max_prompt_chars or studio.settings.max_prompt_chars, studio.settings.max_prompt_chars)
    text = validate_prompt(prompt, limit)
    cleaned = validate_params(spec, {k: v for k, v in (params or {}).items() if v is not None})
    return Request(kind, spec, text, cleaned, check_webhook_url(studio, webhook_url))


def _create(studio: Studio, request: Request, owner: str, retried_from: str | None = None) -> Job:
    now = utcnow()
    with studio.db.write() as session:
        job = Job(
            kind=request.kind,
            status=JobStatus.QUEUED,
            provider=request.model.provider,
            model=request.model.name,
            prompt=request.prompt,
            params=request.params,
            owner=owner,
            retried_from=retried_from,
            webhook_url=request.webhook_url,
            created_at=now,
            deadline_at=now + timedelta(seconds=studio.settings.deadline_for(request.kind, request.model.name)),
            next_poll_at=now if request.kind is JobKind.VIDEO else None,
        )
        session.add(job)
        session.flush()
        message = f"retry of {retried_from}" if retried_from else None
        session.add(JobEvent(job=job, at=now, status=JobStatus.QUEUED.value, progress=0, message=message))
    return job


def generate_image(
    studio: Studio,
    prompt: Any,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "local",
) -> Job:
    """Generate synchronously: the returned job has succeeded (with assets) or failed (with why)."""
    request = validate(studio, JobKind.IMAGE, prompt, model, params)
    return _run_image(studio, _create(studio, request, owner), request)


def _run_image(studio: Studio, job: Job, request: Request) -> Job:
    with studio.db.write() as session:
        row = session.get(Job, job.id)
        assert row is not None
        record(session, row, JobStatus.RUNNING)
        attempt = row.attempt
    try:
        result = studio.provider(request.model.provider).generate(request.model, request.prompt, request.params)
        stored = ingest_outputs(
            studio.storage,
            result.outputs,
            kind=JobKind.IMAGE,
            job_id=job.id,
            created_at=job.created_at,
            limits=studio.download_limits,
        )
        finish(
            studio.db,
            studio.storage,
            job.id,
            attempt,
            JobStatus.SUCCEEDED,
            stored=stored,
            usage=result.usage,
            revised_prompt=result.revised_prompt,
            request_id=result.request_id,
        )
    except (ProviderError, IngestError) as exc:
        finish(
            studio.db,
            studio.storage,
            job.id,
            attempt,
            JobStatus.FAILED,
            message=str(exc),
            error_code=exc.code,
        )
    except Exception as exc:
        log.exception("image job %s failed unexpectedly", job.id)
        finish(
            studio.db,
            studio.storage,
            job.id,
            attempt,
            JobStatus.FAILED,
            message=f"internal error: {type(exc).__name__}: {exc}",
            error_code="internal_error",
        )
    return get_job(studio, job.id)


def submit_video(
    studio: Studio,
    prompt: Any,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "local",
    webhook_url: str | None = None,
) -> Job:
    """Queue a video job and return at once; the poller submits it and follows it to the end.
    With ``webhook_url``, the job's final state is POSTed there, signed."""
    request = validate(studio, JobKind.VIDEO, prompt, model, params, webhook_url)
    return get_job(studio, _create(studio, request, owner).id)


def cancel_job(studio: Studio, job_id: str, *, actor: User | None = None) -> Job:
    """Cancel a queued or running job (only its owner or an admin, when ``actor`` is given; the
    CLI and the scheduler act for the studio). Bumping ``attempt`` fences off any worker mid-poll,
    so a cancel racing a completion ends in exactly one final state."""
    with studio.db.write() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        if actor is not None:
            require_change(actor, job.owner, "cancel")
        if JobStatus(job.status) not in ACTIVE_STATUSES:
            raise InvalidInput(
                "id", f"job {job_id} has already {job.status}; only queued or running jobs can be canceled"
            )
        job.attempt += 1
        job.error_code, job.error_message = "canceled", "canceled by the user"
        record(session, job, JobStatus.CANCELED, message="canceled by the user")
        provider_name, provider_job_id, model_name = job.provider, job.provider_job_id, job.model
        kind, created_at = job.kind, job.created_at
    clear_leftovers(studio.storage, kind, created_at, job_id)
    if provider_job_id:
        _cancel_at_provider(studio, job_id, provider_name, model_name, provider_job_id)
    return get_job(studio, job_id)


def _cancel_at_provider(studio: Studio, job_id: str, provider_name: str, model_name: str, task_id: str) -> None:
    try:
        spec = studio.catalog.get(model_name)
        done = studio.provider(provider_name).cancel(spec, task_id)
        note = "canceled at the provider" if done else "the provider cannot cancel tasks; it may still finish there"
    except MediagenError as exc:
        note = f"the provider did not confirm the cancel: {exc}"
    with studio.db.write() as session:
        job = session.get(Job, job_id)
        if job is not None:
            session.add(JobEvent(job=job, status=job.status, progress=job.progress, message=note))


def retry_job(studio: Studio, job_id: str, *, owner: str | None = None, actor: User | None = None) -> Job:
    """A new job with the same parameters, linked to the old one (which keeps its outcome); with
    an ``actor``, only the old job's owner or an admin may, and the new job is theirs."""
    old = get_job(studio, job_id)
    if actor is not None:
        require_change(actor, old.owner, "retry")
        owner = actor.email
    if JobStatus(old.status) not in RETRYABLE_STATUSES:
        raise InvalidInput("id", f"job {job_id} is {old.status}", "failed, canceled or timed_out jobs")
    request = validate(studio, JobKind(old.kind), old.prompt, old.model, old.params, old.webhook_url)
    job = _create(studio, request, owner or old.owner, retried_from=old.id)
    if request.kind is JobKind.IMAGE:
        return _run_image(studio, job, request)
    return get_job(studio, job.id)


def get_job(studio: Studio, job_id: str) -> Job:
    with studio.db.read() as session:
        job = session.scalars(
            select(Job)
            .where(Job.id == job_id)
            .options(selectinload(Job.assets), selectinload(Job.events), selectinload(Job.webhooks))
        ).one_or_none()
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job


def get_jobs(studio: Studio, job_ids: Sequence[str]) -> list[Job]:
    """The jobs (with their assets) of those ids that exist, newest first."""
    query = select(Job).where(Job.id.in_(list(job_ids))).options(selectinload(Job.assets))
    with studio.db.read() as session:
        return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc())))


def list_jobs(
    studio: Studio,
    *,
    status: JobStatus | str | None = None,
    kind: JobKind | str | None = None,
    owner: str | None = None,
    limit: int = 50,
) -> list[Job]:
    if status is not None and status not in {s.value for s in JobStatus}:
        raise InvalidInput("status", f"{status!r} is not a status", [s.value for s in JobStatus])
    if kind is not None and kind not in {k.value for k in JobKind}:
        raise InvalidInput("kind", f"{kind!r} is not a kind", [k.value for k in JobKind])
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit", f"{limit} is out of range", "1–1000")
    query = select(Job).options(selectinload(Job.assets)).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if owner:
        query = query.where(Job.owner == owner)
    with studio.db.read() as session:
        return list(session.scalars(query))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_to_dict(studio: Studio, job: Job, *, events: bool = False) -> dict[str, Any]:
    """The job as plain JSON-ready data, with absolute asset URLs made now (never stored)."""
    data: dict[str, Any] = {
        "id": job.id,
        "kind": str(job.kind),
        "status": str(job.status),
        "model": job.model,
        "provider": job.provider,
        "prompt": job.prompt,
        "params": job.params,
        "progress": job.progress,
        "error": job.error_message,
        "error_code": job.error_code,
        "retried_from": job.retried_from,
        "provider_job_id": job.provider_job_id,
        "provider_request_id": job.provider_request_id,
        "revised_prompt": job.revised_prompt,
        "usage": job.usage,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "deadline_at": _iso(job.deadline_at),
        "assets": [
            {
                "url": studio.storage.url(asset.key),
                "thumbnail_url": studio.storage.url(asset.thumbnail_key) if asset.thumbnail_key else None,
                "content_type": asset.content_type,
                "bytes": asset.bytes,
                "sha256": asset.sha256,
                "width": asset.width,
                "height": asset.height,
                "duration_s": asset.duration_s,
            }
            for asset in job.assets
        ],
    }
    if job.webhook_url:
        data["webhook_url"] = job.webhook_url.split("?", 1)[0]  # a query string may carry a token
        data["webhooks"] = [
            {
                "id": d.id,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_error": d.last_error,
                "next_attempt_at": _iso(d.next_attempt_at),
                "delivered_at": _iso(d.delivered_at),
            }
            for d in job.webhooks
        ]
    if events:
        data["events"] = [
            {"at": _iso(e.at), "status": e.status, "progress": e.progress, "message": e.message} for e in job.events
        ]
    return data


def retry_chain(studio: Studio, job_id: str) -> list[Job]:
    """The job's ancestors and descendants through ``retried_from``, oldest first."""
    with studio.db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        chain = [job]
        while chain[0].retried_from and len(chain) < 100:
            parent = session.get(Job, chain[0].retried_from)
            if parent is None:
                break
            chain.insert(0, parent)
        while len(chain) < 100:
            child = session.scalars(
                select(Job).where(Job.retried_from == chain[-1].id).order_by(Job.created_at)
            ).first()
            if child is None:
                break
            chain.append(child)
        return chain
