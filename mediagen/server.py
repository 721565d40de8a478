"""The app server process's services: one Studio, and (unless ``MEDIAGEN_WORKER_IN_APP=false``)
one worker in the same process.

The Streamlit lifespan calls ``start``/``stop`` once per server process. Code that runs without
the lifespan (``AppTest``, scripts) gets the same Studio lazily from ``studio()``, with no worker.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable

from .config import Settings
from .studio import Studio
from .worker.loop import Worker

log = logging.getLogger(__name__)
_lock = threading.Lock()
_studio: Studio | None = None
_worker: Worker | None = None


def studio() -> Studio:
    global _studio
    with _lock:
        if _studio is None:
            _studio = Studio.open(Settings(), role="app")
        return _studio


def worker() -> Worker | None:
    """This process's worker, when it runs one."""
    return _worker


def _log_to_stderr() -> None:
    """The studio's own messages (worker ticks, storage set-up, provider trouble) in the server's
    log beside Streamlit's, at INFO; Streamlit configures only its own loggers."""
    ours = logging.getLogger("mediagen")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)


def start(address: str | None = None, port: int | None = None, sign_in: Callable[[], bool] = lambda: False) -> Studio:
    """Open the studio and, unless turned off, start this process's worker; idempotent. Given the
    address and port it listens on, media URLs follow them (and are signed while ``sign_in()``)."""
    global _worker
    _log_to_stderr()
    current = studio()
    if port is not None:
        current.serving.here(address, port, sign_in)
    for note in current.storage.prepare():
        log.info("storage: %s", note)
    with _lock:
        if _worker is None and current.settings.worker_in_app:
            _worker = Worker(current)
            _worker.start()
            log.info("worker started in the app process (every %s s)", current.settings.poll_interval_s)
        elif not current.settings.worker_in_app:
            log.info("no worker in the app process (MEDIAGEN_WORKER_IN_APP=false): separate workers do that work")
    _freeze_start_up_heap()
    return current


def _freeze_start_up_heap() -> None:
    """Move what start-up allocated (Streamlit, pandas, SQLAlchemy, PyAV: some 180,000 objects
    that live as long as the process) out of the collector's reach. Otherwise each full
    collection walks them all, an 85 ms pause that every request in flight waits out: it was
    the API's whole p99 (bench/api_reads.py, docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()


def stop() -> None:
    global _studio, _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None
        if _studio is not None:
            _studio.serving.leave()
            _studio.close()
            _studio = None


def use(custom: Studio | None) -> None:
    """Install a Studio built elsewhere (tests give one with a temp data dir); None forgets it."""
    global _studio
    with _lock:
        _studio = custom
