"""APScheduler wiring only: run ``poller.tick`` every ``poll_interval_s`` in a background thread."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from .models import utcnow
from .poller import default_worker_id, tick
from .studio import Studio

log = logging.getLogger(__name__)
JOB_ID = "mediagen-poller"


def start_scheduler(studio: Studio) -> BackgroundScheduler:
    worker_id = default_worker_id()

    def run_tick() -> None:
        outcomes = tick(studio, worker_id=worker_id)
        if outcomes:
            log.info("poller tick: %s", dict(outcomes))

    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        run_tick,
        "interval",
        seconds=studio.settings.poll_interval_s,
        id=JOB_ID,
        next_run_time=utcnow(),
        coalesce=True,  # after a long tick, run once, not once per missed interval
        max_instances=1,  # never two ticks of this process at once
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler
