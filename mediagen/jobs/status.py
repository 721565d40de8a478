"""The job state machine, in one place.

    queued ──► running ──► succeeded
       │          ├──────► failed
       │          ├──────► timed_out
       └──────────┴──────► canceled

A queued job can also fail or time out directly (a provider may refuse a task before it runs).
"""

from __future__ import annotations

from enum import StrEnum

from ..errors import IllegalTransition


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


class JobKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMED_OUT})
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMED_OUT})

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMED_OUT}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.RUNNING,  # progress updates
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELED,
            JobStatus.TIMED_OUT,
        }
    ),
}


def allowed_next(current: JobStatus) -> frozenset[JobStatus]:
    return _ALLOWED.get(current, frozenset())


def check_transition(current: JobStatus | str, new: JobStatus | str) -> JobStatus:
    """Return ``new`` as a status, or raise ``IllegalTransition`` naming both ends."""
    current, new = JobStatus(current), JobStatus(new)
    if new not in allowed_next(current):
        raise IllegalTransition(f"a {current.value} job cannot become {new.value}")
    return new
