"""How fast the HTTP API answers status reads, and what an image request costs over the core.

Set-up: `streamlit run app.py` with a worker polling (the app's own, or with `--worker separate` a
`python -m mediagen worker` beside an app that runs none; `--worker none` runs no worker at all,
the jobs stay queued: what the request path alone gets from the machine), 1,000 ``sora-2`` video jobs in flight at
the loopback fake of OpenAI's video API (every task stays ``in_progress``, so the worker keeps
polling all of them every 2 s while the reads run). wrk (Debian's package) keeps
``--concurrency`` connections busy for ``--seconds`` per endpoint, each request for a random job
id, and reports the client-side latencies.

Then the image overhead: ``POST /v1/images/generations`` (local-image, 256x256, one at a time)
against ``actions.generate_image`` called in process on a studio of its own, medians of ``--images``.

    .venv/bin/python bench/api_reads.py [--jobs 1000] [--seconds 10] [--concurrency 8] [--images 30]
        [--worker in-app|separate|none] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


WRK_SCRIPT = """
local paths = {%s}
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%.1f %%.1f %%d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""


def _measure_reads(base: str, job_ids: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """wrk (C, one process) as the load: a Python client would take most of the 2 cores itself."""
    if shutil.which("wrk") is None:
        sys.exit("this bench needs wrk as its load generator: apt-get install wrk")
    results = {}
    for label, template in (
        ("GET /api/videos/tasks/{id}", "/api/videos/tasks/{}"),
        ("GET /v1/videos/{id}", "/v1/videos/{}"),
    ):
        paths = ", ".join(f'"{template.format(job_id)}"' for job_id in job_ids)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_SCRIPT % paths)
        command = ["wrk", "-t2", f"-c{args.concurrency}", f"-d{args.seconds:g}s", "-s", script.name, base]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        Path(script.name).unlink()
        [line] = [row for row in done.stdout.splitlines() if row.startswith("RESULT")]
        requests, duration_us, p50, p99, errors = line.split()[1:]
        results[label] = {
            "requests": int(requests),
            "rps": int(requests) / (int(duration_us) / 1e6),
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "failures": int(errors),
        }
    return results


def _image_overhead(base: str, count: int) -> tuple[float, float]:
    import httpx

    from mediagen.config import Settings
    from mediagen.jobs import actions
    from mediagen.studio import Studio

    body = {"model": "local-image", "prompt": "a lighthouse", "size": "256x256"}
    with httpx.Client(base_url=base, timeout=60) as client:
        client.post("/v1/images/generations", json=body)  # warm up
        over_http = []
        for i in range(count):
            started = time.perf_counter()
            answer = client.post("/v1/images/generations", json=body | {"prompt": f"a lighthouse {i}"})
            over_http.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
    with tempfile.TemporaryDirectory() as where:
        studio = Studio.open(Settings(data_dir=Path(where)))
        actions.generate_image(studio, "warm up", model="local-image", params={"size": "256x256"})
        direct = []
        for i in range(count):
            started = time.perf_counter()
            job = actions.generate_image(studio, f"a lighthouse {i}", model="local-image", params={"size": "256x256"})
            direct.append(time.perf_counter() - started)
            assert job.status == "succeeded"
        studio.close()
    return statistics.median(over_http) * 1000, statistics.median(direct) * 1000


@contextlib.contextmanager
def _separate_worker(env: dict[str, str], *, wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "mediagen", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            yield
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--poll-interval", type=float, default=2, help="MEDIAGEN_POLL_INTERVAL_S for the worker")
    parser.add_argument(
        "--worker",
        choices=("in-app", "separate", "none"),
        default="in-app",
        help="poll in the app's own process, or in a `python -m mediagen worker` beside it "
        "(MEDIAGEN_WORKER_IN_APP=false: the scaled-out layout), or not at all (the request path's ceiling)",
    )
    args = parser.parse_args()

    from mediagen.config import Settings
    from mediagen.db.tables import Job
    from mediagen.jobs import actions
    from mediagen.studio import Studio
    from tests.support.fake_providers import FakeProviders
    from tests.support.servers import app_server

    fake = FakeProviders()
    fake.openai_video_steps = [("queued", 0), ("in_progress", 40)]  # never done: polled all along
    with fake, tempfile.TemporaryDirectory() as where:
        os.environ.update({"OPENAI_API_KEY": FakeProviders.OPENAI_KEY, "OPENAI_BASE_URL": fake.openai_base})
        in_app = "true" if args.worker == "in-app" else "false"
        with (
            app_server(
                Path(where),
                outbound_allow='["127.0.0.1/32"]',
                poll_interval_s=f"{args.poll_interval:g}",
                worker_in_app=in_app,
            ) as app,
            _separate_worker(app.env, wanted=args.worker == "separate"),
        ):
            # First, with nothing in flight: the cost of the HTTP layer alone.
            http_ms, direct_ms = _image_overhead(app.base, args.images)
            studio = Studio.open(Settings(data_dir=app.data_dir, outbound_allow=["127.0.0.1/32"]))
            job_ids = [
                actions.submit_video(studio, f"clip {i}", model="sora-2", params={"duration": "4"}).id
                for i in range(args.jobs)
            ]
            deadline = time.monotonic() + (120 if args.worker != "none" else 0)
            while time.monotonic() < deadline:  # until the worker has submitted every job
                with studio.db.read() as session:
                    waiting = session.query(Job).filter(Job.provider_job_id.is_(None)).count()
                if not waiting:
                    break
                time.sleep(1)
            polls_before = len(fake.calls("openai.videos.get"))
            reads = _measure_reads(app.base, job_ids, args)
            polls = len(fake.calls("openai.videos.get")) - polls_before
            studio.close()

    who = {
        "in-app": f"the app's own worker polling them every {args.poll_interval:g} s",
        "separate": f"a separate worker polling them every {args.poll_interval:g} s",
        "none": "no worker (they stay queued)",
    }[args.worker]
    print(
        f"\n{args.jobs} video jobs in the database, {who} ({polls} polls during the reads); "
        f"{args.concurrency} concurrent requests for {args.seconds:g} s each\n"
    )
    print("| endpoint | requests | req/s | p50 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, row in reads.items():
        print(
            f"| {label} | {row['requests']:,} | {row['rps']:.0f} | {row['p50_ms']:.1f} | "
            f"{row['p99_ms']:.1f} | {row['failures']} |"
        )
    print(
        f"\nPOST /v1/images/generations (local-image 256x256, median of {args.images}, one at a time, "
        "before the video jobs were added):"
    )
    print("| path | median ms |")
    print("|---|---:|")
    print(f"| over HTTP (streamlit run app.py) | {http_ms:.1f} |")
    print(f"| actions.generate_image in process | {direct_ms:.1f} |")
    print(f"| overhead | {http_ms - direct_ms:.1f} |")


if __name__ == "__main__":
    main()
