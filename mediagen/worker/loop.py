"""A worker: every ``poll_interval_s`` a background thread (APScheduler) runs a sweep of due jobs
(``sweep.tick``), then the housekeeping chores, and records a heartbeat, so the System page can
tell a live worker from a dead one. While jobs are in flight it runs those ticks back to back
(each keeps polling jobs as they come due), so a job is polled one interval after its last poll,
not whenever the next interval boundary happens to fall.

While the database is out of reach a tick does nothing but find that out (the engine logs the
outage once, and its end); afterwards the worker first hands back whatever it still holds a lease
on (a progress write or a result the outage cut off), so that work goes on at once instead of
when those leases run out.

The app server runs one inside its own process unless ``MEDIAGEN_WORKER_IN_APP=false``;
``python -m mediagen worker`` runs one on its own.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler

from ..db import leases
from ..db.tables import WorkerHeartbeat, utcnow
from ..errors import DatabaseUnavailable
from ..studio import Studio, new_owner_id
from . import housekeeping
from .downloads import Downloads
from .step import StepOutcome
from .sweep import tick

log = logging.getLogger(__name__)
JOB_ID = "mediagen-worker"
# A scheduled tick keeps polling jobs as they come due for this many poll intervals, then does
# the housekeeping and beats; the next tick starts at once (the interval has passed).
KEEP_POLLING_INTERVALS = 2
# Polls that found jobs still queued or running at the provider are no news for the log: each
# job's progress shows them.
NO_NEWS = frozenset({StepOutcome.QUEUED, StepOutcome.RUNNING})


@dataclass
class TickReport:
    """What one tick did: the steps of jobs it advanced, the chores it did, and its first error."""

    steps: Counter[StepOutcome] = field(default_factory=Counter)
    housekeeping: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def busy(self) -> bool:
        """Jobs were in flight: the next tick should follow at once."""
        return bool(self.steps)

    def counts(self) -> dict[str, int]:
        return {str(outcome): count for outcome, count in self.steps.items()} | dict(self.housekeeping)


class Worker:
    def __init__(self, studio: Studio, worker_id: str | None = None) -> None:
        self.studio = studio
        self.worker_id = worker_id or new_owner_id()
        self.copies = Downloads(studio.settings.download_concurrency)
        self.stopping = threading.Event()  # set by ``stop``: a tick waiting for jobs stops waiting
        self._scheduler: BackgroundScheduler | None = None
        # The database outages this worker has taken stock after (``Reachability.outages``).
        self._outages_handled = studio.db.reachability.outages

    def run_tick(self) -> TickReport:
        """One tick as the schedule runs it (copies in the background, polling jobs as they come
        due for a while), then housekeeping and a heartbeat. Never raises: an error is logged
        and recorded, and the next tick runs."""
        keep_polling_s = self.studio.settings.poll_interval_s * KEEP_POLLING_INTERVALS
        return self._tick(copies=self.copies, keep_polling_s=keep_polling_s, beat=True)

    def run_once(self) -> TickReport:
        """One tick that copies results itself and waits for in-process renders (``worker
        --once``, as from cron): when it returns, the work it started is done."""
        report = self._tick(copies=None, keep_polling_s=0.0, beat=False)
        self.studio.drain()
        return report

    def _tick(self, *, copies: Downloads | None, keep_polling_s: float, beat: bool) -> TickReport:
        report = TickReport()
        try:
            self._take_stock_after_outage()
            report.steps, report.error = self._sweep(copies, keep_polling_s)
            report.housekeeping, chore_error = housekeeping.run(self.studio, self.worker_id)
            report.error = report.error or chore_error
            if beat:
                self._beat(report)
        except DatabaseUnavailable as exc:
            # Logged once per outage by the engine; chores and the heartbeat need the database too.
            report.error = str(exc)
        return report

    def _sweep(self, copies: Downloads | None, keep_polling_s: float) -> tuple[Counter[StepOutcome], str | None]:
        """The tick's sweep of due jobs, and its error: anything but the database being away is
        logged and recorded, and the chores still run."""
        try:
            steps = tick(
                self.studio,
                worker_id=self.worker_id,
                copies=copies,
                keep_polling_s=keep_polling_s,
                stopping=self.stopping,
            )
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            log.exception("worker tick failed")
            return Counter(), f"{type(exc).__name__}: {exc}"
        if steps:
            level = logging.DEBUG if steps.keys() <= NO_NEWS else logging.INFO
            log.log(level, "worker tick: %s", {str(outcome): n for outcome, n in steps.items()})
        return steps, None

    def _take_stock_after_outage(self) -> None:
        """After the database was out of reach (anywhere in this process), hand back every lease
        this worker holds: each one's work was cut off, and nothing of it runs any more once the
        copies under way have ended. Raises ``DatabaseUnavailable`` while it is still away."""
        outages = self.studio.db.reachability.outages
        if outages == self._outages_handled:
            return
        self.copies.wait()
        handed_back = leases.release_all(self.studio.db, self.worker_id)
        self._outages_handled = outages
        if handed_back:
            log.info("worker %s handed back %d leased row(s) the database outage cut off", self.worker_id, handed_back)

    def _beat(self, report: TickReport) -> None:
        try:
            with self.studio.db.write() as session:
                row = session.get(WorkerHeartbeat, self.worker_id) or WorkerHeartbeat(worker_id=self.worker_id, ticks=0)
                row.last_tick_at = utcnow()
                row.ticks += 1
                row.last_outcome = report.counts()
                row.last_error = report.error
                session.add(row)
        except DatabaseUnavailable:
            raise
        except Exception:
            log.exception("could not record the worker heartbeat")

    def _poll_while_busy(self) -> None:
        """Ticks back to back until one finds nothing to advance; then the interval trigger takes over.

        (The trigger keeps firing meanwhile and APScheduler skips those runs, see ``_ExpectedSkips``.
        Pausing the trigger from here instead can deadlock: ``shutdown`` holds the job store lock
        while it waits for this very run to end.)
        """
        while not self.stopping.is_set():
            if not self.run_tick().busy:
                return

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        scheduler = BackgroundScheduler(daemon=True)
        logging.getLogger("apscheduler.scheduler").addFilter(_skip_filter)  # a no-op when already added
        scheduler.add_job(
            self._poll_while_busy,
            "interval",
            seconds=self.studio.settings.poll_interval_s,
            id=JOB_ID,
            next_run_time=utcnow(),
            coalesce=True,  # after a long run, run once, not once per missed interval
            max_instances=1,  # never two of this worker's loops at once
            misfire_grace_time=None,
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop ticking, let background copies finish, and mark the heartbeat stopped."""
        self.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        self.copies.wait()
        self.copies.close()
        with self.studio.db.write() as session:
            row = session.get(WorkerHeartbeat, self.worker_id)
            if row is not None:
                row.stopped_at = utcnow()


class _ExpectedSkips(logging.Filter):
    """Drop APScheduler's warning that it skipped our worker while its previous run goes on: the
    run outlives its interval on purpose while jobs are in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        skipped = "maximum number of running instances" in str(record.msg)
        return not (skipped and any(Worker._poll_while_busy.__name__ in str(arg) for arg in record.args or ()))


_skip_filter = _ExpectedSkips()
