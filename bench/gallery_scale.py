"""Does the gallery stay instant as the library grows? Seeds N finished jobs with assets and times
the gallery's queries and the gallery and history pages under Streamlit's AppTest.

For each N (default 1k, 10k, 100k) and each database asked for (``--database``, SQLite by
default) a fresh data dir and database are migrated and seeded in bulk: image
and video jobs over 90 days from a few models and owners, prompts drawn from a vocabulary (so a
search word matches a few percent of jobs); 85 % succeed with one asset each, the rest fail for
one of two reasons, time out or are canceled. Jobs are inserted oldest first, as the app inserts
each job when it is created. The assets point at 24 real
files made by the local generator (1024x1024 PNGs and 3 s 640x360 MP4s with their WebP
thumbnails), so the page's bytes are real. PostgreSQL runs in a throwaway cluster on loopback
(``mediagen/db/local_cluster.py``: Debian's server, durability off as in the tests), one database
per N, vacuumed and analysed after seeding as autovacuum soon does for a real library. Then,
median of several runs each:

- first page: ``browse.page_of_jobs`` with no filters (24 per page, newest first);
- page 500: the same from the cursor of page 500's first row (keyset: where the row is does not
  matter; with fewer than 500 pages, the last page);
- filtered + search: kind, model and a prompt word (full text) together; and the match count;
- search: a common prompt word alone (about a fifth of all jobs match it), and two words;
- count: ``browse.count_jobs`` with no filters (the gallery shows it);
- admin metrics: the Task history page's tables over its default period (30 days) from the daily
  roll-up (``rollup.rebuild`` fills it after seeding, as the app does when a job ends);
- gallery / history render: a full ``AppTest`` run of each page (after one warm-up run);
- the first page's thumbnail bytes against its originals' bytes.

    .venv/bin/python bench/gallery_scale.py [--database sqlite|postgresql|sqlite,postgresql] [1000 10000 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, update  # noqa: E402

from mediagen.admin import reports, rollup  # noqa: E402
from mediagen.config import Settings  # noqa: E402
from mediagen.db.local_cluster import Cluster  # noqa: E402
from mediagen.db.tables import Asset, Job, JobEvent  # noqa: E402
from mediagen.jobs import actions, browse, queries  # noqa: E402
from mediagen.studio import Studio  # noqa: E402

PAGE = 24
RUNS = 15
RENDER_RUNS = 5
SAMPLE_FILES = 12  # of each kind
WORDS = [
    "harbour",
    "lighthouse",
    "fox",
    "crane",
    "meadow",
    "city",
    "neon",
    "rain",
    "desert",
    "forest",
    "glacier",
    "market",
    "portrait",
    "studio",
    "sunset",
    "dawn",
    "river",
    "bridge",
    "train",
    "robot",
    "garden",
    "ocean",
    "mountain",
    "night",
]
MODELS = {"image": ["local-image", "dall-e-3", "gpt-image-1"], "video": ["local-video", "sora-2"]}
OWNERS = ["ana@example.com", "bo@example.com", "cy@example.com", "local"]
# Most jobs succeed; the rest fail for a few reasons, time out or are canceled.
OUTCOMES = [
    ("succeeded", None),
    ("failed", "content_policy"),
    ("failed", "server_error"),
    ("timed_out", "timed_out"),
    ("canceled", "canceled"),
]
OUTCOME_WEIGHTS = [85, 5, 3, 3, 4]
SEARCH = {"kinds": ["image"], "models": ["dall-e-3"], "text": "lighthouse"}
WORD = {"text": "harb"}  # a prefix of one of 24 words, 5 in each prompt: about a fifth match
TWO_WORDS = {"text": "neon rain"}


def _median_ms(call: Callable[[], Any], runs: int = RUNS) -> float:
    call()  # warm caches: we measure the steady state a reviewer paging around sees
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _samples(studio: Studio) -> dict[str, list[dict[str, Any]]]:
    """Real stored media to point the seeded assets at: generated once per data dir."""
    made: dict[str, list[dict[str, Any]]] = {"image": [], "video": []}
    for i in range(SAMPLE_FILES):
        image = actions.generate_image(studio, f"sample {i}", params={"size": "1024x1024", "seed": i})
        made["image"].extend(_asset_values(a) for a in image.assets)
    for i in range(SAMPLE_FILES):
        video = actions.submit_video(studio, f"sample {i}", params={"duration": 3, "size": "640x360", "seed": i})
        _finish(studio, video.id)
        made["video"].extend(_asset_values(a) for a in queries.get_job(studio, video.id).assets)
    return made


def _finish(studio: Studio, job_id: str) -> None:
    from mediagen.worker.sweep import tick

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tick(studio)
        studio.drain()
        if queries.get_job(studio, job_id).assets:
            return
        time.sleep(0.2)
    raise RuntimeError(f"sample video {job_id} did not finish")


def _asset_values(asset: Asset) -> dict[str, Any]:
    keep = ("storage", "key", "thumbnail_key", "content_type", "bytes", "sha256", "width", "height", "duration_s")
    return {name: getattr(asset, name) for name in keep}


def seed(studio: Studio, n: int, samples: dict[str, list[dict[str, Any]]], rng: random.Random) -> None:
    now = datetime.now(UTC)
    job_rows, asset_rows, event_rows = [], [], []
    for i in range(n):
        kind = "image" if rng.random() < 0.7 else "video"
        created = now - timedelta(seconds=rng.uniform(60, 90 * 86400))
        finished = created + timedelta(seconds=rng.lognormvariate(2.5 if kind == "image" else 4.5, 0.6))
        job_id = uuid.uuid4().hex
        model = rng.choice(MODELS[kind])
        status, error_code = rng.choices(OUTCOMES, weights=OUTCOME_WEIGHTS)[0]
        params = {"size": "1024x1024", "quality": rng.choice(["low", "high"])} if kind == "image" else {"duration": 4}
        job_rows.append(
            {
                "id": job_id,
                "kind": kind,
                "status": status,
                "error_code": error_code,
                "error_message": f"{error_code}: seeded" if error_code else None,
                "provider": "local" if model.startswith("local") else "openai",
                "model": model,
                "prompt": " ".join(rng.sample(WORDS, 5)) + f" #{i}",
                "params": params,
                "owner": rng.choice(OWNERS),
                "progress": 100,
                "attempt": 1,
                "transient_errors": 0,
                "created_at": created,
                "started_at": created,
                "finished_at": finished,
                "updated_at": finished,
            }
        )
        if status != "succeeded":
            continue
        sample = samples[kind][i % len(samples[kind])]
        asset_rows.append({**sample, "job_id": job_id, "index": 0, "created_at": finished})
        event_rows.append({"job_id": job_id, "at": finished, "status": "succeeded", "progress": 100})
    job_rows.sort(key=lambda row: row["created_at"])  # the app inserts each job when it is created
    with studio.db.write() as session:
        # The sample jobs were inserted first: make them the oldest too, so rowids follow creation
        # times as they do in a studio's own database.
        session.execute(update(Job).values(created_at=now - timedelta(days=100)))
        for table, rows in ((Job, job_rows), (Asset, asset_rows), (JobEvent, event_rows)):
            for start in range(0, len(rows), 5000):
                session.execute(insert(table), rows[start : start + 5000])
    _settle(studio)
    with studio.db.engine.begin() as connection:
        rollup.rebuild(connection)  # the roll-up the app keeps as jobs end


def _page_500_cursor(studio: Studio) -> str | None:
    count = browse.count_jobs(studio, browse.JobFilters())
    with studio.db.read() as session:
        offset = min(499 * PAGE, max(0, count - PAGE)) - 1
        if offset < 0:
            return None
        row = session.scalars(select(Job).order_by(Job.created_at.desc(), Job.id.desc()).offset(offset).limit(1)).one()
        return browse.encode_cursor(row.created_at, row.id)


def _render_ms(studio: Studio, page: str) -> float:
    from streamlit.testing.v1 import AppTest

    from mediagen import server

    server.use(studio)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(page)

    def run() -> None:
        app.run()
        if app.exception:
            raise RuntimeError(f"{page} failed: {app.exception}")

    return _median_ms(run, RENDER_RUNS)


def _admin_metrics(studio: Studio) -> None:
    """What the Task history page computes over its default period (the last 30 days)."""
    today = datetime.now(UTC).date()
    period = browse.JobFilters(since=today - timedelta(days=29), until=today)
    lines = reports.stat_frame(studio, period)
    reports.overview(studio, lines, period)
    reports.by_model(studio, lines, period)
    reports.failure_reasons(studio, lines)
    reports.usage(lines, "model")
    reports.usage(lines, "owner")


def _page_bytes(studio: Studio) -> tuple[int, int]:
    page = browse.page_of_jobs(studio, browse.JobFilters(), limit=PAGE)
    originals = sum(a.bytes for job in page.jobs for a in job.assets[:1])
    thumbs = 0
    for job in page.jobs:
        for asset in job.assets[:1]:
            assert asset.thumbnail_key
            thumbs += (studio.settings.media_dir / asset.thumbnail_key).stat().st_size
    return thumbs, originals


@contextlib.contextmanager
def _database(kind: str, cluster: Cluster | None) -> Iterator[str | None]:
    """A fresh database of ``kind``: None for the data dir's SQLite file, else a PostgreSQL URL."""
    if kind == "sqlite":
        yield None
        return
    assert cluster is not None
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


