"""Leases: the one claim every claimable row goes through, and chores taken once per period
however many workers ask (real SQLite and PostgreSQL, several threads claiming at once)."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from mediagen.config import Settings
from mediagen.db import leases
from mediagen.db.tables import HousekeepingTask, Job, StorageDeletion, WebhookDelivery, utcnow
from mediagen.jobs import actions
from mediagen.studio import Studio
from mediagen.webhooks.delivery import deliver_due
from mediagen.worker.loop import Worker

from ..library.test_retention import _age
from ..support.webhook_receiver import Receiver

SMALL = {"size": "256x256"}


def _outbox(studio, n: int) -> None:
    with studio.db.write() as session:
        session.add_all(StorageDeletion(key=f"gone/{i}.png") for i in range(n))


def _claim(studio, owner: str, now, limit: int = 10) -> list[int]:
    with studio.db.write() as session:
        rows = leases.claim(
            session,
            StorageDeletion,
            due=StorageDeletion.id.is_not(None),
            order_by=(StorageDeletion.id,),
            limit=limit,
            owner=owner,
            lease_s=60,
            now=now,
        )
        return [row.id for row in rows]


def test_a_claimed_row_is_nobody_elses_until_its_lease_runs_out(studio) -> None:
    _outbox(studio, 3)
    now = utcnow()
    assert len(_claim(studio, "a", now, limit=2)) == 2
    [third] = _claim(studio, "b", now)  # only the row a did not take
    assert _claim(studio, "c", now + timedelta(seconds=59)) == []
    taken_over = _claim(studio, "c", now + timedelta(seconds=61))  # a and b died: c takes over
    assert len(taken_over) == 3 and third in taken_over
    with studio.db.read() as session:
        owners = Counter(session.scalars(select(StorageDeletion.lease_owner)))
    assert owners == {"c": 3}


def test_concurrent_claimers_share_rows_without_overlap(studio) -> None:
    _outbox(studio, 40)
    got: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        start.wait()
        got[name] = _claim(studio, name, utcnow(), limit=10)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row for rows in got.values() for row in rows]
    assert len(every) == len(set(every)) == 40


def test_a_chore_is_taken_once_per_period_by_one_of_many(studio) -> None:
    start = threading.Barrier(5)
    turns: list[leases.Turn] = []

    def worker(name: str) -> None:
        start.wait()
        turn = leases.take_turn(studio.db, "nightly", name, lease_s=60)
        if turn is not None:
            turns.append(turn)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [turn] = turns
    assert leases.take_turn(studio.db, "nightly", "late", lease_s=60) is None  # held
    leases.end_turn(studio.db, turn, next_in_s=3600, outcome={"done": 1})
    assert leases.take_turn(studio.db, "nightly", "late", lease_s=60) is None  # not due for an hour
    later = utcnow() + timedelta(hours=1, seconds=1)
    assert leases.take_turn(studio.db, "nightly", "late", lease_s=60, now=later) is not None
    with studio.db.read() as session:
        row = session.get(HousekeepingTask, "nightly")
    assert row.lease_owner == "late" and row.last_outcome == {"done": 1}


def test_a_turn_whose_lease_ran_out_ends_nothing(studio) -> None:
    now = utcnow()
    stale = leases.take_turn(studio.db, "chore", "slow", lease_s=10, now=now - timedelta(seconds=20))
    fresh = leases.take_turn(studio.db, "chore", "quick", lease_s=10, now=now)
    assert stale is not None and fresh is not None
    leases.end_turn(studio.db, stale, next_in_s=0, outcome={"by": "slow"})  # too late: quick holds it
    with studio.db.read() as session:
        row = session.get(HousekeepingTask, "chore")
    assert row.lease_owner == "quick" and row.last_outcome is None


def test_three_workers_run_retention_once(studio) -> None:
    made = [actions.generate_image(studio, f"old {i}", params=SMALL) for i in range(3)]
    for job in made:
        _age(studio, job.id, 40)
    studio.settings = studio.settings.model_copy(update={"retention_days": 30, "retention_dry_run": False})
    workers = [Worker(studio, f"w{i}") for i in range(3)]
    start = threading.Barrier(3)
    deleted: list[int] = []

    def tick(worker: Worker) -> None:
        start.wait()
        deleted.append(worker.run_tick().housekeeping["retention_deleted"])

    threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(deleted) == [0, 0, 3]  # one worker had the turn; the others found it taken
    with studio.db.read() as session:
        ran = session.scalar(
            select(func.count()).select_from(HousekeepingTask).where(HousekeepingTask.name == "retention")
        )
    assert ran == 1


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def hooked(settings: Settings) -> Iterator[tuple[Studio, Receiver]]:
    """A studio that sends webhooks, and a receiver on loopback."""
    receiver = Receiver(SECRET)
    studio = Studio.open(settings.model_copy(update={"webhook_secret": SecretStr(SECRET)}))
    yield studio, receiver
    studio.close()
    receiver.close()


def _ended_with_webhooks(studio: Studio, url: str, n: int) -> None:
    for i in range(n):
        job = actions.submit_video(studio, f"clip {i}", params={"duration": 1, "size": "128x72"}, webhook_url=url)
        actions.cancel_job(studio, job.id)  # a final state: its delivery is written with it


def test_three_workers_deliver_each_webhook_once(hooked) -> None:
    studio, receiver = hooked
    _ended_with_webhooks(studio, receiver.url, 30)
    start = threading.Barrier(3)

    def worker(name: str) -> None:
        start.wait()
        while deliver_due(studio, name):
            pass

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with studio.db.read() as session:
        deliveries = session.execute(select(WebhookDelivery.id, WebhookDelivery.status)).all()
    assert {status for _, status in deliveries} == {"delivered"}
    assert sorted(receiver.ids()) == sorted(delivery_id for delivery_id, _ in deliveries)  # each sent once


def test_a_dead_workers_webhook_is_sent_by_another_once_its_lease_runs_out(hooked) -> None:
    studio, receiver = hooked
    _ended_with_webhooks(studio, receiver.url, 1)
    now = utcnow()
    with studio.db.write() as session:  # a worker claims the delivery, then dies before sending it
        [held] = leases.claim(
            session,
            WebhookDelivery,
            due=WebhookDelivery.status == "pending",
            order_by=(),
            limit=1,
            owner="dead",
            lease_s=60,
            now=now,
        )
    assert deliver_due(studio, "alive", now=now + timedelta(seconds=59)) == Counter()
    assert receiver.ids() == []
    assert deliver_due(studio, "alive", now=now + timedelta(seconds=61)) == Counter(delivered=1)
    assert receiver.ids() == [held.id]


def test_release_all_hands_back_every_row_an_owner_holds_and_only_those(studio) -> None:
    """What a worker does once the database answers again after an outage: the work the outage cut
    off is claimable at once, not when its leases run out; other owners' rows stay theirs."""
    _outbox(studio, 4)
    job = actions.submit_video(studio, "tide", params={"duration": 1, "size": "128x72"})
    now = utcnow()
    mine = _claim(studio, "me", now, limit=3)
    theirs = _claim(studio, "them", now)
    assert leases.take_turn(studio.db, "chore", "me", lease_s=600) is not None
    with studio.db.write() as session:
        leases.claim(session, Job, due=Job.id == job.id, order_by=(), limit=1, owner="me", lease_s=600, now=now)

    assert leases.release_all(studio.db, "me") == len(mine) + 2
    assert sorted(_claim(studio, "next", now)) == sorted(mine)  # free again, at once
    with studio.db.read() as session:
        assert session.get(Job, job.id).lease_owner is None
        assert session.get(HousekeepingTask, "chore").lease_owner is None
        assert session.scalars(select(StorageDeletion.lease_owner).where(StorageDeletion.id.in_(theirs))).all() == [
            "them"
        ]
    assert leases.release_all(studio.db, "me") == 0
