"""One idempotent tick: claim due jobs, advance each with its provider, write results fenced.

A claim bumps the job's ``attempt`` and sets a lease in one short write transaction; all network
I/O (submit, poll, download, upload) happens outside any transaction; every write afterwards
holds only if ``attempt`` is still the one claimed. A worker that dies mid-poll simply lets its
lease run out and the next tick picks the job up; a stale worker's late result is dropped.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from .catalog import ModelSpec
from .errors import IngestError, MediagenError, ProviderError
from .ingest import ingest_outputs, sweep_spool
from .lifecycle import fenced, finish, record
from .models import Job, JobEvent, utcnow
from .providers.base import PollResult, TaskState
from .states import ACTIVE_STATUSES, JobKind, JobStatus
from .studio import Studio

CLAIM_BATCH_PER_THREAD = 4  # claims per thread per round: few transactions, leases not held long
TICK_BUDGET_INTERVALS = 5
log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
PROGRESS_EVENT_STEP = 10  # record a progress event each time progress crosses a multiple of this


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Claim:
    """What a worker saw when it claimed a job; ``attempt`` is its fencing token."""

    job_id: str
    attempt: int
    kind: JobKind
    status: JobStatus
    provider: str
    model: str
    prompt: str
    params: dict[str, Any]
    provider_job_id: str | None
    submitted_at: datetime | None
    created_at: datetime
    deadline_at: datetime | None
    progress: int
    transient_errors: int


def tick(
    studio: Studio, *, worker_id: str | None = None, now: datetime | None = None, background_copies: bool = False
) -> Counter[str]:
    """Advance every due job once. Returns what happened, e.g. ``{"running": 2, "succeeded": 1}``.

    Claims go in batches of ``CLAIM_BATCH_PER_THREAD x poll_concurrency`` and are polled
    ``poll_concurrency`` at a time; the tick keeps claiming until nothing is due or its time
    budget (``TICK_BUDGET_INTERVALS`` poll intervals) is spent, so one tick sweeps a large backlog
    instead of nibbling at it every interval. With an explicit ``now`` (tests) it runs one batch.

    With ``background_copies`` (the scheduler), finished results are copied into storage in the
    studio's download pool and the tick moves on; otherwise (CLI, tests) the tick copies them
    itself and returns only when every claimed job has moved.
    """
    worker_id = worker_id or default_worker_id()
    outcomes: Counter[str] = Counter()
    claims = claim_due(studio, worker_id, now or utcnow())
    if not claims:
        return outcomes
    # A claimed job may be one whose worker was killed mid-download; its spool file is ours to clear.
    if swept := sweep_spool(studio.settings.spool_dir, studio.settings.lease_s):
        outcomes["spool_files_removed"] += swept
    budget_ends = time.monotonic() + studio.settings.poll_interval_s * TICK_BUDGET_INTERVALS
    with ThreadPoolExecutor(max_workers=studio.settings.poll_concurrency) as pool:
        while claims:
            for outcome in pool.map(lambda claim: _advance_safely(studio, claim, background_copies), claims):
                outcomes[outcome] += 1
            if now is not None or len(claims) < _claim_batch(studio) or time.monotonic() > budget_ends:
                break
            claims = claim_due(studio, worker_id, utcnow())
    return outcomes


def _claim_batch(studio: Studio) -> int:
    return studio.settings.poll_concurrency * CLAIM_BATCH_PER_THREAD


def claim_due(studio: Studio, worker_id: str, now: datetime) -> list[Claim]:
    due = or_(
        and_(Job.kind == JobKind.VIDEO, Job.next_poll_at <= now),
        Job.deadline_at <= now,  # images too: a process that died mid-generation leaves them running
    )
    lease_free = or_(Job.lease_until.is_(None), Job.lease_until < now)
    query = (
        select(Job)
        .where(Job.status.in_([s.value for s in ACTIVE_STATUSES]), due, lease_free)
        .order_by(Job.next_poll_at)
        .limit(_claim_batch(studio))
        .with_for_update(skip_locked=True)
    )
    claims = []
    with studio.db.write() as session:
        for job in session.scalars(query):
            job.attempt += 1
            job.lease_owner = worker_id
            job.lease_until = now + timedelta(seconds=studio.settings.lease_s)
            claims.append(
                Claim(
                    job.id,
                    job.attempt,
                    JobKind(job.kind),
                    JobStatus(job.status),
                    job.provider,
                    job.model,
                    job.prompt,
                    dict(job.params),
                    job.provider_job_id,
                    job.submitted_at,
                    job.created_at,
                    job.deadline_at,
                    job.progress,
                    job.transient_errors,
                )
            )
    return claims


def _advance_safely(studio: Studio, claim: Claim, background_copies: bool = False) -> str:
    return _failing_job_on_error(studio, claim, "polling", lambda: _advance(studio, claim, background_copies))


def _failing_job_on_error(studio: Studio, claim: Claim, doing: str, work: Callable[[], str]) -> str:
    """Run ``work``; an unexpected error fails this job only, never the others nor the scheduler."""
    try:
        return work()
    except Exception as exc:
        log.exception("job %s: unexpected error while %s", claim.job_id, doing)
        return _fail(studio, claim, "internal_error", f"internal error: {type(exc).__name__}: {exc}")


def _advance(studio: Studio, claim: Claim, background_copies: bool = False) -> str:
    now = utcnow()
    if claim.deadline_at is not None and now >= claim.deadline_at:
        return _time_out(studio, claim, now)
    if claim.kind is JobKind.IMAGE:
        return _release(studio, claim)  # still generating in its own process, within its deadline
    if claim.model not in studio.catalog:
        return _fail(studio, claim, "model_unavailable", f"model {claim.model} is no longer configured here")
    spec = studio.catalog.get(claim.model)
    if claim.provider_job_id is None:
        return _submit(studio, claim, spec)
    try:
        result = studio.provider(claim.provider).poll(spec, claim.provider_job_id)
    except ProviderError as exc:
        return _after_provider_error(studio, claim, exc)
    return _apply(studio, claim, spec, result, background_copies)


def _submit(studio: Studio, claim: Claim, spec: ModelSpec) -> str:
    if claim.submitted_at is not None:
        # We began a create call before and never learned its outcome. Sending it again could
        # pay twice, so the user decides (Retry).
        return _fail(
            studio,
            claim,
            "submit_outcome_unknown",
            "the provider may or may not have accepted this task (the worker stopped while "
            "submitting it); use Retry to send it again",
        )
    with fenced(studio.db, claim.job_id, claim.attempt) as (_, job):
        if job is None:
            return "stale"
        job.submitted_at = utcnow()
    provider = studio.provider(claim.provider)
    try:
        submitted = provider.submit(spec, claim.prompt, claim.params)
    except ProviderError as exc:
        if exc.retryable:  # refused before acceptance (e.g. rate limited): safe to send again
            with fenced(studio.db, claim.job_id, claim.attempt) as (_, job):
                if job is not None:
                    job.submitted_at = None
        return _after_provider_error(studio, claim, exc)
    with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
        if job is not None:
            job.provider_job_id = submitted.task_id
            job.provider_request_id = submitted.request_id
            job.transient_errors = 0
            _schedule(job, utcnow(), studio.settings.poll_interval_s)
            note = f"submitted to {claim.provider} as task {submitted.task_id}"
            session.add(JobEvent(job=job, status=job.status, progress=job.progress, message=note))
    if job is None:  # canceled while we were submitting: do not leave the task running there
        _cancel_quietly(studio, claim, spec, submitted.task_id)
        return "stale"
    return "submitted"


def _apply(studio: Studio, claim: Claim, spec: ModelSpec, result: PollResult, background_copies: bool = False) -> str:
    if result.state in (TaskState.QUEUED, TaskState.RUNNING):
        return _progress(studio, claim, result)
    if result.state is TaskState.FAILED:
        return _fail(
            studio,
            claim,
            result.error_code or "provider_failed",
            result.error_message or "the provider reported a failure without a reason",
        )
    if result.state is TaskState.CANCELED:
        finish(
            studio.db,
            studio.storage,
            claim.job_id,
            claim.attempt,
            JobStatus.CANCELED,
            message="canceled at the provider",
            error_code="canceled",
        )
        return JobStatus.CANCELED.value
    if background_copies:
        studio.start_download(lambda: _store_safely(studio, claim, result))
        return "copying"
    return _store(studio, claim, result)


def _store_safely(studio: Studio, claim: Claim, result: PollResult) -> str:
    outcome = _failing_job_on_error(studio, claim, "copying the result", lambda: _store(studio, claim, result))
    log.info("poller copy: %s", {outcome: 1})  # the tick that handed it over logged "copying"
    return outcome


def _store(studio: Studio, claim: Claim, result: PollResult) -> str:
    """Copy a finished task's outputs into storage and end the job (fenced: a stale copy is dropped)."""
    try:
        stored = ingest_outputs(
            studio.storage,
            result.outputs,
            kind=claim.kind,
            job_id=claim.job_id,
            created_at=claim.created_at,
            limits=studio.download_limits,
        )
    except ProviderError as exc:
        return _after_provider_error(studio, claim, exc)
    except IngestError as exc:
        return _fail(studio, claim, exc.code, str(exc))
    if not finish(
        studio.db,
        studio.storage,
        claim.job_id,
        claim.attempt,
        JobStatus.SUCCEEDED,
        stored=stored,
        usage=result.usage or None,
    ):
        return "stale"
    _discard(studio, claim)
    return JobStatus.SUCCEEDED.value