def _settle(studio: Studio) -> None:
    """On PostgreSQL, what autovacuum has long done by the time a library holds N jobs: the
    planner's statistics and the visibility map. (The studio never analyses SQLite: neither here.)
    Without statistics right after the bulk load, the roll-up's rebuild joined every job to every
    asset group (11 s at 20k jobs, 13 min at 100k)."""
    if studio.db.is_sqlite:
        return
    with studio.db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def measure(n: int, base: Path, database: str, cluster: Cluster | None) -> dict[str, Any]:
    data_dir = base / f"data-{database}-{n}"
    os.environ["MEDIAGEN_DATA_DIR"] = str(data_dir)
    with _database(database, cluster) as url:
        studio = Studio.open(Settings(data_dir=data_dir, database_url=url))
        try:
            return _measure_studio(studio, n) | {"database": database}
        finally:
            studio.close()


def _measure_studio(studio: Studio, n: int) -> dict[str, Any]:
    samples = _samples(studio)
    started = time.perf_counter()
    seed(studio, n, samples, random.Random(n))
    seeded_s = time.perf_counter() - started
    cursor = _page_500_cursor(studio)
    search, word, two_words = (browse.JobFilters(**f) for f in (SEARCH, WORD, TWO_WORDS))  # type: ignore[arg-type]
    thumbs, originals = _page_bytes(studio)
    return {
        "n": n,
        "seed_s": seeded_s,
        "first": _median_ms(lambda: browse.page_of_jobs(studio, browse.JobFilters(), limit=PAGE)),
        "page500": _median_ms(lambda: browse.page_of_jobs(studio, browse.JobFilters(), after=cursor, limit=PAGE)),
        "search": _median_ms(lambda: browse.page_of_jobs(studio, search, limit=PAGE)),
        "matches": browse.count_jobs(studio, search),
        "word": _median_ms(lambda: browse.page_of_jobs(studio, word, limit=PAGE)),
        "word_matches": browse.count_jobs(studio, word),
        "two_words": _median_ms(lambda: browse.page_of_jobs(studio, two_words, limit=PAGE)),
        "two_words_matches": browse.count_jobs(studio, two_words),
        "count": _median_ms(lambda: browse.count_jobs(studio, browse.JobFilters())),
        "metrics": _median_ms(lambda: _admin_metrics(studio)),
        "gallery": _render_ms(studio, "pages/gallery.py"),
        "history": _render_ms(studio, "pages/task_history.py"),
        "thumbs": thumbs,
        "originals": originals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000], help="jobs in the library")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite, postgresql, or both as sqlite,postgresql (measured side by side)",
    )
    args = parser.parse_args()
    args.database = args.database.split(",")
    if unknown := set(args.database) - {"sqlite", "postgresql"}:
        parser.error(f"--database: {sorted(unknown)[0]!r} is not sqlite or postgresql")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        cluster = stack.enter_context(Cluster.running()) if "postgresql" in args.database else None
        results = []
        for n in args.sizes:
            for database in args.database:
                print(f"seeding and measuring {n:,} jobs on {database} ...", file=sys.stderr, flush=True)
                results.append(measure(n, Path(tmp), database, cluster))
    print(f"\nGallery at scale: medians in ms ({RUNS} query runs, {RENDER_RUNS} page renders); {os.cpu_count()} CPUs\n")
    print(
        "| jobs | database | seed (s) | first page | page 500 | filtered + search (matches) "
        "| one word (matches) | two words (matches) | count | admin metrics "
        "| gallery render | history render | page thumbnails / originals |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r["thumbs"] / r["originals"]
        print(
            f"| {r['n']:,} | {r['database']} | {r['seed_s']:.1f} | {r['first']:.2f} | {r['page500']:.2f} "
            f"| {r['search']:.2f} ({r['matches']:,}) | {r['word']:.2f} ({r['word_matches']:,}) "
            f"| {r['two_words']:.2f} ({r['two_words_matches']:,}) | {r['count']:.2f} | {r['metrics']:.1f} "
            f"| {r['gallery']:.0f} | {r['history']:.0f} "
            f"| {r['thumbs'] / 1024:.0f} KiB / {r['originals'] / 1024:.0f} KiB = 1/{1 / ratio:.0f} |"
        )
    timed = ("first", "page500", "search", "word", "two_words", "count", "metrics", "gallery", "history")
    for database in args.database:
        mine = [r for r in results if r["database"] == database]
        if len(mine) > 1:
            print(f"\n{database}, {mine[-1]['n']:,} vs {mine[0]['n']:,} jobs (x):")
            for name in timed:
                print(f"- {name}: {mine[-1][name] / mine[0][name]:.2f}x")
    if len(args.database) > 1:
        for n in args.sizes:
            by_database = {r["database"]: r for r in results if r["n"] == n}
            postgresql, sqlite = by_database["postgresql"], by_database["sqlite"]
            print(f"\nPostgreSQL vs SQLite at {n:,} jobs (x):")
            for name in timed:
                print(f"- {name}: {postgresql[name] / sqlite[name]:.2f}x")


if __name__ == "__main__":
    main()
