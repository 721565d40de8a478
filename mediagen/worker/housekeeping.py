"""Housekeeping: the chores every worker does after its tick, each taken through a lease so that
with any number of workers each happens once (``db.leases``).

- webhook deliveries: each due delivery is leased to one worker and sent by it;
- the storage deletion outbox: rows leased in batches; once per poll interval across all workers,
  and after a drain in which nothing could be removed (storage down) only once a minute;
- the retention policy: once an hour (sooner while a backlog is worked off), for real only with
  the dry run off;
- the download spool of this machine: the folders of processes that died (each process spools in
  a folder of its own, locked while it lives), swept once per poll interval by one worker of the
  machine;
- local storage's upload folder: temp files of uploads a killed process never finished, swept
  once a minute by one worker of the machine.

One chore failing is logged and recorded; it never stops the others nor the worker. A database
out of reach ends the round (the others need it too) and is the worker's to wait out.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..db import leases
from ..errors import DatabaseUnavailable
from ..library import retention
from ..library.deletion import deletions_waiting, drain_deletions
from ..media.spool import sweep_spool
from ..storage.local import LocalStorage
from ..studio import Studio
from ..webhooks.delivery import deliver_due

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
# Jobs one retention run deletes at most, so the tick never waits long behind it; a run that
# reaches it goes on at the next tick until the backlog is gone.
RETENTION_PER_RUN = 500
# After a drain in which nothing could be removed, wait this long: an outage then costs one
# failing request a minute rather than one per tick.
DRAIN_BACKOFF_S = 60.0
# A chore's lease: longer than any one run of it takes.
CHORE_LEASE_S = 600.0
# The sweeps take milliseconds and are safe to run twice at once (each folder's lock decides), so
# a worker killed during one holds up the next only briefly, not for a chore's ten minutes.
SWEEP_LEASE_S = 30.0
# Dead uploads only take disk space (they are never served), so a minute between sweeps is plenty.
UPLOAD_SWEEP_EVERY_S = 60.0


def run(studio: Studio, worker_id: str) -> tuple[Counter[str], str | None]:
    """Every chore that is this worker's to do now; what they did, and the first error if any."""
    done: Counter[str] = Counter()
    errors: list[str] = []

    def chore(name: str, work: Callable[[], Counter[Any]]) -> None:
        try:
            done.update({f"{name}_{what!s}": count for what, count in work().items() if count})
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            log.exception("housekeeping: %s failed", name)
            errors.append(f"{type(exc).__name__}: {exc}")

    # After the tick, so a job finished in it has its webhook sent at once.
    chore("webhook", lambda: deliver_due(studio, worker_id))
    chore("deletions", lambda: _drain(studio, worker_id))
    chore("retention", lambda: _retention(studio, worker_id))
    chore("spool", lambda: _sweep_spool(studio, worker_id))
    if isinstance(local := studio.storage, LocalStorage):
        chore("uploads", lambda: _sweep_uploads(studio, local, worker_id))
    return done, errors[0] if errors else None


def _drain(studio: Studio, worker_id: str) -> Counter[str]:
    if not deletions_waiting(studio):
        return Counter()
    turn = leases.take_turn(studio.db, "deletion-drain", worker_id, lease_s=CHORE_LEASE_S)
    if turn is None:
        return Counter()
    drained = drain_deletions(studio, owner=worker_id)
    stuck = drained["failed"] and not drained["removed"]
    leases.end_turn(
        studio.db, turn, next_in_s=DRAIN_BACKOFF_S if stuck else studio.settings.poll_interval_s, outcome=dict(drained)
    )
    return drained


def _retention(studio: Studio, worker_id: str) -> Counter[str]:
    if studio.settings.retention_days is None or studio.settings.retention_dry_run:
        return Counter()
    turn = leases.take_turn(studio.db, "retention", worker_id, lease_s=CHORE_LEASE_S)
    if turn is None:
        return Counter()
    deleted = retention.apply(studio, max_jobs=RETENTION_PER_RUN)
    backlog = deleted >= RETENTION_PER_RUN  # more may be waiting: carry on next tick, not in an hour
    leases.end_turn(studio.db, turn, next_in_s=0 if backlog else RETENTION_EVERY_S, outcome={"deleted": deleted})
    return Counter(deleted=deleted)


def _sweep_spool(studio: Studio, worker_id: str) -> Counter[str]:
    # The spool is on this machine's disk: one sweep per machine, whatever the workers elsewhere do.
    turn = leases.take_turn(studio.db, f"spool-sweep@{socket.gethostname()}", worker_id, lease_s=SWEEP_LEASE_S)
    if turn is None:
        return Counter()
    # Files of versions before per-process folders: a live download's is younger than the lease.
    removed = sweep_spool(studio.settings.spool_dir, legacy_older_than_s=studio.settings.lease_s)
    leases.end_turn(studio.db, turn, next_in_s=studio.settings.poll_interval_s, outcome={"removed": removed})
    return Counter(files_removed=removed)


def _sweep_uploads(studio: Studio, storage: LocalStorage, worker_id: str) -> Counter[str]:
    # The upload folder is on this machine's disk, like the spool: one sweep per machine.
    turn = leases.take_turn(studio.db, f"upload-sweep@{socket.gethostname()}", worker_id, lease_s=SWEEP_LEASE_S)
    if turn is None:
        return Counter()
    removed = storage.sweep_uploads()
    leases.end_turn(studio.db, turn, next_in_s=UPLOAD_SWEEP_EVERY_S, outcome={"removed": removed})
    return Counter(files_removed=removed)
