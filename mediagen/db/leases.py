"""Leases: the one way a worker takes a row to work on, for every claimable table.

A lease is ``lease_owner`` and ``lease_until`` on the row (``tables.Leased``). A claim picks due rows
whose lease is free or expired and makes them the claimer's until ``now + lease_s``; rows another
claimer is locking at that moment are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's
write lock serialises claimers). A worker that dies simply stops renewing: its rows come free when
the lease runs out and the next claim takes them over. Claims hold no lock beyond their own short
transaction, so they work through a transaction-mode connection pooler too.

Periodic chores use the same claim on a ``HousekeepingTask`` row per chore (``take_turn`` /
``end_turn``): whoever leases the row runs the chore and sets when it is next due, so with N workers
each chore runs once per period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.orm import Session

from .engine import Database, dialect_insert
from .tables import HousekeepingTask, Job, Leased, StorageDeletion, WebhookDelivery, utcnow

L = TypeVar("L", bound=Leased)


def lease_free(table: type[Leased], now: datetime) -> ColumnElement[bool]:
    return or_(table.lease_until.is_(None), table.lease_until < now)


def claim(
    session: Session,
    table: type[L],
    *,
    due: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    owner: str,
    lease_s: float,
    now: datetime,
) -> list[L]:
    """Lease up to ``limit`` rows of ``table`` that are ``due`` and not leased by anyone else, in
    ``order_by`` order, to ``owner`` until ``now + lease_s``; within the caller's write transaction."""
    query = select(table).where(due, lease_free(table, now)).order_by(*order_by).limit(limit)
    rows = list(session.scalars(query.with_for_update(skip_locked=True)))
    until = now + timedelta(seconds=lease_s)
    for row in rows:
        row.lease_owner, row.lease_until = owner, until
    return rows


def release(row: Leased) -> None:
    row.lease_owner = row.lease_until = None


CLAIMABLE: tuple[type[Leased], ...] = (Job, WebhookDelivery, StorageDeletion, HousekeepingTask)


def release_all(db: Database, owner: str) -> int:
    """Hand back every row ``owner`` holds, in every claimable table, so they are claimable at
    once rather than when their leases run out: for an owner that no longer works on any of
    them. How many rows."""
    with db.write() as session:
        released = 0
        for table in CLAIMABLE:
            done = session.execute(
                update(table).where(table.lease_owner == owner).values(lease_owner=None, lease_until=None)
            )
            released += cast(CursorResult[Any], done).rowcount
        return released


@dataclass(frozen=True)
class Turn:
    """A chore leased to one worker: its name, and who holds it."""

    name: str
    owner: str


def take_turn(db: Database, name: str, owner: str, *, lease_s: float, now: datetime | None = None) -> Turn | None:
    """The chore ``name`` for ``owner`` if it is due and nobody holds it; None otherwise. The check
    is a read first, so the many ticks on which a chore is not due write nothing."""
    now = now or utcnow()
    with db.read() as session:
        row = session.get(HousekeepingTask, name)
        if row is not None and (row.next_run_at > now or (row.lease_until is not None and row.lease_until > now)):
            return None
    with db.write() as session:
        # The first worker to meet a chore writes its row; a concurrent first meeting does nothing.
        session.execute(
            dialect_insert(session)(HousekeepingTask).values(name=name, next_run_at=now).on_conflict_do_nothing()
        )
        due = (HousekeepingTask.name == name) & (HousekeepingTask.next_run_at <= now)
        taken = claim(session, HousekeepingTask, due=due, order_by=(), limit=1, owner=owner, lease_s=lease_s, now=now)
    return Turn(name, owner) if taken else None


def end_turn(
    db: Database,
    turn: Turn,
    *,
    next_in_s: float,
    outcome: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Release the chore and make it due again in ``next_in_s`` (0: at the next tick). A turn whose
    lease ran out meanwhile (another worker holds the chore now) changes nothing."""
    now = utcnow()
    with db.write() as session:
        row = session.get(HousekeepingTask, turn.name)
        if row is None or row.lease_owner != turn.owner:
            return
        release(row)
        row.last_run_at, row.next_run_at = now, now + timedelta(seconds=next_in_s)
        row.last_outcome, row.last_error = outcome, error
