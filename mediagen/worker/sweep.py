"""A sweep (the worker's tick): claim due jobs, advance each one step, write results fenced.

A claim bumps the job's ``attempt`` and sets a lease in one short write transaction (``db.leases``);
all network I/O (submit, poll, download, upload) happens outside any transaction; every write
afterwards holds only if ``attempt`` is still the one claimed (see ``step``). A worker that dies mid-poll
simply lets its lease run out and the next tick picks the job up; a stale worker's late result
is dropped.

A tick is a pipeline, not a series of batches: up to ``poll_concurrency`` polls are in flight,
more due jobs are claimed as slots free up, and "still running" answers are written together
every few hundred milliseconds. Run by a worker on its schedule, a tick also keeps polling jobs as they come
due for ``keep_polling_s``, so each job is polled one interval after its last poll was asked,
not at the next tick boundary.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from ..db import leases
from ..db.tables import Job, utcnow
from ..jobs.status import ACTIVE_STATUSES, JobKind
from ..studio import Studio, new_owner_id
from .downloads import Downloads
from .step import Claim, Observed, StepOutcome, advance, write_observed

TICK_BUDGET_INTERVALS = 5  # a tick that is only sweeping what is due stops claiming after this
QUEUED_PER_THREAD = 2  # claimed jobs waiting for a thread: enough that no thread waits for a claim
WRITE_EVERY_S = 0.25  # "still running" answers wait at most this long to be written
CLAIM_NAP_S = 0.05  # shortest wait before asking again when nothing was due


def tick(
    studio: Studio,
    *,
    worker_id: str | None = None,
    now: datetime | None = None,
    copies: Downloads | None = None,
    keep_polling_s: float = 0.0,
    stopping: threading.Event | None = None,
) -> Counter[StepOutcome]:
    """Advance every due job once. Returns how the steps ended, e.g. ``{RUNNING: 2, SUCCEEDED: 1}``.

    Without ``keep_polling_s`` the tick polls what is due and stops when nothing is (or after
    ``TICK_BUDGET_INTERVALS`` poll intervals, so a backlog that keeps coming due cannot hold it
    forever); with it, the tick also waits for jobs that come due within that many seconds.
    With an explicit ``now`` (tests) it claims one batch.

    With ``copies`` (a running worker's pool), finished results are copied into storage there and
    the tick moves on; otherwise (CLI, tests) the tick copies them itself and returns only when
    every claimed job has moved. Setting ``stopping`` ends the tick's waiting and claiming.
    """
    worker_id = worker_id or new_owner_id()
    stopping = stopping or threading.Event()
    outcomes: Counter[StepOutcome] = Counter()
    claims = claim_due(studio, worker_id, now or utcnow())
    if not claims and keep_polling_s > 0:
        soon = seconds_until_due(studio)
        if soon < keep_polling_s and not stopping.wait(soon + CLAIM_NAP_S):
            claims = claim_due(studio, worker_id, utcnow())
    if not claims:
        return outcomes
    _Sweep(studio, worker_id, copies, keep_polling_s, stopping, one_batch=now is not None).run(claims, outcomes)
    return outcomes


class _Sweep:
    def __init__(
        self,
        studio: Studio,
        worker_id: str,
        copies: Downloads | None,
        keep_polling_s: float,
        stopping: threading.Event,
        *,
        one_batch: bool,
    ) -> None:
        settings = studio.settings
        self.studio, self.worker_id, self.copies, self.stopping = studio, worker_id, copies, stopping
        self.threads = settings.poll_concurrency
        self.keep_polling = keep_polling_s > 0
        started = time.monotonic()
        self.claim_until = started + (keep_polling_s or settings.poll_interval_s * TICK_BUDGET_INTERVALS)
        if one_batch:
            self.claim_until = started
        self.next_claim_at = started
        self.observed: list[Observed] = []
        self.write_at = float("inf")

    def run(self, claims: list[Claim], outcomes: Counter[StepOutcome]) -> None:
        in_flight: set[Future[StepOutcome | Observed]] = set()
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="mediagen-poll") as pool:
            while True:
                in_flight |= {pool.submit(advance, self.studio, c, self.copies) for c in claims}
                claims = []
                if in_flight:
                    done, in_flight = wait(in_flight, timeout=self._wait_s(), return_when=FIRST_COMPLETED)
                    for future in done:
                        self._collect(future.result(), outcomes)
                if self.observed and (time.monotonic() >= self.write_at or not in_flight):
                    outcomes.update(write_observed(self.studio, self.observed))
                    self.observed, self.write_at = [], float("inf")
                if len(in_flight) <= self.threads and self._may_claim():
                    limit = self.threads * (1 + QUEUED_PER_THREAD) - len(in_flight)
                    claims = self._claim(limit, holding=bool(in_flight or self.observed))
                if not claims and not in_flight:
                    if not self._may_claim(soon=True):
                        break
                    self.stopping.wait(max(0.0, self.next_claim_at - time.monotonic()))

    def _collect(self, step: StepOutcome | Observed, outcomes: Counter[StepOutcome]) -> None:
        if isinstance(step, Observed):
            if not self.observed:
                self.write_at = time.monotonic() + WRITE_EVERY_S
            self.observed.append(step)
        else:
            outcomes[step] += 1

    def _wait_s(self) -> float:
        now = time.monotonic()
        return max(0.0, min(self.write_at, max(self.next_claim_at, now + CLAIM_NAP_S), now + WRITE_EVERY_S) - now)

    def _may_claim(self, *, soon: bool = False) -> bool:
        if self.stopping.is_set():
            return False
        now = time.monotonic()
        if soon:  # may claim before this tick ends
            return now < self.claim_until and self.next_claim_at < self.claim_until
        return now < self.claim_until and now >= self.next_claim_at

    def _claim(self, limit: int, *, holding: bool) -> list[Claim]:
        claims = claim_due(self.studio, self.worker_id, utcnow(), limit=limit)
        if len(claims) < limit:  # everything due is claimed: wait for the next job to come due
            if not self.keep_polling:
                self.claim_until = time.monotonic()
                return claims
            wait_s = seconds_until_due(self.studio)
            if claims or holding:  # jobs we hold now come due again one interval after their poll
                wait_s = min(wait_s, self.studio.settings.poll_interval_s)
            self.next_claim_at = time.monotonic() + max(CLAIM_NAP_S, wait_s)
        return claims


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        Job.status.in_([s.value for s in ACTIVE_STATUSES]),
        or_(
            and_(Job.kind == JobKind.VIDEO, Job.next_poll_at <= now),
            # Images too: their own process runs them under a lease that ends at their deadline, so
            # one whose process died is timed out here.
            Job.deadline_at <= now,
        ),
    )


def claim_due(studio: Studio, worker_id: str, now: datetime, *, limit: int | None = None) -> list[Claim]:
    limit = limit or studio.settings.poll_concurrency * (1 + QUEUED_PER_THREAD)
    with studio.db.write() as session:
        jobs = leases.claim(
            session,
            Job,
            due=_due(now),
            order_by=(Job.next_poll_at,),
            limit=limit,
            owner=worker_id,
            lease_s=studio.settings.lease_s,
            now=now,
        )
        for job in jobs:
            job.attempt += 1  # the fencing token: writes of whoever held it before now match nothing
        return [Claim.of(job) for job in jobs]


def seconds_until_due(studio: Studio) -> float:
    """How long until the next video job not leased elsewhere is due for a poll (a read, no lock)."""
    now = utcnow()
    active = [s.value for s in ACTIVE_STATUSES]
    with studio.db.read() as session:
        soonest = session.scalar(
            select(func.min(Job.next_poll_at)).where(
                Job.status.in_(active), Job.kind == JobKind.VIDEO, leases.lease_free(Job, now)
            )
        )
    if soonest is None:
        return float("inf")
    return max(0.0, (soonest - now).total_seconds())
