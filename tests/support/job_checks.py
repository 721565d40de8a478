"""What the fault tests check about jobs, in the database and in storage: one final event per
job, one asset set per succeeded job, every stored file owned by an asset row, each job counted
once in the metrics; and a way to hold a job's row while a worker wants to write it."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from mediagen.db.tables import Asset, Job, JobEvent, JobStat
from mediagen.jobs import queries
from mediagen.jobs.status import FINAL_STATUSES, JobStatus
from mediagen.studio import Studio

from .fake_providers import FakeProviders, Recorded
from .worker_processes import Worker, files_under, spool_leftovers

FINAL = sorted(s.value for s in FINAL_STATUSES)
CONTENT = "openai.videos.content"  # the fake's route for a finished OpenAI video's bytes
# Notes actions.cancel_job adds after the "canceled by the user" transition (see _cancel_at_provider).
CANCEL_NOTES = ("canceled at the provider", "the provider cannot cancel", "the provider did not confirm")
SMALL_IMAGE = {"size": "256x256"}
SMALL_CLIP = {"duration": 1, "size": "160x96"}


def job_row(studio: Studio, job_id: str) -> Job:
    return queries.get_job(studio, job_id)


def final_event_counts(studio: Studio) -> dict[str, int]:
    """Per job: how many times its events enter a final status (exactly once for a finished job).

    Events also carry notes written after a transition with the job's status at the time (the
    poller's "submitted to ..." note, the cancel-at-provider note after "canceled by the user"), so
    a note right after a final event repeats that status; it is not a second finish. Any event after
    the first final one must be such a note.
    """
    with studio.db.read() as session:
        rows = session.execute(select(JobEvent.job_id, JobEvent.status, JobEvent.message).order_by(JobEvent.id))
        events: dict[str, list[tuple[str, str | None]]] = {}
        for job_id, status, message in rows:
            events.setdefault(job_id, []).append((status, message))
    counts = {}
    for job_id, seen in events.items():
        statuses = [status for status, _ in seen]
        entered = [i for i, s in enumerate(statuses) if s in FINAL and (i == 0 or statuses[i - 1] not in FINAL)]
        counts[job_id] = len(entered)
        if entered:
            first = entered[0]
            for status, message in seen[first + 1 :]:
                assert status == statuses[first] and (message or "").startswith(CANCEL_NOTES), (job_id, seen)
    return counts


def asset_rows(studio: Studio, job_id: str) -> list[Asset]:
    with studio.db.read() as session:
        return list(session.scalars(select(Asset).where(Asset.job_id == job_id).order_by(Asset.index)))


def lease_pid(job: Job) -> int | None:
    """The pid in a lease owner ``host:pid:suffix`` (see ``studio.new_owner_id``)."""
    return int(job.lease_owner.split(":")[1]) if job.lease_owner else None


def video_downloads(fake: FakeProviders) -> list[Recorded]:
    return [c for c in fake.calls(CONTENT) if c.query.get("variant") == "video"]


def as_utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def lease_holder(workers: list[Worker], job: Job) -> Worker:
    """The worker whose lease ``job`` is under."""
    [holder] = [w for w in workers if w.pid == lease_pid(job)]
    return holder


def outcomes_of(workers: list[Worker]) -> Counter[str]:
    return sum((w.outcomes() for w in workers), Counter())


def assert_every_job_ended_once(
    studio: Studio, data_dir: Path, created: dict[str, str], canceled: set[str]
) -> dict[str, Job]:
    """Every job in ``created`` (all the jobs there are) ended exactly once: succeeded with one
    asset set, or canceled (exactly those in ``canceled``) with none; one final event each, and
    counted once in the metrics roll-up; every stored file belongs to one asset row; the spool is
    empty. The jobs, by id."""
    with studio.db.read() as session:
        rows = {j.id: j for j in session.scalars(select(Job))}
        assets = Counter(session.scalars(select(Asset.job_id)))
        keys = [k for a in session.scalars(select(Asset)) for k in (a.key, a.thumbnail_key)]
        rolled_up = session.execute(select(JobStat.status, func.sum(JobStat.jobs)).group_by(JobStat.status))
        counted = {status: int(jobs) for status, jobs in rolled_up}
    assert set(rows) == set(created)
    statuses = Counter(str(j.status) for j in rows.values())
    assert set(statuses) <= {"succeeded", "canceled"}, {
        j.id: (j.status, j.error_message) for j in rows.values() if j.status not in ("succeeded", "canceled")
    }
    assert {j for j, r in rows.items() if r.status == "canceled"} == canceled
    counts = final_event_counts(studio)
    assert {job_id: counts.get(job_id) for job_id in created} == dict.fromkeys(created, 1)
    assert counted == dict(statuses)
    for job_id, row in rows.items():
        assert assets[job_id] == (1 if row.status == JobStatus.SUCCEEDED else 0), (job_id, row.status)
    # Every stored file belongs to an asset row, once: no orphan from a stale or canceled result.
    assert files_under(data_dir / "media") == sorted(keys) and len(set(keys)) == len(keys)
    assert spool_leftovers(data_dir) == []
    return rows


@contextlib.contextmanager
def job_write_held(studio: Studio, job_id: str) -> Iterator[None]:
    """Hold a write transaction that locks ``job_id``'s row: a worker's write to that job waits
    until the block ends (SQLite: the database's write lock; PostgreSQL: the row lock)."""
    with studio.db.write() as session:
        session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
        yield


def unfinished(studio: Studio) -> list[str]:
    with studio.db.read() as session:
        return list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
