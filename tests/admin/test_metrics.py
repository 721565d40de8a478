"""Admin metrics: the daily roll-up written as jobs end, its rebuild and backfill, percentiles,
failure reasons, usage and cost, against a real SQLite database and the local provider."""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, update

from mediagen.admin import history, reports, rollup
from mediagen.config import ModelPrice, Settings
from mediagen.db.engine import Database, upgrade
from mediagen.db.tables import Job, JobDuration, JobStat
from mediagen.jobs import actions, browse, queries
from mediagen.jobs.status import JobStatus
from mediagen.worker.sweep import tick

from ..conftest import run_to_end

SMALL_VIDEO = {"size": "160x96", "duration": 1}
PRICES = {
    "local-image": ModelPrice(per_image={"256x256": 0.02, "*": 0.05}),
    "local-video": ModelPrice(per_second={"160x96": 0.10}),
}


def _lines(studio) -> dict[tuple, tuple[int, float]]:
    with studio.db.read() as session:
        return {
            (s.model, s.owner, s.kind, s.status, s.error_code, s.variant): (s.jobs, s.usage_units)
            for s in session.scalars(select(JobStat))
        }


def _buckets(studio) -> dict[tuple, int]:
    with studio.db.read() as session:
        return {(d.day, d.model, d.owner, d.kind, d.bucket): d.jobs for d in session.scalars(select(JobDuration))}


def _finish_video(studio, prompt: str = "waves") -> Job:
    return run_to_end(studio, actions.submit_video(studio, prompt, model="local-video", params=SMALL_VIDEO).id)


