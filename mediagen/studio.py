"""The running services of one process: settings, database, storage, catalogue, providers, and
the bounded pool generations run in.

The app server (``server``), the CLI, workers and the tests all build it with ``Studio.open``. It
sits below everything else of the core and starts nothing by itself (the worker is started by
whoever wants one), so every module may use it.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .catalog import Catalog, ModelSpec
from .config import Settings
from .db.engine import Database
from .errors import InvalidInput
from .jobs.status import JobKind
from .media.ingest import Limits, download_client
from .netguard import OutboundGuard
from .providers import PROVIDERS, configured_catalog, read_provider_settings
from .providers.settings import ProviderSettings
from .storage import make_storage
from .storage.base import Storage


def new_owner_id() -> str:
    """A lease owner's name: host and pid (so an operator can find the process) and a random
    suffix (so two owners in one process never share leases)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Studio:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        storage: Storage | None = None,
        provider_settings: Mapping[str, ProviderSettings] | None = None,
    ):
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url)
        self.storage = storage or make_storage(settings)
        # Each provider's own variables (keys, base URLs), read once as the process starts.
        self.provider_settings = dict(provider_settings or read_provider_settings())
        self.catalog: Catalog = configured_catalog(self.provider_settings)
        self.guard = OutboundGuard.from_entries(settings.outbound_allow)
        # What one copy out of a provider may do: how many bytes, for how long, and where.
        self._download_client = download_client()
        self.download_limits = Limits(
            settings.max_media_bytes,
            settings.download_timeout_s,
            settings.spool_dir,
            guard=self.guard,
            client=self._download_client,
        )
        # Holds the leases of the generations this process runs for its own callers (images).
        self.owner_id = new_owner_id()
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._generations: ThreadPoolExecutor | None = None

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
                self._providers[name] = PROVIDERS[name].factory(self.provider_settings[name], self.settings)
            return self._providers[name]

    def model(self, name: str | None, kind: JobKind) -> ModelSpec:
        """The named model, or this kind's default: the first configured model of the kind."""
        if name:
            return self.catalog.get(name, kind)
        models = self.catalog.models(kind)
        if not models:
            raise InvalidInput("model", f"no {kind.value} model is configured", "set a provider's API key")
        return models[0]

    @property
    def generations(self) -> ThreadPoolExecutor:
        """Where this process runs generations its callers wait for (images), at most
        ``image_concurrency`` at once: N callers of one process run side by side, not one by one."""
        with self._lock:
            if self._generations is None:
                self._generations = ThreadPoolExecutor(
                    max_workers=self.settings.image_concurrency, thread_name_prefix="mediagen-generate"
                )
            return self._generations

    def drain(self) -> None:
        """Let in-process provider work (the local renderer) finish before the process exits."""
        for provider in list(self._providers.values()):
            drain = getattr(provider, "drain", None)
            if drain is not None:
                drain()

    def close(self) -> None:
        if self._generations is not None:
            self._generations.shutdown(wait=True)
        self._download_client.close()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()
        self.db.dispose()
