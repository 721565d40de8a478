"""Stars, collections and deleting jobs with every stored object: against a real SQLite database,
the local storage folder, and S3 in moto's server over real HTTP (zip downloads: test_zips)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select, update

from mediagen.config import Settings
from mediagen.db.tables import (
    Asset,
    CollectionAsset,
    Favourite,
    HousekeepingTask,
    Job,
    JobEvent,
    StorageDeletion,
    utcnow,
)
from mediagen.errors import InvalidInput, NotFound
from mediagen.jobs import actions, queries
from mediagen.library import collections, deletion, retention, stars
from mediagen.media import derive
from mediagen.studio import Studio
from mediagen.worker import housekeeping as worker_housekeeping

from ..conftest import housekeeping, stored_files
from ..support.s3_server import AWS_ENV, client, new_bucket
from .test_retention import _age

SMALL = {"size": "256x256"}


def objects(studio: Studio) -> list[str]:
    """Every object the studio's storage holds."""
    settings = studio.settings
    if settings.storage == "local":
        return stored_files(studio)
    listed = client(settings.s3_endpoint_url).list_objects_v2(Bucket=settings.s3_bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def _count(studio: Studio, model: type) -> int:
    with studio.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_stars_toggle_per_user(studio) -> None:
    job = actions.generate_image(studio, "a star", params=SMALL)
    asset_id = job.assets[0].id
    assert stars.toggle_star(studio, "ana", asset_id) is True
    assert stars.starred(studio, "ana", [asset_id]) == {asset_id}
    assert stars.starred(studio, "bo", [asset_id]) == set()
    assert stars.toggle_star(studio, "ana", asset_id) is False
    assert stars.starred(studio, "ana", [asset_id]) == set()
    with pytest.raises(NotFound, match="no asset with id 999"):
        stars.toggle_star(studio, "ana", 999)


def test_collections_are_named_per_owner_and_hold_assets_once(studio) -> None:
    job = actions.generate_image(studio, "two", params={**SMALL, "n": 2})
    ids = [a.id for a in job.assets]
    picks = collections.create_collection(studio, "ana", "  Launch   picks ")
    assert picks.name == "Launch picks"
    assert collections.create_collection(studio, "bo", "Launch picks").id != picks.id  # another owner's
    with pytest.raises(InvalidInput) as taken:
        collections.create_collection(studio, "ana", "Launch picks")
    assert taken.value.field == "collection name" and "already have" in str(taken.value)
    for bad, problem in (("   ", "must not be empty"), ("x" * 121, "121 characters long")):
        with pytest.raises(InvalidInput, match=problem):
            collections.create_collection(studio, "ana", bad)

    assert collections.add_to_collection(studio, "ana", picks.id, ids) == 2
    assert collections.add_to_collection(studio, "ana", picks.id, ids) == 0  # already there
    assert collections.collections_holding(studio, "ana", ids[0]) == [picks.id]
    with pytest.raises(NotFound):  # not bo's collection to fill
        collections.add_to_collection(studio, "bo", picks.id, ids)
    collections.remove_from_collection(studio, "ana", picks.id, ids[:1])
    assert collections.collections_holding(studio, "ana", ids[0]) == []
    collections.rename_collection(studio, "ana", picks.id, "Final picks")
    other = collections.create_collection(studio, "ana", "Other")
    with pytest.raises(InvalidInput, match="already have a collection called 'Final picks'"):
        collections.rename_collection(studio, "ana", other.id, "Final picks")
    with pytest.raises(InvalidInput, match="collection name: must not be empty"):
        collections.rename_collection(studio, "ana", other.id, "")
    with pytest.raises(NotFound):  # not bo's collection to rename
        collections.rename_collection(studio, "bo", other.id, "Mine now")
    assert [name for _, name in collections.collections_of(studio, "ana")] == ["Final picks", "Other"]
    collections.delete_collection(studio, "ana", picks.id)
    assert _count(studio, CollectionAsset) == 0 and _count(studio, Asset) == 2  # the assets stay


def test_deleting_jobs_removes_rows_and_every_object(any_studio) -> None:
    studio = any_studio
    keep = actions.generate_image(studio, "keep me", params=SMALL)
    kept_objects = objects(studio)
    gone = actions.generate_image(studio, "delete me", params={**SMALL, "n": 2})
    derive.derive(studio.storage, gone.assets[0], gone.kind, "webp")  # a cached conversion too
    retry = actions.retry_job(studio, actions.cancel_job(studio, actions.submit_video(studio, "v").id).id)
    old_video = queries.get_job(studio, retry.retried_from)
    stars.toggle_star(studio, "ana", gone.assets[0].id)
    picks = collections.create_collection(studio, "ana", "picks")
    collections.add_to_collection(studio, "ana", picks.id, [gone.assets[1].id])
    assert len(objects(studio)) == len(kept_objects) + 5  # 2 originals, 2 thumbnails, 1 WebP

    done = deletion.delete_jobs(studio, [gone.id, old_video.id])
    assert (done.jobs, done.objects_removed, done.objects_pending) == (2, len(deletion.stored_keys(gone)), 0)
    assert objects(studio) == kept_objects
    with studio.db.read() as session:
        assert set(session.scalars(select(Job.id))) == {keep.id, retry.id}
        assert session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == gone.id)) == 0
    assert _count(studio, Asset) == 1 and _count(studio, Favourite) == 0 and _count(studio, CollectionAsset) == 0
    assert _count(studio, StorageDeletion) == 0
    assert queries.get_job(studio, retry.id).retried_from is None  # the retry stays, unlinked


