"""APScheduler wiring: run ``poller.tick`` and then the due webhook deliveries every
``poll_interval_s`` in a background thread, and record a heartbeat per tick, so the System page
can tell a live poller from a dead one."""

from __future__ import annotations

import logging
from collections import Counter

from apscheduler.schedulers.background import BackgroundScheduler

from .models import WorkerHeartbeat, utcnow
from .poller import default_worker_id, tick
from .studio import Studio
from .webhooks import deliver_due

log = logging.getLogger(__name__)
JOB_ID = "mediagen-poller"


def run_tick(studio: Studio, worker_id: str) -> Counter[str]:
    """One tick that never raises: an exception is logged and recorded, and the next tick runs."""
    outcomes: Counter[str] = Counter()
    error = None
    try:
        outcomes = tick(studio, worker_id=worker_id, background_copies=True)
        if outcomes:
            log.info("poller tick: %s", dict(outcomes))
    except Exception as exc:
        log.exception("poller tick failed")
        error = f"{type(exc).__name__}: {exc}"
    try:
        # After the poll, so a job finished in this tick has its webhook sent in this tick.
        outcomes.update({f"webhook_{k}": v for k, v in deliver_due(studio, worker_id).items()})
    except Exception as exc:
        log.exception("webhook delivery failed")
        error = error or f"{type(exc).__name__}: {exc}"
    try:
        with studio.db.write() as session:
            beat = session.get(WorkerHeartbeat, worker_id) or WorkerHeartbeat(worker_id=worker_id, ticks=0)
            beat.last_tick_at = utcnow()
            beat.ticks += 1
            beat.last_outcome = dict(outcomes)
            beat.last_error = error
            session.add(beat)
    except Exception:
        log.exception("could not record the poller heartbeat")
    return outcomes


def start_scheduler(studio: Studio) -> BackgroundScheduler:
    worker_id = default_worker_id()
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        run_tick,
        "interval",
        args=(studio, worker_id),
        seconds=studio.settings.poll_interval_s,
        id=JOB_ID,
        next_run_time=utcnow(),
        coalesce=True,  # after a long tick, run once, not once per missed interval
        max_instances=1,  # never two ticks of this process at once
        misfire_grace_time=None,
    )
    scheduler.start()
    scheduler.mediagen_worker_id = worker_id  # type: ignore[attr-defined]
    return scheduler


def stop_scheduler(studio: Studio, scheduler: BackgroundScheduler) -> None:
    scheduler.shutdown(wait=True)
    worker_id = getattr(scheduler, "mediagen_worker_id", None)
    with studio.db.write() as session:
        beat = session.get(WorkerHeartbeat, worker_id) if worker_id else None
        if beat is not None:
            beat.stopped_at = utcnow()
