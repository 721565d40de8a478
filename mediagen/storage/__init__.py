"""Storage backends, registered by name like providers."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .base import Storage
from .local import LocalStorage
from .serving import Serving


def _s3(settings: Settings, _serving: Serving) -> Storage:
    from .s3 import S3Storage  # boto3 is only imported when S3 is used

    return S3Storage(settings)


def _local(settings: Settings, serving: Serving) -> Storage:
    return LocalStorage(settings.media_dir, serving, upload_dir=settings.upload_dir, stale_after_s=settings.lease_s)


BACKENDS: dict[str, Callable[[Settings, Serving], Storage]] = {"local": _local, "s3": _s3}


def make_storage(settings: Settings, serving: Serving | None = None) -> Storage:
    """The configured backend; local media URLs follow ``serving``, where the app serves them."""
    return BACKENDS[settings.storage](settings, serving or Serving(settings))
