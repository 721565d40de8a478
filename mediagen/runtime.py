"""The process-wide services: one Studio, and in a server process one poller scheduler.

The Streamlit lifespan calls ``start``/``stop`` once per server process. Code that runs without
the lifespan (``AppTest``, scripts) gets the same Studio lazily from ``studio()``, with no
scheduler.
"""

from __future__ import annotations

import logging
import threading

from apscheduler.schedulers.base import BaseScheduler

from .config import Settings
from .studio import Studio

log = logging.getLogger(__name__)
_lock = threading.Lock()
_studio: Studio | None = None
_scheduler: BaseScheduler | None = None


def studio() -> Studio:
    global _studio
    with _lock:
        if _studio is None:
            _studio = Studio.open(Settings())
        return _studio


def scheduler() -> BaseScheduler | None:
    return _scheduler


def start() -> Studio:
    """Open the studio and start the poller; idempotent."""
    global _scheduler
    from .scheduler import start_scheduler

    current = studio()
    for note in current.storage.prepare():
        log.info("storage: %s", note)
    with _lock:
        if _scheduler is None:
            _scheduler = start_scheduler(current)
            log.info("poller started (every %s s)", current.settings.poll_interval_s)
    return current


def stop() -> None:
    global _studio, _scheduler
    with _lock:
        if _scheduler is not None and _studio is not None:
            from .scheduler import stop_scheduler

            stop_scheduler(_studio, _scheduler)  # type: ignore[arg-type]
            _scheduler = None
        if _studio is not None:
            _studio.close()
            _studio = None


def use(custom: Studio | None) -> None:
    """Install a Studio built elsewhere (tests give one with a temp data dir); None forgets it."""
    global _studio
    with _lock:
        _studio = custom
