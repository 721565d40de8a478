"""APScheduler wiring: every ``poll_interval_s``, a background thread runs ``poller.tick``, then
the due webhook deliveries and the library's housekeeping (the storage deletion outbox and the
retention policy), and records a heartbeat, so the System page can tell a live poller
from a dead one. While jobs are in flight it runs those ticks back to back (each keeps polling
jobs as they come due), so a job is polled one interval after its last poll, not whenever the
next interval boundary happens to fall."""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter

from apscheduler.schedulers.background import BackgroundScheduler

from . import retention
from .library import drain_deletions
from .models import WorkerHeartbeat, utcnow
from .poller import default_worker_id, tick
from .studio import Studio
from .webhooks import deliver_due

log = logging.getLogger(__name__)
JOB_ID = "mediagen-poller"
# A scheduled tick keeps polling jobs as they come due for this many poll intervals, then
# delivers webhooks and beats; the next tick starts at once (the interval has passed).
KEEP_POLLING_INTERVALS = 2


def run_tick(studio: Studio, worker_id: str) -> Counter[str]:
    """One tick that never raises: an exception is logged and recorded, and the next tick runs."""
    outcomes: Counter[str] = Counter()
    error = None
    try:
        keep_polling_s = studio.settings.poll_interval_s * KEEP_POLLING_INTERVALS
        outcomes = tick(studio, worker_id=worker_id, background_copies=True, keep_polling_s=keep_polling_s)
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
        # Objects of deleted jobs that could not be removed at once, and (hourly) the retention policy.
        outcomes.update({f"deletions_{k}": v for k, v in _drain_when_due(studio).items()})
        if _retention_due(studio):
            removed = retention.apply(studio, max_jobs=RETENTION_PER_RUN)
            if removed:
                outcomes["retention_deleted"] = removed
            if removed >= RETENTION_PER_RUN:  # more may be waiting: carry on next tick, not in an hour
                _retention_last_run.pop(studio, None)
    except Exception as exc:
        log.exception("library housekeeping failed")
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


RETENTION_EVERY_S = 3600
# Jobs one tick's retention run deletes at most, so polling never waits long behind it; a run
# that reaches it goes on at the next tick until the backlog is gone.
RETENTION_PER_RUN = 500
# After a drain in which nothing could be removed (storage down), wait this long before the
# next, so an outage costs one failing request a minute rather than one per tick.
DRAIN_BACKOFF_S = 60.0
# Per studio, not per id(): a closed studio's id can be reused by the next one (tests open many).
_retention_last_run: weakref.WeakKeyDictionary[Studio, float] = weakref.WeakKeyDictionary()
_drain_paused_until: weakref.WeakKeyDictionary[Studio, float] = weakref.WeakKeyDictionary()


def _retention_due(studio: Studio) -> bool:
    """At most once an hour per process and studio (unless a backlog is being worked off), and
    only with the policy on and for real."""
    if studio.settings.retention_days is None or studio.settings.retention_dry_run:
        return False
    now = time.monotonic()
    last = _retention_last_run.get(studio)
    if last is not None and now - last < RETENTION_EVERY_S:
        return False
    _retention_last_run[studio] = now
    return True


def _drain_when_due(studio: Studio) -> Counter[str]:
    if time.monotonic() < _drain_paused_until.get(studio, 0.0):
        return Counter()
    drained = drain_deletions(studio)
    if drained["failed"] and not drained["removed"]:
        _drain_paused_until[studio] = time.monotonic() + DRAIN_BACKOFF_S
    return drained


def poll_while_busy(studio: Studio, worker_id: str) -> None:
    """Ticks back to back until one finds nothing to poll; then the interval trigger takes over.

    (The trigger keeps firing meanwhile and APScheduler skips those runs, see ``_ExpectedSkips``.
    Pausing the trigger from here instead can deadlock: ``shutdown`` holds the job store lock
    while it waits for this very run to end.)
    """
    while not studio.stopping.is_set():
        outcomes = run_tick(studio, worker_id)
        if not any(not name.startswith(("webhook_", "deletions_", "retention_")) for name in outcomes):
            return


class _ExpectedSkips(logging.Filter):
    """Drop APScheduler's warning that it skipped our poller while its previous run goes on: the
    run outlives its interval on purpose while jobs are in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        skipped = "maximum number of running instances" in str(record.msg)
        return not (skipped and any(poll_while_busy.__name__ in str(arg) for arg in record.args or ()))


_skip_filter = _ExpectedSkips()


def start_scheduler(studio: Studio) -> BackgroundScheduler:
    worker_id = default_worker_id()
    scheduler = BackgroundScheduler(daemon=True)
    logging.getLogger("apscheduler.scheduler").addFilter(_skip_filter)  # a no-op when already added
    scheduler.add_job(
        poll_while_busy,
        "interval",
        args=(studio, worker_id),
        seconds=studio.settings.poll_interval_s,
        id=JOB_ID,
        next_run_time=utcnow(),
        coalesce=True,  # after a long run, run once, not once per missed interval
        max_instances=1,  # never two of this process's loops at once
        misfire_grace_time=None,
    )
    scheduler.start()
    scheduler.mediagen_worker_id = worker_id  # type: ignore[attr-defined]
    return scheduler


def stop_scheduler(studio: Studio, scheduler: BackgroundScheduler) -> None:
    studio.stopping.set()  # a tick waiting for jobs to come due stops waiting
    scheduler.shutdown(wait=True)
    worker_id = getattr(scheduler, "mediagen_worker_id", None)
    with studio.db.write() as session:
        beat = session.get(WorkerHeartbeat, worker_id) if worker_id else None
        if beat is not None:
            beat.stopped_at = utcnow()