def test_active_jobs_are_refused_and_nothing_of_the_batch_is_deleted(studio) -> None:
    done = actions.generate_image(studio, "done", params=SMALL)
    queued = actions.submit_video(studio, "still waiting")
    before = stored_files(studio)
    with pytest.raises(InvalidInput, match=f"job {queued.id} is still queued; cancel it first"):
        deletion.delete_jobs(studio, [done.id, queued.id])
    with pytest.raises(NotFound, match="no job with id 'nope'"):
        deletion.delete_jobs(studio, [done.id, "nope"])
    assert stored_files(studio) == before and _count(studio, Job) == 2 and _count(studio, StorageDeletion) == 0


def test_an_object_that_cannot_be_removed_waits_in_the_outbox_until_it_can(studio) -> None:
    job = actions.generate_image(studio, "stubborn", params=SMALL)
    thumbnail = studio.settings.media_dir / job.assets[0].thumbnail_key
    thumbnail.unlink()
    (thumbnail / "in-the-way").mkdir(parents=True)  # a directory where the file was: unlink fails

    done = deletion.delete_jobs(studio, [job.id])
    assert (done.jobs, done.objects_pending) == (1, 1)
    assert _count(studio, Job) == 0
    with studio.db.read() as session:
        [waiting] = session.scalars(select(StorageDeletion))
    assert waiting.key == job.assets[0].thumbnail_key and waiting.attempts == 1 and "Error" in waiting.last_error

    assert deletion.drain_deletions(studio)["failed"] == 1  # still in the way
    backlog = deletion.deletion_backlog(studio)
    assert backlog.objects == 1 and backlog.oldest is not None and "Error" in (backlog.last_error or "")
    shutil.rmtree(thumbnail)  # now the key names nothing at all: removing it counts as done
    outcome = housekeeping(studio)  # the workers' housekeeping drains the outbox
    assert outcome["deletions_removed"] == 1 and _count(studio, StorageDeletion) == 0
    assert stored_files(studio) == []


def _end_backoff(studio: Studio, chore: str) -> None:
    """Make a housekeeping chore due now, as if its back-off had passed."""
    with studio.db.write() as session:
        session.execute(update(HousekeepingTask).where(HousekeepingTask.name == chore).values(next_run_at=utcnow()))


def _block(studio: Studio, key: str) -> None:
    """Put a directory where the object was, so removing it fails until the directory goes."""
    path = studio.settings.media_dir / key
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)


def test_objects_that_keep_failing_do_not_hold_up_the_rest(studio) -> None:
    stuck, later = (actions.generate_image(studio, prompt, params=SMALL) for prompt in ("stuck", "later"))
    for job in (stuck, later):
        _block(studio, job.assets[0].thumbnail_key)
        assert deletion.delete_jobs(studio, [job.id]).objects_pending == 1
    assert deletion.drain_deletions(studio, limit=1) == {"failed": 1}  # the older one, tried again
    shutil.rmtree(studio.settings.media_dir / later.assets[0].thumbnail_key)
    # Least tried first: the newer row (1 attempt) comes before the older one (2 attempts).
    assert deletion.drain_deletions(studio, limit=1) == {"removed": 1}
    with studio.db.read() as session:
        [left] = session.scalars(select(StorageDeletion))
    assert left.key == stuck.assets[0].thumbnail_key and left.attempts == 2


