"""The running services of one process: settings, database, storage, catalogue, providers.

The Streamlit lifespan, the CLI and the tests all build it with ``Studio.open``.
"""

from __future__ import annotations

import threading
from typing import Any

from .catalog import Catalog, ModelSpec
from .config import Settings
from .db import Database
from .errors import InvalidInput
from .ingest import Limits
from .netguard import OutboundGuard
from .providers import PROVIDERS, configured_catalog
from .states import JobKind
from .storage import make_storage
from .storage.base import Storage


class Studio:
    def __init__(self, settings: Settings, *, db: Database | None = None, storage: Storage | None = None):
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url)
        self.storage = storage or make_storage(settings)
        self.catalog: Catalog = configured_catalog(settings)
        self.guard = OutboundGuard.from_entries(settings.outbound_allow)
        # What one copy out of a provider may do: how many bytes, for how long, and where.
        self.download_limits = Limits(
            settings.max_media_bytes, settings.download_timeout_s, settings.spool_dir, guard=self.guard
        )
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True) -> Studio:
        settings = settings or Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        studio = cls(settings)
        if migrate:
            studio.db.upgrade()
        return studio

    def provider(self, name: str) -> Any:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = PROVIDERS[name].factory(self.settings)
            return self._providers[name]

    def model(self, name: str | None, kind: JobKind) -> ModelSpec:
        """The named model, or this kind's default: the first configured model of the kind."""
        if name:
            return self.catalog.get(name, kind)
        models = self.catalog.models(kind)
        if not models:
            raise InvalidInput("model", f"no {kind.value} model is configured", "set a provider's API key")
        return models[0]

    def drain(self) -> None:
        """Let in-process provider work (the local renderer) finish before the process exits."""
        for provider in list(self._providers.values()):
            drain = getattr(provider, "drain", None)
            if drain is not None:
                drain()

    def close(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()
        self.db.dispose()