def _time_out(studio) -> Job:
    job = actions.submit_video(studio, "too slow", model="local-video", params=SMALL_VIDEO)
    with studio.db.write() as session:
        session.execute(
            update(Job).where(Job.id == job.id).values(deadline_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    tick(studio, worker_id="w")
    return queries.get_job(studio, job.id)


def _mixed_history(studio, scripted_failure) -> dict[str, Job]:
    made = {
        "two images": actions.generate_image(studio, "pair", params={"size": "256x256", "n": 2}),
        "one image": actions.generate_image(studio, "single", params={"size": "512x512"}),
        "video": _finish_video(studio),
        "canceled": actions.cancel_job(studio, actions.submit_video(studio, "never mind").id),
        "timed out": _time_out(studio),
        "failed": scripted_failure("no, not this one"),
    }
    assert made["timed out"].status == JobStatus.TIMED_OUT and made["failed"].status == JobStatus.FAILED
    return made


def test_every_ended_job_counts_once_on_its_line(studio, scripted_failure) -> None:
    _mixed_history(studio, scripted_failure)
    actions.submit_video(studio, "still queued: not counted")
    assert _lines(studio) == {
        ("local-image", "local", "image", "succeeded", "", "256x256"): (1, 2.0),
        ("local-image", "local", "image", "succeeded", "", "512x512"): (1, 1.0),
        ("local-video", "local", "video", "succeeded", "", "160x96"): (1, 1.0),
        ("local-video", "local", "video", "canceled", "canceled", "854x480"): (1, 0.0),  # the default size
        ("local-video", "local", "video", "timed_out", "timed_out", "160x96"): (1, 0.0),
        ("scripted-image", "local", "image", "failed", "content_policy", ""): (1, 0.0),
    }
    with studio.db.read() as session:
        video_line = session.scalars(select(JobStat).filter_by(status="succeeded", kind="video")).one()
        video = session.scalars(select(Job).where(Job.kind == "video", Job.status == "succeeded")).one()
        buckets = {(d.kind, d.bucket): d.jobs for d in session.scalars(select(JobDuration))}
    took = (video.finished_at - video.created_at).total_seconds()
    assert video_line.seconds_sum == pytest.approx(took)
    assert buckets[("video", rollup.bucket_of(took))] == 1
    assert sum(n for (kind, _), n in buckets.items() if kind == "image") == 2  # succeeded jobs only


def test_rebuild_gives_what_was_counted_live_and_deleting_a_job_keeps_its_line(studio, scripted_failure) -> None:
    made = _mixed_history(studio, scripted_failure)
    counted, timed = _lines(studio), _buckets(studio)
    with studio.db.engine.begin() as connection:
        assert rollup.rebuild(connection) == 6
    assert _lines(studio) == counted and _buckets(studio) == timed and sum(timed.values()) == 3

    with studio.db.write() as session:
        session.execute(delete(Job).where(Job.id == made["one image"].id))
    assert _lines(studio) == counted  # spend and outcomes stay in the metrics


def test_migration_0006_backfills_jobs_finished_before_it(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(db.engine, "0005")
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with db.engine.begin() as connection:
        for index, (status, seconds) in enumerate([("succeeded", 4.0), ("succeeded", 9.0), ("failed", 2.0)]):
            connection.execute(
                Job.__table__.insert().values(
                    id=f"old{index}",
                    kind="image",
                    status=status,
                    provider="openai",
                    model="gpt-image-1",
                    prompt="p",
                    params={"size": "1024x1024", "quality": "high", "n": 1},
                    owner="ana@example.com",
                    progress=100,
                    attempt=1,
                    transient_errors=0,
                    error_code="server_error" if status == "failed" else None,
                    created_at=created,
                    finished_at=created + timedelta(seconds=seconds),
                    updated_at=created,
                )
            )
    db.upgrade()
    with db.read() as session:
        lines = {s.status: s for s in session.scalars(select(JobStat))}
        buckets = {d.bucket: d.jobs for d in session.scalars(select(JobDuration))}
    assert buckets == {rollup.bucket_of(4.0): 1, rollup.bucket_of(9.0): 1}
    assert set(lines) == {"succeeded", "failed"}
    assert lines["succeeded"].jobs == 2 and lines["succeeded"].seconds_sum == pytest.approx(13.0)
    assert lines["succeeded"].variant == "1024x1024/high" and lines["succeeded"].usage_units == 2
    assert lines["failed"].error_code == "server_error" and lines["failed"].usage_units == 0
    assert str(lines["failed"].day) == "2026-03-01"
    db.dispose()


def test_percentiles_from_the_histogram_stay_within_one_bucket_of_the_exact_ones() -> None:
    rng = random.Random(7)
    durations = [rng.lognormvariate(math.log(40), 0.8) for _ in range(5000)]
    histogram = [0] * (len(rollup.BUCKET_BOUNDS) + 1)
    for seconds in durations:
        histogram[rollup.bucket_of(seconds)] += 1
    step = 2**0.25  # the buckets' ratio
    for q in (0.5, 0.95, 0.99):
        exact = float(np.percentile(durations, q * 100))
        estimate = rollup.percentile(histogram, q)
        assert estimate is not None and exact / step <= estimate <= exact * step, (q, exact, estimate)
    assert rollup.percentile([0] * 5, 0.5) is None
    beyond = [0] * len(rollup.BUCKET_BOUNDS) + [1]
    assert rollup.percentile(beyond, 0.5) == rollup.BUCKET_BOUNDS[-1]


def test_concurrent_endings_on_one_line_all_count(settings) -> None:
    """Upserts adding to one line from many transactions at once (SQLite: one writer at a time;
    PostgreSQL: INSERT ... ON CONFLICT DO UPDATE racing for the same new row)."""
    db = Database(settings.resolved_database_url)
    db.upgrade()
    now = datetime.now(UTC)
    with db.write() as session:
        for index in range(40):
            session.add(
                Job(id=f"j{index}", kind="video", status="running", provider="local", model="m", prompt="p", params={})
            )
    start = threading.Barrier(8)

    def end(first: int) -> None:
        start.wait()
        for index in range(first, 40, 8):
            with db.write() as session:
                job = session.get(Job, f"j{index}")
                job.status, job.finished_at = JobStatus.SUCCEEDED, now
                rollup.count_finished(session, job)

    threads = [threading.Thread(target=end, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.read() as session:
        [line] = session.scalars(select(JobStat))
        [bucket] = session.scalars(select(JobDuration))
    assert line.jobs == 40 and bucket.jobs == 40
    db.dispose()


def test_reports_per_model_failures_usage_and_cost(studio, scripted_failure) -> None:
    studio.settings = studio.settings.model_copy(update={"prices": PRICES})
    made = _mixed_history(studio, scripted_failure)
    scripted_failure("a newer refusal")
    lines = reports.stat_frame(studio, browse.JobFilters())

    summary = reports.overview(studio, lines, browse.JobFilters())
    assert summary.finished == 7 and summary.failures == 2 and summary.timeouts == 1
    assert summary.success_rate == pytest.approx(3 / 6)  # the canceled job is not a failure
    # 2 images at 0.02, 1 at the catch-all 0.05, 1 s of video at 0.10; the scripted model is unpriced
    # but made nothing, so nothing is missing from the cost.
    assert summary.cost_usd == pytest.approx(0.19) and summary.unpriced_models == []

    per_model = reports.by_model(studio, lines, browse.JobFilters()).set_index("model")
    assert per_model.loc["local-image", "jobs"] == 2 and per_model.loc["local-image", "success_rate"] == 1.0
    assert per_model.loc["local-video", ["succeeded", "canceled", "timed_out"]].tolist() == [1, 1, 1]
    assert per_model.loc["local-video", "success_rate"] == pytest.approx(0.5)
    assert per_model.loc["scripted-image", "success_rate"] == 0.0
    video = made["video"]
    took = (video.finished_at - video.created_at).total_seconds()
    # Within its log-spaced bucket; the first bucket spans 0 to its bound, a quick machine's usual case.
    low = 0.0 if took <= rollup.BUCKET_BOUNDS[0] else took / 2**0.25
    assert low <= per_model.loc["local-video", "p95_s"] <= max(took * 2**0.25, rollup.BUCKET_BOUNDS[0]) + 0.1
    assert math.isnan(per_model.loc["scripted-image", "p50_s"])

    reasons = reports.failure_reasons(studio, lines)
    assert reasons.to_dict("records") == [
        {
            "reason": "content_policy",
            "jobs": 2,
            "share": 2 / 3,
            "models": "scripted-image",
            "latest_message": "a newer refusal",
        },
        {
            "reason": "timed_out",
            "jobs": 1,
            "share": 1 / 3,
            "models": "local-video",
            "latest_message": made["timed out"].error_message,
        },
    ]

    by_model = reports.usage(lines, "model").set_index("model")
    assert by_model.loc["local-image", ["images", "cost_usd"]].tolist() == [3, 0.09]
    assert by_model.loc["local-video", ["video_s", "cost_usd"]].tolist() == [1.0, 0.1]
    assert reports.usage(lines, "owner").to_dict("records") == [
        {"owner": "local", "jobs": 7, "images": 3, "video_s": 1.0, "cost_usd": 0.19}
    ]


def test_usage_without_a_price_is_named_not_costed_as_zero(studio) -> None:
    studio.settings = studio.settings.model_copy(update={"prices": {"local-video": PRICES["local-video"]}})
    actions.generate_image(studio, "unpriced", params={"size": "256x256"})
    lines = reports.stat_frame(studio, browse.JobFilters())
    assert reports.overview(studio, lines, browse.JobFilters()).unpriced_models == ["local-image"]
    assert math.isnan(reports.usage(lines, "model").set_index("model").loc["local-image", "cost_usd"])


def test_filters_and_period_select_lines(studio, scripted_failure) -> None:
    _mixed_history(studio, scripted_failure)
    today = datetime.now(UTC).date()
    only_video = reports.stat_frame(studio, browse.JobFilters(kinds=["video"], since=today, until=today))
    assert set(only_video["model"]) == {"local-video"} and only_video["jobs"].sum() == 3
    times = reports.time_to_result(studio, browse.JobFilters(kinds=["image"]), by=("model",))
    assert list(times["model"]) == ["local-image"] and times.iloc[0]["p50_s"] >= 0
    assert reports.time_to_result(studio, browse.JobFilters(statuses=["failed"])).empty  # no result, no time
    tomorrow = today + timedelta(days=1)
    assert reports.stat_frame(studio, browse.JobFilters(since=tomorrow)).empty
    assert reports.daily(only_video).to_dict("index") == {today: {"canceled": 1, "succeeded": 1, "timed_out": 1}}


def test_status_counts_add_live_active_jobs_to_the_roll_up(studio, scripted_failure) -> None:
    _mixed_history(studio, scripted_failure)
    actions.submit_video(studio, "waiting")
    everything = browse.JobFilters()
    counts = history.status_counts(studio, everything, reports.stat_frame(studio, everything))
    assert counts == {"queued": 1, "running": 0, "succeeded": 3, "failed": 1, "canceled": 1, "timed_out": 1}
    failed = browse.JobFilters(statuses=["failed"])
    assert history.status_counts(studio, failed, reports.stat_frame(studio, failed))["queued"] == 0


@pytest.mark.parametrize(
    "prices, message",
    [
        ('{"m": {"per_image": {"*": 1}, "per_second": {"*": 1}}}', "either per_image or per_second"),
        ('{"m": {}}', "either per_image or per_second"),
        ('{"m": {"per_image": {"*": -1}}}', "greater than or equal to 0"),
        ('{"m": {"per_minute": {"*": 1}}}', "per_minute"),
    ],
)
def test_a_bad_price_table_is_refused_naming_the_problem(monkeypatch, prices, message) -> None:
    monkeypatch.setenv("MEDIAGEN_PRICES", prices)
    with pytest.raises(ValidationError, match=message) as caught:
        Settings()
    assert "prices" in str(caught.value)


def test_price_lookup_prefers_the_most_specific_key() -> None:
    prices = {"gpt-image-1": ModelPrice(per_image={"1024x1024/high": 0.17, "high": 0.2, "1024x1024": 0.04, "*": 0.01})}
    assert rollup.unit_price(prices, "gpt-image-1", "image", "1024x1024/high") == 0.17
    assert rollup.unit_price(prices, "gpt-image-1", "image", "1536x1024/high") == 0.2
    assert rollup.unit_price(prices, "gpt-image-1", "image", "1024x1024/low") == 0.04
    assert rollup.unit_price(prices, "gpt-image-1", "image", "1024x1536/low") == 0.01
    assert rollup.unit_price(prices, "gpt-image-1", "video", "720p") is None  # priced per image only
    assert rollup.unit_price(prices, "dall-e-3", "image", "1024x1024") is None
    assert rollup.price_variant("video", {"resolution": "768P", "duration": "6"}, {}) == "768P"
    assert rollup.price_variant("video", {}, {"width": 1280, "height": 720}) == "1280x720"
    assert rollup.price_variant("image", {"size": "1024x1024", "quality": "high", "n": 2}, {}) == "1024x1024/high"
    assert rollup.price_variant("image", {"aspect_ratio": "16:9"}, {}) == "16:9"
