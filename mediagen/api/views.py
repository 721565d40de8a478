"""Jobs as each API surface shows them: the seed's task words and result object, and OpenAI's
VideoResource. One job, one truth; only the words differ.

    our status   seed /api      OpenAI /v1
    queued       queued         queued
    running      processing     in_progress
    succeeded    completed      completed
    failed       failed         failed (error.code: the recorded reason)
    canceled     cancelled      failed (error.code "canceled")
    timed_out    timedout       failed (error.code "timed_out")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db.tables import Asset, Job
from ..jobs.status import JobStatus
from ..storage.base import Storage

SEED_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "cancelled",
    JobStatus.TIMED_OUT: "timedout",
}
OPENAI_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
    JobStatus.TIMED_OUT: "failed",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def _resolution(asset: Asset) -> str | None:
    return f"{asset.width}x{asset.height}" if asset.width and asset.height else None


def seed_task(job: Job, storage: Storage) -> dict[str, Any]:
    """``GET /api/videos/tasks/{id}``: the analysed system's task, its result one object."""
    status = JobStatus(job.status)
    result = None
    if status is JobStatus.SUCCEEDED and job.assets:
        video = job.assets[0]
        result = {
            "video_url": storage.url(video.key),
            "thumbnail_url": storage.url(video.thumbnail_key) if video.thumbnail_key else None,
            "duration": video.duration_s,
            "resolution": _resolution(video),
            "file_size": video.bytes,
            "content_type": video.content_type,
        }
    return {
        "task_id": job.id,
        "status": SEED_STATUS[status],
        "progress": job.progress,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "completed_at": _iso(job.finished_at),
        "error": job.error_message if status in {JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMED_OUT} else None,
        "result": result,
        "model": job.model,
        "retried_from": job.retried_from,
    }


def _openai_error(job: Job) -> dict[str, str] | None:
    status = JobStatus(job.status)
    if status in {JobStatus.CANCELED, JobStatus.TIMED_OUT}:
        return {"code": status.value, "message": job.error_message or status.value.replace("_", " ")}
    if status is JobStatus.FAILED:
        return {"code": job.error_code or "failed", "message": job.error_message or "the generation failed"}
    return None


def video_resource(job: Job) -> dict[str, Any]:
    """OpenAI's VideoResource for a video job."""
    seconds = job.params.get("duration")
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": OPENAI_STATUS[JobStatus(job.status)],
        "progress": job.progress,
        "created_at": _unix(job.created_at),
        "completed_at": _unix(job.finished_at) if JobStatus(job.status) is JobStatus.SUCCEEDED else None,
        # Our copies do not expire (retention, when set, applies to the whole job).
        "expires_at": None,
        "prompt": job.prompt,
        "size": job.params.get("size", ""),
        "seconds": str(seconds) if seconds is not None else "",
        "remixed_from_video_id": None,
        "error": _openai_error(job),
    }
