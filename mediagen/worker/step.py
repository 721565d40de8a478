"""One step of one claimed job, image or video: the one path every generation takes.

    claimed ──► submit ──► (video) poll … poll ──► store ──► finished
                  └──────► (image) generate ──────┘

A job's first step sends it to its provider: an image is generated there and then (its caller
waits, in the studio's generation pool), a video becomes a provider task that later steps poll.
A finished result is stored (``media.ingest``) and the job ended (``jobs.transitions.finish``) the
same way for both. Every write is fenced by the claim's ``attempt``: a worker whose lease ran out
and whose job was claimed again (or canceled by a user) finds its token stale and writes nothing.
A poll that finds the task still queued or running is not written here: it comes back as an
``Observed`` for the sweep to write together with the others in one transaction. A database
out of reach fails no job: the step is ``DEFERRED`` and the job taken up again once it answers.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from ..catalog import ModelSpec
from ..db.leases import release
from ..db.tables import Job, JobEvent, JobInput, utcnow
from ..errors import DatabaseUnavailable, IngestError, MediagenError, ProviderError
from ..jobs.status import JobKind, JobStatus
from ..jobs.transitions import fenced, finish, record
from ..media.ingest import ingest_outputs
from ..providers.base import MediaSource, PollResult, Reference, TaskState
from ..studio import Studio

if TYPE_CHECKING:
    from .downloads import Downloads

log = logging.getLogger(__name__)
Result = TypeVar("Result")

MAX_BACKOFF_S = 300.0
DATABASE_RETRY_S = 1.0  # longest wait between writes of a submit's answer while the database is away
PROGRESS_EVENT_STEP = 10  # record a progress event each time progress crosses a multiple of this


class StepOutcome(StrEnum):
    """How one step ended, as workers count and log it."""

    SUBMITTED = "submitted"  # the provider accepted the task; polls follow
    QUEUED = "queued"  # polled: still waiting at the provider
    RUNNING = "running"  # polled: running at the provider
    BACKOFF = "backoff"  # a transient error; the next step is scheduled later
    COPYING = "copying"  # finished at the provider; its result is being copied in the background
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    STALE = "stale"  # someone else moved the job meanwhile (newer claim, user action): nothing written
    # The database did not answer: nothing written; the job is taken up again once it does.
    DEFERRED = "deferred"


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

    @classmethod
    def of(cls, job: Job) -> Claim:
        return cls(
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

    @property
    def one_step(self) -> bool:
        """Images are made in a single step while their caller waits: nothing can be retried later."""
        return self.kind is JobKind.IMAGE


@dataclass(frozen=True)
class Observed:
    """A poll that found the task still queued or running, asked at ``polled_at``."""

    claim: Claim
    result: PollResult
    polled_at: datetime


def advance(studio: Studio, claim: Claim, copies: Downloads | None = None) -> StepOutcome | Observed:
    """One step for one job; an unexpected error fails this job only, never the others. With
    ``copies``, a finished result is copied in that pool and the step returns at once."""
    return _failing_job_on_error(studio, claim, "advancing it", lambda: _advance(studio, claim, copies))


def write_observed(studio: Studio, observed: Sequence[Observed]) -> Counter[StepOutcome]:
    """Write a sweep's progress in one transaction, each job still fenced by its own token.

    One transaction per poll made the workers queue for SQLite's write lock; one per batch turns
    a thousand writes a sweep into a few dozen.
    """
    outcomes: Counter[StepOutcome] = Counter()
    if not observed:
        return outcomes
    try:
        with studio.db.write() as session:
            ids = [seen.claim.job_id for seen in observed]
            current = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)).with_for_update())}
            for seen in observed:
                job = current.get(seen.claim.job_id)
                if job is None or job.attempt != seen.claim.attempt:
                    outcomes[StepOutcome.STALE] += 1
                else:
                    outcomes[_note_progress(studio, session, job, seen)] += 1
    except DatabaseUnavailable:
        return Counter({StepOutcome.DEFERRED: len(observed)})  # nothing to single out: none would write
    except Exception:
        # Something in the batch would not write: write each on its own, so one bad job cannot
        # hold back the rest (or leave them leased until their leases run out).
        log.exception("batched progress write failed; writing %d jobs one by one", len(observed))
        outcomes.clear()
        for seen in observed:
            write_one = functools.partial(_progress, studio, seen)
            outcomes[_failing_job_on_error(studio, seen.claim, "recording progress", write_one)] += 1
    return outcomes


def store_in_background(studio: Studio, claim: Claim, result: PollResult) -> StepOutcome:
    """``_store`` for the download pool: an unexpected error fails this job, and the outcome is
    logged (the sweep that handed the copy over counted it as copying)."""
    outcome = _failing_job_on_error(
        studio, claim, "copying the result", lambda: _store(studio, claim, result.outputs, usage=result.usage)
    )
    log.info("worker copy: %s", {str(outcome): 1})
    return outcome


def _failing_job_on_error(studio: Studio, claim: Claim, doing: str, work: Callable[[], Result]) -> Result | StepOutcome:
    """Run ``work``; an unexpected error fails this job only, never the others nor the worker.

    The database out of reach is no fault of the job's: failing it then would end it for good as
    soon as the server answered again (or fail too). Its work is deferred instead: the worker hands
    its lease back once the database answers (or the lease runs out) and the job is taken up
    again. The engine logs the outage, once.
    """
    try:
        return work()
    except DatabaseUnavailable:
        return StepOutcome.DEFERRED
    except Exception as exc:
        log.exception("job %s: unexpected error while %s", claim.job_id, doing)
        return _fail(studio, claim, "internal_error", f"internal error: {type(exc).__name__}: {exc}")


def _advance(studio: Studio, claim: Claim, copies: Downloads | None) -> StepOutcome | Observed:
    now = utcnow()
    if claim.deadline_at is not None and now >= claim.deadline_at:
        return _time_out(studio, claim, now)
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
    return _apply(studio, claim, result, copies)


def _submit(studio: Studio, claim: Claim, spec: ModelSpec) -> StepOutcome:
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
    with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
        if job is None:
            return StepOutcome.STALE
        job.submitted_at = utcnow()
        if claim.one_step:  # the provider works on it while we wait: it runs from now
            record(session, job, JobStatus.RUNNING)
    provider = studio.provider(claim.provider)
    if claim.one_step:
        try:
            made = provider.generate(spec, claim.prompt, claim.params, _references(studio, claim, spec))
        except ProviderError as exc:
            return _fail(studio, claim, exc.code, str(exc))
        return _store(
            studio,
            claim,
            made.outputs,
            usage=made.usage,
            revised_prompt=made.revised_prompt,
            request_id=made.request_id,
        )
    try:
        submitted = provider.submit(spec, claim.prompt, claim.params, _references(studio, claim, spec))
    except ProviderError as exc:
        if exc.retryable:  # refused before acceptance (e.g. rate limited): safe to send again

            def may_send_again() -> None:
                with fenced(studio.db, claim.job_id, claim.attempt) as (_, job):
                    if job is not None:
                        job.submitted_at = None

            _while_database_away(studio, may_send_again)
        return _after_provider_error(studio, claim, exc)

    def note_task() -> bool:
        with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
            if job is None:
                return False
            job.provider_job_id = submitted.task_id
            job.provider_request_id = submitted.request_id
            job.transient_errors = 0
            _schedule(job, utcnow(), studio.settings.poll_interval_s)
            note = f"submitted to {claim.provider} as task {submitted.task_id}"
            session.add(JobEvent(job=job, status=job.status, progress=job.progress, message=note))
            return True

    if not _while_database_away(studio, note_task):  # canceled while we were submitting
        _cancel_quietly(studio, claim, spec, submitted.task_id)  # do not leave the task running there
        return StepOutcome.STALE
    return StepOutcome.SUBMITTED


def _references(studio: Studio, claim: Claim, spec: ModelSpec) -> list[Reference]:
    """The images the job starts from, as the provider reads them: from our storage, where they
    were copied (and checked) when the job was created."""
    if not spec.image_inputs:  # a text-only model: no read for the many jobs that have none
        return []
    with studio.db.read() as session:
        rows = session.scalars(select(JobInput).where(JobInput.job_id == claim.job_id).order_by(JobInput.index)).all()
    storage = studio.storage
    # Only a bucket's URLs reach a remote provider; local storage is served on this machine only.
    fetchable = storage.name == "s3"

    def reader(key: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with storage.open(key) as stream:
                return stream.read()

        return read

    return [
        Reference(
            role=row.role,
            content_type=row.content_type,
            width=row.width,
            height=row.height,
            read=reader(row.key),
            url=storage.url(row.key) if fetchable else None,
            name=row.key.rsplit("/", 1)[-1],
        )
        for row in rows
    ]


def _while_database_away(studio: Studio, write: Callable[[], Result]) -> Result:
    """Run a write of what only this process knows (what the provider answered a submit), trying
    again while the database is out of reach, for up to a lease: unwritten, a task the provider
    accepted would be lost (the job left "submitted, outcome unknown") and one it refused would
    not be sent again. The fencing token still decides whether the write holds."""
    retrying = Retrying(
        retry=retry_if_exception_type(DatabaseUnavailable),
        stop=stop_after_delay(studio.settings.lease_s),
        wait=wait_fixed(min(DATABASE_RETRY_S, studio.settings.poll_interval_s)),
        reraise=True,
    )
    return retrying(write)


def _apply(studio: Studio, claim: Claim, result: PollResult, copies: Downloads | None) -> StepOutcome:
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
        return StepOutcome.CANCELED
    if copies is not None:
        copies.start(functools.partial(store_in_background, studio, claim, result))
        return StepOutcome.COPYING
    return _store(studio, claim, result.outputs, usage=result.usage)


def _store(
    studio: Studio,
    claim: Claim,
    outputs: Sequence[MediaSource],
    *,
    usage: dict[str, Any],
    revised_prompt: str | None = None,
    request_id: str | None = None,
) -> StepOutcome:
    """Copy a finished generation's outputs into storage and end the job (fenced: a stale copy is
    dropped and its files removed)."""
    try:
        stored = ingest_outputs(
            studio.storage,
            outputs,
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
        usage=usage or None,
        revised_prompt=revised_prompt,
        request_id=request_id,
    ):
        return StepOutcome.STALE
    _discard(studio, claim)
    return StepOutcome.SUCCEEDED


def _progress(studio: Studio, seen: Observed) -> StepOutcome:
    with fenced(studio.db, seen.claim.job_id, seen.claim.attempt) as (session, job):
        return StepOutcome.STALE if job is None else _note_progress(studio, session, job, seen)


def _note_progress(studio: Studio, session: Session, job: Job, seen: Observed) -> StepOutcome:
    result, at = seen.result, seen.polled_at
    before = job.progress
    job.progress = max(before, min(99, result.progress))
    job.transient_errors = 0
    if result.state is TaskState.RUNNING and job.status == JobStatus.QUEUED:
        record(session, job, JobStatus.RUNNING, message="the provider started the task", now=at)
    elif job.progress // PROGRESS_EVENT_STEP > before // PROGRESS_EVENT_STEP:
        session.add(JobEvent(job=job, at=at, status=job.status, progress=job.progress))
    _schedule(job, at, max(studio.settings.poll_interval_s, result.retry_after_s or 0))
    return StepOutcome(str(job.status))


def _after_provider_error(studio: Studio, claim: Claim, exc: ProviderError) -> StepOutcome:
    if not exc.retryable or claim.one_step:
        return _fail(studio, claim, exc.code, str(exc))
    now = utcnow()
    delay = exc.retry_after_s or min(MAX_BACKOFF_S, studio.settings.poll_interval_s * 2 ** (claim.transient_errors + 1))
    delay *= random.uniform(0.8, 1.2)  # jitter, so many jobs do not retry in lockstep
    with fenced(studio.db, claim.job_id, claim.attempt) as (session, job):
        if job is None:
            return StepOutcome.STALE
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
    return StepOutcome.BACKOFF


def _time_out(studio: Studio, claim: Claim, now: datetime) -> StepOutcome:
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
    return StepOutcome.TIMED_OUT


def _fail(studio: Studio, claim: Claim, code: str, message: str) -> StepOutcome:
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
    return StepOutcome.FAILED if applied else StepOutcome.STALE


def _discard(studio: Studio, claim: Claim) -> None:
    """Let a provider that keeps finished tasks around (the local one) forget this one."""
    discard = getattr(studio.provider(claim.provider), "discard", None)
    if discard is not None and claim.provider_job_id:
        discard(claim.provider_job_id)


def _schedule(job: Job, now: datetime, delay_s: float) -> None:
    job.next_poll_at = now + timedelta(seconds=delay_s)
    release(job)


def _cancel_quietly(studio: Studio, claim: Claim, spec: ModelSpec, task_id: str) -> None:
    try:
        studio.provider(claim.provider).cancel(spec, task_id)
    except MediagenError as exc:
        log.warning("job %s: provider cancel failed: %s", claim.job_id, exc)
