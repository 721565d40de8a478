"""Storage backends, registered by name like providers."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .base import Storage
from .local import LocalStorage

BACKENDS: dict[str, Callable[[Settings], Storage]] = {
    "local": lambda s: LocalStorage(s.media_dir, s.public_base_url),
}


def make_storage(settings: Settings) -> Storage:
    return BACKENDS[settings.storage](settings)
