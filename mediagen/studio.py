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
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .catalog import Catalog, ModelSpec, check_aliases
from .config import Settings
from .db.engine import Database
from .errors import InvalidInput, RateLimited
from .jobs.status import JobKind
from .media.ingest import Limits, download_client
from .media.spool import Spool
from .netguard import OutboundGuard
from .providers import PROVIDERS, configured_catalog, full_catalog, read_provider_settings
from .providers.settings import ProviderSettings, RemoteSettings
from .storage import make_storage
from .storage.base import Storage
from .storage.serving import Serving

T = TypeVar("T")


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
        role: str = "process",
    ):
        self.settings = settings
        # Holds the leases of the generations this process runs for its own callers (images).
        self.owner_id = new_owner_id()
        # ``role`` (app, worker, cli) names this process's connections to a database server.
        self.db = db or Database.for_settings(settings, application_name=f"mediagen-{role}-{self.owner_id}")
        # Where the app serving local media answers (and whether it signs): media URLs follow it.
        self.serving = Serving(settings)
        self.storage = storage or make_storage(settings, self.serving)
        # Each provider's own variables (keys, base URLs), read once as the process starts.
        self.provider_settings = dict(provider_settings or read_provider_settings())
        # Every registered model, configured or not: to tell a caller what a model needs.
        self.known_models: Catalog = full_catalog(self.provider_settings)
        served = configured_catalog(self.provider_settings)
        check_aliases(settings.model_aliases, served, self.known_models)
        self.catalog: Catalog = Catalog(served.models(), settings.model_aliases)
        self.guard = OutboundGuard.from_entries(settings.outbound_allow)
        # What one copy out of a provider may do: how many bytes, for how long, and where.
        self._download_client = download_client()
        self.spool = Spool(settings.spool_dir, self.owner_id.replace(":", "-"))
        self.download_limits = Limits(
            settings.max_media_bytes,
            settings.download_timeout_s,
            self.spool,
            guard=self.guard,
            client=self._download_client,
        )
        self.started_at = int(time.time())
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._generations: ThreadPoolExecutor | None = None
        self._in_flight = 0

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True, role: str = "process") -> Studio:
        settings = settings or Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        studio = cls(settings, role=role)
        if migrate:
            try:
                # A database missing beside earlier media was deleted or moved: refused, not made anew.
                studio.db.upgrade(earlier_media=settings.media_dir)
            except BaseException:
                studio.close()
                raise
        return studio

    def provider(self, name: str) -> Any:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = PROVIDERS[name].factory(self.provider_settings[name], self.settings)
            return self._providers[name]

    def model(self, name: str | None, kind: JobKind) -> ModelSpec:
        """The named model, or this kind's default: the first configured model of the kind."""
        if name:
            if name not in self.catalog and self.known_models.serves(name):
                raise InvalidInput("model", f"{self.needs(name)}, which is not set here")
            return self.catalog.get(name, kind)
        models = self.catalog.models(kind)
        if not models:
            raise InvalidInput("model", f"no {kind.value} model is configured", "set a provider's API key")
        return models[0]

    def needs(self, model: str) -> str:
        """What switches on the provider of a known model, as a sentence naming its variable."""
        provider = self.known_models.get(model).provider
        own = self.provider_settings[provider]
        variable = own.key_variable() if isinstance(own, RemoteSettings) else None
        return f"{model} needs {variable}" if variable else f"{model} needs the {provider} provider's settings"

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

    def run_generation(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn`` in the generation pool; its future is the caller's to wait on."""
        with self._lock:
            self._in_flight += 1
        future = self.generations.submit(fn, *args)
        future.add_done_callback(self._generation_done)
        return future

    def check_generation_room(self, needed: int = 1) -> None:
        """Refuse, before anything is written, generations that would wait behind a full backlog
        (``needed`` of them: a comparison's image columns start together or not at all)."""
        room = self.settings.image_concurrency + self.settings.image_backlog
        with self._lock:
            waiting = self._in_flight
        if waiting + needed > room:
            raise RateLimited(
                f"{waiting} image generations are running or waiting here (at most {room})"
                + (f", so {needed} more do not fit" if needed > 1 else "")
                + "; try again shortly",
                retry_after_s=max(1.0, self.settings.image_deadline_s / 60),
            )

    def _generation_done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._in_flight -= 1

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
        self.spool.close()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()
        self.db.dispose()
