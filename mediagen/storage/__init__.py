"""Storage backends, registered by name like providers."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .base import Storage
from .local import LocalStorage


def _s3(settings: Settings) -> Storage:
    from .s3 import S3Storage  # boto3 is only imported when S3 is used

    return S3Storage(settings)


BACKENDS: dict[str, Callable[[Settings], Storage]] = {
    "local": lambda s: LocalStorage(s.media_dir, s.local_base_url, upload_dir=s.upload_dir, stale_after_s=s.lease_s),
    "s3": _s3,
}


def make_storage(settings: Settings) -> Storage:
    return BACKENDS[settings.storage](settings)
