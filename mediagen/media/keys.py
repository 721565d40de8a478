"""Every storage key the studio writes, named in one place.

    {kind}/{yyyy}/{mm}/{dd}/{job_id}-{index}.{ext}           an output as the provider made it
    {kind}/{yyyy}/{mm}/{dd}/{job_id}-{index}.thumb.webp      its thumbnail (a video's poster frame)
    {kind}/{yyyy}/{mm}/{dd}/{job_id}-{index}.{suffix}        another format of it, made on demand
    inputs/{yyyy}/{mm}/{dd}/{job_id}-{index}.{ext}           an image a job started from

Keys are deterministic per job, so an ingest repeated by a second worker overwrites instead of
duplicating, and everything a job's ingest writes shares one prefix (``job_key_prefix``) for
clean-up. Inputs live apart: they are written before the job exists and kept whatever its outcome
(a failed job keeps what it was asked to start from, for its details and its retry).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from ..jobs.status import JobKind

THUMBNAIL_SUFFIX = "thumb.webp"
# What each format a user may download is stored as, beside the original.
DERIVED_SUFFIXES: dict[JobKind, dict[str, str]] = {
    JobKind.IMAGE: {"png": "png", "jpeg": "jpg", "webp": "webp"},
    JobKind.VIDEO: {"mp4": "mp4", "webm": "webm", "gif": "preview.gif", "webp": "preview.webp"},
}


class StoredAsset(Protocol):
    key: str
    thumbnail_key: str | None


def job_key_prefix(kind: JobKind | str, created_at: datetime, job_id: str) -> str:
    """What every object a job's ingest writes starts with (its media and their thumbnails)."""
    return f"{JobKind(kind).value}/{created_at:%Y/%m/%d}/{job_id}-"


def media_key(kind: JobKind | str, created_at: datetime, job_id: str, index: int, ext: str) -> str:
    return f"{job_key_prefix(kind, created_at, job_id)}{index}.{ext}"


def input_key(created_at: datetime, job_id: str, index: int, ext: str) -> str:
    return f"inputs/{created_at:%Y/%m/%d}/{job_id}-{index}.{ext}"


def _stem(original_key: str) -> str:
    return original_key.rsplit(".", 1)[0]


def thumbnail_key(original_key: str) -> str:
    return f"{_stem(original_key)}.{THUMBNAIL_SUFFIX}"


def derived_key(original_key: str, suffix: str) -> str:
    return f"{_stem(original_key)}.{suffix}"


def all_derived_keys(original_key: str, kind: JobKind | str) -> list[str]:
    """Every other format of the original that may have been made (not the original itself)."""
    keys = (derived_key(original_key, suffix) for suffix in DERIVED_SUFFIXES[JobKind(kind)].values())
    return [key for key in keys if key != original_key]


def stored_keys(kind: JobKind | str, assets: Iterable[StoredAsset]) -> list[str]:
    """Every object a job's assets may have in storage: originals, thumbnails and derived formats."""
    keys: list[str] = []
    for asset in assets:
        keys.append(asset.key)
        if asset.thumbnail_key:
            keys.append(asset.thumbnail_key)
        keys += all_derived_keys(asset.key, kind)
    return keys