def _progress(studio: Studio, claim: Claim, result: PollResult) -> str:
    now = utcnow()
    with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
        if job is None:
            return "stale"
        before = job.progress
        job.progress = max(before, min(99, result.progress))
        job.transient_errors = 0
        if result.state is TaskState.RUNNING and job.status == JobStatus.QUEUED:
            record(session, job, JobStatus.RUNNING, message="the provider started the task", now=now)
        elif job.progress // PROGRESS_EVENT_STEP > before // PROGRESS_EVENT_STEP:
            session.add(JobEvent(job=job, at=now, status=job.status, progress=job.progress))
        _schedule(job, now, max(studio.settings.poll_interval_s, result.retry_after_s or 0))
        return str(job.status)


def _after_provider_error(studio: Studio, claim: Claim, exc: ProviderError) -> str:
    if not exc.retryable:
        return _fail(studio, claim, exc.code, str(exc))
    now = utcnow()
    delay = exc.retry_after_s or min(MAX_BACKOFF_S, studio.settings.poll_interval_s * 2 ** (claim.transient_errors + 1))
    delay *= random.uniform(0.8, 1.2)  # jitter, so many jobs do not retry in lockstep
    with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
        if job is None:
            return "stale"
        job.transient_errors += 1
        _schedule(job, now, delay)
        session.add(
            JobEvent(
                job=job,
                at=now,
                status=job.status,
                progress=job.progress,
                message=f"{exc} — trying again in {delay:.0f} s",
            )
        )
    return "backoff"


