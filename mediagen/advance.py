"""Advancing one claimed job by one step: submit it, poll it, copy its result, or end it.

Every write is fenced by the claim's ``attempt``: a worker whose lease ran out and whose job was
claimed again (or canceled by a user) finds its token stale and writes nothing. A poll that finds
the task still queued or running is not written here: it comes back as an ``Observed`` for the
tick to write together with the others of its sweep in one transaction.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from .catalog import ModelSpec
from .errors import IngestError, MediagenError, ProviderError
from .ingest import ingest_outputs
from .lifecycle import fenced, finish, record
from .models import Job, JobEvent, utcnow
from .providers.base import PollResult, TaskState
from .states import JobKind, JobStatus
from .studio import Studio

log = logging.getLogger(__name__)
Step = TypeVar("Step")

MAX_BACKOFF_S = 300.0
PROGRESS_EVENT_STEP = 10  # record a progress event each time progress crosses a multiple of this


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


@dataclass(frozen=True)
class Observed:
    """A poll that found the task still queued or running, asked at ``polled_at``."""

    claim: Claim
    result: PollResult
    polled_at: datetime


def advance(studio: Studio, claim: Claim, background_copies: bool = False) -> str | Observed:
    """One step for one job; an unexpected error fails this job only, never the others."""
    return _failing_job_on_error(studio, claim, "polling", lambda: _advance(studio, claim, background_copies))


def write_observed(studio: Studio, observed: Sequence[Observed]) -> Counter[str]:
    """Write a sweep's progress in one transaction, each job still fenced by its own token.

    One transaction per poll made the workers queue for SQLite's write lock; one per batch turns
    a thousand writes a sweep into a few dozen.
    """
    outcomes: Counter[str] = Counter()
    if not observed:
        return outcomes
    try:
        with studio.db.write() as session:
            ids = [seen.claim.job_id for seen in observed]
            current = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)).with_for_update())}
            for seen in observed:
                job = current.get(seen.claim.job_id)
                if job is None or job.attempt != seen.claim.attempt:
                    outcomes["stale"] += 1
                else:
                    outcomes[_note_progress(studio, session, job, seen)] += 1
    except Exception:
        # Something in the batch would not write: write each on its own, so one bad job cannot
        # hold back the rest (or leave them leased until their leases run out).
        log.exception("batched progress write failed; writing %d jobs one by one", len(observed))
        outcomes.clear()
        for seen in observed:
            write_one = functools.partial(_progress, studio, seen)
            outcomes[_failing_job_on_error(studio, seen.claim, "recording progress", write_one)] += 1
    return outcomes


def _failing_job_on_error(studio: Studio, claim: Claim, doing: str, work: Callable[[], Step]) -> Step | str:
    """Run ``work``; an unexpected error fails this job only, never the others nor the scheduler."""
    try:
        return work()
    except Exception as exc:
        log.exception("job %s: unexpected error while %s", claim.job_id, doing)
        return _fail(studio, claim, "internal_error", f"internal error: {type(exc).__name__}: {exc}")


def _advance(studio: Studio, claim: Claim, background_copies: bool = False) -> str | Observed:
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
    if result.state in (TaskState.QUEUED, TaskState.RUNNING):
        # The answer describes the task as of when we asked: the next poll is due one interval
        # after that, not after the answer arrived, so slow answers do not stretch the cadence.
        return Observed(claim, result, now)
    return _apply(studio, claim, result, background_copies)


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


def _apply(studio: Studio, claim: Claim, result: PollResult, background_copies: bool = False) -> str:
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


def _progress(studio: Studio, seen: Observed) -> str:
    with fenced(studio.db, seen.claim.job_id, seen.claim.attempt) as (session, job):
        return "stale" if job is None else _note_progress(studio, session, job, seen)


def _note_progress(studio: Studio, session: Session, job: Job, seen: Observed) -> str:
    result, at = seen.result, seen.polled_at
    before = job.progress
    job.progress = max(before, min(99, result.progress))
    job.transient_errors = 0
    if result.state is TaskState.RUNNING and job.status == JobStatus.QUEUED:
        record(session, job, JobStatus.RUNNING, message="the provider started the task", now=at)
    elif job.progress // PROGRESS_EVENT_STEP > before // PROGRESS_EVENT_STEP:
        session.add(JobEvent(job=job, at=at, status=job.status, progress=job.progress))
    _schedule(job, at, max(studio.settings.poll_interval_s, result.retry_after_s or 0))
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
