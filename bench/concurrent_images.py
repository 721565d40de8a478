"""N image requests from N threads of one process, against a provider that takes 1 s per image.

The loopback fake of OpenAI's images API (``tests/support/fake_providers.py``) answers every
``POST /images/generations`` after ``--delay`` seconds with a URL to a real PNG; the studio's real
OpenAI client calls it, and each job goes the whole way a user's does: validate, create the job,
the provider call in the studio's generation pool, download, decode, thumbnail, store on local
storage, finish. Each figure is the wall time from the first call of ``generate_image`` to the
last one returning (median of ``--runs`` rounds), measured in this process.

    .venv/bin/python bench/concurrent_images.py [--delay 1.0] [--runs 3]

Goal (issue 13): 4 requests from 4 threads finish in at most 1.3 x the time of one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mediagen.config import Settings  # noqa: E402
from mediagen.jobs import actions  # noqa: E402
from mediagen.jobs.status import JobStatus  # noqa: E402
from mediagen.studio import Studio  # noqa: E402
from tests.support.fake_providers import FakeProviders  # noqa: E402


def round_of(studio: Studio, callers: int) -> float:
    def one(n: int) -> JobStatus:
        return JobStatus(actions.generate_image(studio, f"a lighthouse, take {n}", model="dall-e-2").status)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        statuses = list(pool.map(one, range(callers)))
    elapsed = time.perf_counter() - started
    assert statuses == [JobStatus.SUCCEEDED] * callers, statuses
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the fake provider takes per image")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()

    with FakeProviders() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.route_delay_s["openai.images"] = args.delay
        os.environ.update(
            OPENAI_API_KEY=fake.OPENAI_KEY,
            OPENAI_BASE_URL=fake.openai_base,
            MEDIAGEN_OUTBOUND_ALLOW='["127.0.0.1/32"]',  # the fake on loopback stands in for OpenAI
        )
        studio = Studio.open(Settings(data_dir=Path(tmp) / "data", public_base_url="http://127.0.0.1:9/cdn"))
        try:
            round_of(studio, 1)  # warm up: connections, imports
            medians = {n: statistics.median(round_of(studio, n) for _ in range(args.runs)) for n in args.callers}
        finally:
            studio.close()

    single = medians[min(medians)]
    print(f"image requests against a provider taking {args.delay:g} s each; median of {args.runs} rounds")
    print(f"generation pool: {studio.settings.image_concurrency} threads (MEDIAGEN_IMAGE_CONCURRENCY)\n")
    print("| callers (threads of one process) | wall time, first call to last result | x the time of one |")
    print("|---:|---:|---:|")
    for callers, seconds in medians.items():
        print(f"| {callers} | {seconds:.2f} s | {seconds / single:.2f} |")


if __name__ == "__main__":
    main()
