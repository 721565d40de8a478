"""The retention policy against a real SQLite database and real local storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from mediagen.db.tables import Favourite, Job
from mediagen.jobs import actions
from mediagen.library import retention


def _age(studio, job_id: str, days: int) -> None:
    with studio.db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(created_at=datetime.now(UTC) - timedelta(days=days)))


def test_no_policy_no_report(studio) -> None:
    assert studio.settings.retention_days is None
    assert retention.report(studio) is None


def test_the_dry_run_counts_old_finished_jobs_and_keeps_treasured_ones(studio) -> None:
    studio.settings = studio.settings.model_copy(update={"retention_days": 30})
    old = actions.generate_image(studio, "old", params={"size": "256x256", "n": 2})
    starred = actions.generate_image(studio, "old but starred", params={"size": "256x256"})
    actions.generate_image(studio, "recent", params={"size": "256x256"})
    waiting = actions.submit_video(studio, "old but still queued")
    for job in (old, starred, waiting):
        _age(studio, job.id, 40)
    with studio.db.write() as session:
        session.add(Favourite(owner="local", asset_id=starred.assets[0].id))

    plan = retention.report(studio)
    assert plan is not None and plan.dry_run and plan.days == 30
    assert (plan.jobs, plan.assets, plan.kept) == (1, 2, 1)
    assert plan.bytes == sum(asset.bytes for asset in old.assets)
    assert plan.oldest is not None and plan.oldest < plan.cutoff
    with studio.db.read() as session:
        assert list(session.scalars(retention.expired_jobs(plan.cutoff))) == [old.id]


def test_the_system_page_shows_the_dry_run(app, studio) -> None:
    studio.settings = studio.settings.model_copy(update={"retention_days": 7})
    old = actions.generate_image(studio, "old", params={"size": "256x256"})
    _age(studio, old.id, 8)
    app.switch_page("pages/system.py").run()
    assert not app.exception, app.exception
    [info] = [i.value for i in app.info if "retention" in i.value.lower() or "would delete" in i.value]
    assert "would delete 1 job(s) with 1 file(s)" in info and "(7 days)" in info
    assert any("Dry run" in c.value for c in app.caption)