def test_a_storage_failure_on_s3_leaves_the_outbox_for_the_scheduler(s3_endpoint, tmp_path, monkeypatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        data_dir=tmp_path / "data", storage="s3", s3_bucket=new_bucket(s3_endpoint), s3_endpoint_url=s3_endpoint
    )
    studio = Studio.open(settings)
    # The same database, with storage that refuses every request: a bucket that is not there.
    broken = Studio(settings.model_copy(update={"s3_bucket": "no-such-bucket"}), db=studio.db)
    try:
        job = actions.generate_image(studio, "on s3", params={**SMALL, "n": 2})
        stored = objects(studio)
        assert len(stored) == 4

        done = deletion.delete_jobs(broken, [job.id])
        assert (done.jobs, done.objects_removed) == (1, 0) and done.objects_pending == len(deletion.stored_keys(job))
        assert _count(studio, Job) == 0 and _count(studio, Asset) == 0  # the rows went at once
        with studio.db.read() as session:
            waiting = session.scalars(select(StorageDeletion)).all()
        assert {row.key for row in waiting} == set(deletion.stored_keys(job))
        assert all(row.attempts == 1 and "NoSuchBucket" in (row.last_error or "") for row in waiting)
        assert objects(studio) == stored  # nothing removed, nothing forgotten

        assert housekeeping(broken)["deletions_failed"] == len(waiting)
        assert "deletions_failed" not in housekeeping(broken)  # backing off, not hammering storage
        # The back-off is every worker's (they share the storage): once it has passed, storage that
        # works again removes everything.
        _end_backoff(studio, "deletion-drain")
        assert housekeeping(studio)["deletions_removed"] == len(waiting)
        assert objects(studio) == [] and _count(studio, StorageDeletion) == 0
    finally:
        broken.close()
        studio.close()


def test_the_system_page_shows_files_waiting_for_removal(app, studio) -> None:
    job = actions.generate_image(studio, "stubborn", params=SMALL)
    app.switch_page("pages/system.py").run()
    assert any("No files of deleted jobs" in c.value for c in app.caption)
    _block(studio, job.assets[0].key)
    deletion.delete_jobs(studio, [job.id])
    app.run()
    [waiting] = [w.value for w in app.warning if "wait to be removed" in w.value]
    assert waiting.startswith("1 file") and "IsADirectoryError" in waiting  # (Markdown-escaped text)


def test_retention_deletes_for_real_only_without_the_dry_run(studio) -> None:
    old = actions.generate_image(studio, "old", params=SMALL)
    starred = actions.generate_image(studio, "old but starred", params=SMALL)
    recent = actions.generate_image(studio, "recent", params=SMALL)
    derive.derive(studio.storage, old.assets[0], old.kind, "jpeg")
    for job in (old, starred):
        _age(studio, job.id, 40)
    stars.toggle_star(studio, "local", starred.assets[0].id)
    everything = stored_files(studio)

    studio.settings = studio.settings.model_copy(update={"retention_days": 30})  # dry run by default
    assert retention.apply(studio) == 0
    assert "retention_deleted" not in housekeeping(studio)
    assert _count(studio, Job) == 3 and stored_files(studio) == everything

    studio.settings = studio.settings.model_copy(update={"retention_dry_run": False})
    assert housekeeping(studio)["retention_deleted"] == 1  # the workers apply it
    with studio.db.read() as session:
        assert set(session.scalars(select(Job.id))) == {starred.id, recent.id}
    assert stored_files(studio) == [f for f in everything if old.id not in f]  # JPEG copy included
    assert any(starred.id in f for f in stored_files(studio))
    assert _count(studio, StorageDeletion) == 0
    _age(studio, recent.id, 40)
    assert "retention_deleted" not in housekeeping(studio)  # once an hour, not every tick


def test_a_retention_backlog_is_worked_off_a_bounded_run_per_tick(studio, monkeypatch) -> None:
    monkeypatch.setattr(worker_housekeeping, "RETENTION_PER_RUN", 2)
    made = [actions.generate_image(studio, f"old {i}", params=SMALL) for i in range(5)]
    for job in made:
        _age(studio, job.id, 40)
    studio.settings = studio.settings.model_copy(update={"retention_days": 30, "retention_dry_run": False})
    assert [housekeeping(studio)["retention_deleted"] for _ in range(4)] == [2, 2, 1, 0]
    assert _count(studio, Job) == 0 and stored_files(studio) == []