def _time_out(studio: Studio, claim: Claim, now: datetime) -> str:
    ran = now - claim.created_at
    minutes, seconds = divmod(int(ran.total_seconds()), 60)
    allowed = int((claim.deadline_at - claim.created_at).total_seconds()) if claim.deadline_at else 0
    message = f"ran for {minutes}m {seconds:02d}s, past its {allowed} s deadline"
    if claim.provider_job_id and claim.model in studio.catalog:
        _cancel_quietly(studio, claim, studio.catalog.get(claim.model), claim.provider_job_id)
    finish(
        studio.db,
        studio.storage,
        claim.job_id,
        claim.attempt,
        JobStatus.TIMED_OUT,
        message=message,
        error_code="timed_out",
    )
    return JobStatus.TIMED_OUT.value


def _fail(studio: Studio, claim: Claim, code: str, message: str) -> str:
    applied = finish(
        studio.db,
        studio.storage,
        claim.job_id,
        claim.attempt,
        JobStatus.FAILED,
        message=message,
        error_code=code,
    )
    if applied:
        _discard(studio, claim)
    return JobStatus.FAILED.value if applied else "stale"


def _discard(studio: Studio, claim: Claim) -> None:
    """Let a provider that keeps finished tasks around (the local one) forget this one."""
    discard = getattr(studio.provider(claim.provider), "discard", None)
    if discard is not None and claim.provider_job_id:
        discard(claim.provider_job_id)


def _release(studio: Studio, claim: Claim) -> str:
    with fenced(studio.db, claim.job_id, claim.attempt) as (_, job):
        if job is not None:
            job.lease_owner = job.lease_until = None
    return "released"


def _schedule(job: Job, now: datetime, delay_s: float) -> None:
    job.next_poll_at = now + timedelta(seconds=delay_s)
    job.lease_owner = job.lease_until = None


def _cancel_quietly(studio: Studio, claim: Claim, spec: ModelSpec, task_id: str) -> None:
    try:
        studio.provider(claim.provider).cancel(spec, task_id)
    except MediagenError as exc:
        log.warning("job %s: provider cancel failed: %s", claim.job_id, exc)
