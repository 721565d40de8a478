"""What users do with jobs: generate an image, submit a video, cancel, retry.

The pages, the CLI and the HTTP API call these and nothing lower. Invalid input raises
``InvalidInput`` before any row is written. Every generation then takes the one path: the job is
created, run one step at a time by ``worker.step`` (an image in one step, in this process's bounded
generation pool while its caller waits; a video by whichever worker polls it), stored and
finished; a generation that fails is recorded as a failed job with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from ..auth.roles import User, require_change
from ..catalog import ModelSpec, validate_params, validate_prompt
from ..db.tables import Job, JobEvent, JobInput, new_job_id, utcnow
from ..errors import Conflict, MediagenError, NotFound
from ..media.ingest import delete_keys
from ..studio import Studio
from ..webhooks.outbox import check_webhook_url
from ..worker import step
from .lineage import Derivation, Lineage, Placement
from .queries import get_job
from .references import NO_INPUTS, CheckedInputs, ImageRef, carried, check
from .status import ACTIVE_STATUSES, RETRYABLE_STATUSES, JobKind, JobStatus
from .transitions import clear_leftovers, record

# A job's state in a sentence: "job 1a2b has been canceled".
_STATE_PHRASES = {
    JobStatus.QUEUED: "is queued",
    JobStatus.RUNNING: "is running",
    JobStatus.SUCCEEDED: "has succeeded",
    JobStatus.FAILED: "has failed",
    JobStatus.CANCELED: "has been canceled",
    JobStatus.TIMED_OUT: "has timed out",
}


def state_phrase(status: JobStatus | str, *, already: bool = False) -> str:
    """How "job X …" goes on for a job in ``status``; ``already`` for one that has ended
    ("has already been canceled")."""
    phrase = _STATE_PHRASES[JobStatus(status)]
    if not already:
        return phrase
    verb, rest = phrase.split(" ", 1)
    return f"{verb} already {rest}"


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
    text = validate_prompt(prompt, spec.prompt_limit(studio.settings.max_prompt_chars))
    cleaned = validate_params(spec, {k: v for k, v in (params or {}).items() if v is not None})
    return Request(kind, spec, text, cleaned, check_webhook_url(studio, webhook_url))


def generate_image(
    studio: Studio,
    prompt: Any,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "local",
    lineage: Lineage | None = None,
    references: Sequence[ImageRef] = (),
    reader: User | None = None,
) -> Job:
    """Generate and wait: the returned job has succeeded (with assets) or failed (with why)."""
    return start_image(
        studio, prompt, model=model, params=params, owner=owner, lineage=lineage, references=references, reader=reader
    ).result()


def start_image(
    studio: Studio,
    prompt: Any,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "local",
    lineage: Lineage | None = None,
    placement: Placement | None = None,
    references: Sequence[ImageRef] = (),
    reader: User | None = None,
) -> Future[Job]:
    """Validate and create the image job, and start it in this process's generation pool; the
    future gives the finished job (an HTTP handler awaits it without holding a thread).

    ``references`` are the images it starts from (an edit, a variation), checked and stored with
    the job (``jobs.references``); a job REF must be one ``reader`` may see (None: the studio
    itself, the CLI, which alone may also name files on this machine)."""
    request = validate(studio, JobKind.IMAGE, prompt, model, params)
    studio.check_generation_room()
    with check(studio, request.model, references, reader=reader) as inputs:
        claim = _create(studio, request, owner, lineage=lineage, placement=placement, inputs=inputs)
    return _start_here(studio, claim)


def submit_video(
    studio: Studio,
    prompt: Any,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "local",
    webhook_url: str | None = None,
    lineage: Lineage | None = None,
    placement: Placement | None = None,
    references: Sequence[ImageRef] = (),
    reader: User | None = None,
) -> Job:
    """Queue a video job and return at once; a worker submits it and follows it to the end.
    With ``webhook_url``, the job's final state is POSTed there, signed. ``references``: its
    first frame, as for ``start_image``."""
    request = validate(studio, JobKind.VIDEO, prompt, model, params, webhook_url)
    with check(studio, request.model, references, reader=reader) as inputs:
        claim = _create(studio, request, owner, lineage=lineage, placement=placement, inputs=inputs)
    return get_job(studio, claim.job_id)


def retry_job(studio: Studio, job_id: str, *, owner: str | None = None, actor: User | None = None) -> Job:
    """A new job with the same parameters, images, lineage and comparison column, linked to the
    old one (which keeps its outcome); with an ``actor``, only the old job's owner or an admin
    may, and the new job is theirs. An image retry waits for its result, as ``generate_image``
    does."""
    old = get_job(studio, job_id)
    if actor is not None:
        require_change(actor, old.owner, "retry")
        owner = actor.email
    if JobStatus(old.status) not in RETRYABLE_STATUSES:
        now = state_phrase(old.status)
        raise Conflict(f"job {job_id} {now}; only failed, canceled or timed-out jobs can be retried")
    request = validate(studio, JobKind(old.kind), old.prompt, old.model, old.params, old.webhook_url)
    if request.kind is JobKind.IMAGE:
        studio.check_generation_room()
    lineage = Lineage(old.derived_from, Derivation(old.derivation)) if old.derived_from and old.derivation else None
    placement = Placement(old.comparison_id, old.comparison_column or 0) if old.comparison_id else None
    with carried(studio, old) as inputs:
        claim = _create(
            studio,
            request,
            owner or old.owner,
            retried_from=old.id,
            lineage=lineage,
            placement=placement,
            inputs=inputs,
        )
    return _start_here(studio, claim).result() if request.kind is JobKind.IMAGE else get_job(studio, claim.job_id)


def cancel_job(studio: Studio, job_id: str, *, actor: User | None = None) -> Job:
    """Cancel a queued or running job (only its owner or an admin, when ``actor`` is given; the
    CLI and the workers act for the studio). Bumping ``attempt`` fences off any worker mid-poll,
    so a cancel racing a completion ends in exactly one final state."""
    with studio.db.write() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        if actor is not None:
            require_change(actor, job.owner, "cancel")
        if JobStatus(job.status) not in ACTIVE_STATUSES:
            ended = state_phrase(job.status, already=True)
            raise Conflict(f"job {job_id} {ended}; only queued or running jobs can be canceled")
        job.attempt += 1
        job.error_code, job.error_message = "canceled", "canceled by the user"
        record(session, job, JobStatus.CANCELED, message="canceled by the user")
        provider_name, provider_job_id, model_name = job.provider, job.provider_job_id, job.model
        kind, created_at = job.kind, job.created_at
    clear_leftovers(studio.storage, kind, created_at, job_id)
    if provider_job_id:
        _cancel_at_provider(studio, job_id, provider_name, model_name, provider_job_id)
    return get_job(studio, job_id)


def _create(
    studio: Studio,
    request: Request,
    owner: str,
    retried_from: str | None = None,
    *,
    lineage: Lineage | None = None,
    placement: Placement | None = None,
    inputs: CheckedInputs = NO_INPUTS,
) -> step.Claim:
    """Write the queued job with its input images; return the claim its first step runs under.
    An image is created leased to this process (it runs here, now) until its deadline, when a
    worker would time it out; a video is due for a worker's poll at once. The inputs are stored
    under the job's id first and their rows written with the job: if the job is not written,
    they are deleted again."""
    now = utcnow()
    job_id = new_job_id()
    rows = inputs.store(studio, now, job_id)
    try:
        return _write_job(studio, request, owner, retried_from, lineage, placement, job_id, now, rows)
    except BaseException:
        delete_keys(studio.storage, [row.key for row in rows])
        raise


def _write_job(
    studio: Studio,
    request: Request,
    owner: str,
    retried_from: str | None,
    lineage: Lineage | None,
    placement: Placement | None,
    job_id: str,
    now: datetime,
    rows: list[JobInput],
) -> step.Claim:
    deadline = now + timedelta(seconds=studio.settings.deadline_for(request.kind, request.model.name))
    here = request.kind is JobKind.IMAGE
    with studio.db.write() as session:
        job = Job(
            id=job_id,
            kind=request.kind,
            status=JobStatus.QUEUED,
            provider=request.model.provider,
            model=request.model.name,
            prompt=request.prompt,
            params=request.params,
            owner=owner,
            retried_from=retried_from,
            derived_from=lineage.parent if lineage else None,
            derivation=lineage.how.value if lineage else None,
            comparison_id=placement.comparison_id if placement else None,
            comparison_column=placement.column if placement else None,
            webhook_url=request.webhook_url,
            created_at=now,
            deadline_at=deadline,
            next_poll_at=None if here else now,
            attempt=1 if here else 0,
            lease_owner=studio.owner_id if here else None,
            lease_until=deadline if here else None,
            submitted_at=None,
            transient_errors=0,
            progress=0,
            inputs=rows,
        )
        session.add(job)
        session.flush()
        message = f"retry of {retried_from}" if retried_from else None
        session.add(JobEvent(job=job, at=now, status=JobStatus.QUEUED.value, progress=0, message=message))
        return step.Claim.of(job)


def _start_here(studio: Studio, claim: step.Claim) -> Future[Job]:
    """Run the job's step in this process's generation pool: N callers of one process (pages, API
    requests, threads) generate side by side, at most ``image_concurrency`` at once."""
    return studio.run_generation(_step_then_read, studio, claim)


def _step_then_read(studio: Studio, claim: step.Claim) -> Job:
    step.advance(studio, claim)
    return get_job(studio, claim.job_id)


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
