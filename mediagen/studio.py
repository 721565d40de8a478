"""The running services of one process: settings, database, storage, catalogue, providers.

The Streamlit lifespan, the CLI and the tests all build it with ``Studio.open``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from .catalog import Catalog, ModelSpec
from .config import Settings
from .db import Database
from .errors import InvalidInput
from .ingest import Limits, download_client
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
        self._download_client = download_client()
        self.download_limits = Limits(
            settings.max_media_bytes,
            settings.download_timeout_s,
            settings.spool_dir,
            guard=self.guard,
            client=self._download_client,
        )
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._downloads: ThreadPoolExecutor | None = None
        self._pending_downloads: set[Future[Any]] = set()
        self.stopping = threading.Event()  # set when the process is shutting down its poller

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

    def start_download(self, work: Callable[[], Any]) -> None:
        """Run a result copy in the background pool, so a slow download never holds up the
        polling of other jobs. The job stays leased meanwhile (the lease outlasts the download
        timeout); if this process dies, the lease runs out and another worker copies it again."""
        with self._lock:
            if self._downloads is None:
                self._downloads = ThreadPoolExecutor(
                    max_workers=self.settings.download_concurrency, thread_name_prefix="mediagen-download"
                )
            future = self._downloads.submit(work)
            self._pending_downloads.add(future)
        future.add_done_callback(self._forget_download)

    def _forget_download(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending_downloads.discard(future)

    def drain(self) -> None:
        """Let in-process work (background copies, the local renderer) finish before the process
        exits."""
        with self._lock:
            pending = list(self._pending_downloads)
        wait(pending)
        for provider in list(self._providers.values()):
            drain = getattr(provider, "drain", None)
            if drain is not None:
                drain()

    def close(self) -> None:
        if self._downloads is not None:
            self._downloads.shutdown(wait=True)
        self._download_client.close()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()
        self.db.dispose()
