"""How fast the poller sweeps many in-flight video jobs, and how late it notices finished ones.

1,000 ``sora-2`` jobs are in flight at the loopback fake of OpenAI's video API (run as its own
process), which answers every poll after 100 ms. ``python -m mediagen worker`` processes (1, then
2) poll them against one SQLite data dir. Every task reports ``in_progress`` until its ready time
(spread over a window after a warm-up), then ``completed``; the worker then copies the video and
its thumbnail into local storage and marks the job ``succeeded``.

Measured per run:
- sweep: from the first poll until every job has been polled once (before any task is ready);
  when the warm-up ends first (or with ``--watch``), the sweep is extrapolated from the poll rate
  and marked with ``~``.
- polls/s: polls the fake answered per second in that warm-up phase.
- lag from ready: provider task ready -> job ``succeeded`` with its asset stored (p50/p95), over
  the jobs that finished (a run still unfinished 90 s after the last task is ready is cut short).
- of which ready -> seen: until a poll first answers ``completed`` (the sweep's share), and
  seen -> stored: from that answer to ``succeeded`` (the copy: download, probe, thumbnail, upload,
  write, plus any wait for CPU).
- CPU: seconds of CPU the workers (and the fake) used during the run.
Then the CPU time of an idle tick (nothing due), in-process.

    .venv/bin/python bench/poll_sweep.py [--jobs 1000] [--concurrency 128 --interval 1]

The first two rows use the settings as shipped, the next two ``--concurrency``/``--interval``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fleet import (
    Databases,
    FakeProcess,
    finished_at,
    insert_in_flight,
    new_setup,
    p50_p95,
    pair_text,
    running_workers,
    wait_for,
)
from sqlalchemy import update

from mediagen.jobs.status import JobStatus

POLL_DELAY_S = 0.1
GIVE_UP_AFTER_S = 90.0  # after the last task is ready; a run that has not finished by then is cut short


# -- one measured run -----------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    workers: int
    concurrency: int
    interval_s: float
    watch_s: float | None  # None: run until every job succeeded; else watch the warm-up this long


@dataclass
class Result:
    config: Config
    sweep_s: float
    sweep_extrapolated: bool
    polls_per_s: float
    lag_ready: tuple[float, float] | None
    lag_seen: tuple[float, float] | None
    lag_report: tuple[float, float] | None
    polls: int
    done: int
    worker_cpu_s: float
    fake_cpu_s: float
    wall_s: float


def run(config: Config, n_jobs: int, ready_after_s: float, spread_s: float) -> Result:
    started = time.monotonic()
    fake = FakeProcess(POLL_DELAY_S)
    try:
        with new_setup(
            Databases(None), "sqlite", fake, interval_s=config.interval_s, concurrency=config.concurrency
        ) as setup:
            insert_in_flight(setup.studio, fake.call("tasks", n=n_jobs))
            t0 = time.time()
            ready_after = ready_after_s if config.watch_s is None else 10**6
            fake.call("schedule", start=t0, ready_after_s=ready_after, spread_s=spread_s, seed=1)
            with running_workers(setup, config.workers) as workers:
                limit = t0 + (config.watch_s + 3 if config.watch_s else ready_after_s + spread_s + GIVE_UP_AFTER_S)
                wait_for(setup.studio, [JobStatus.SUCCEEDED], n_jobs, limit)
                worker_cpu = workers.cpu_s()
                report = fake.call("report")
                finished = finished_at(setup.studio)
    finally:
        fake.close()

    polls = sorted(report["polls"])
    first = polls[0][0]
    warm_end = t0 + ready_after if config.watch_s is None else first + config.watch_s
    warm = [p for p in polls if p[0] <= warm_end]
    rate = len(warm) / max(1e-9, min(warm_end, warm[-1][0]) - first)
    seen: set[str] = set()
    sweep, extrapolated = n_jobs / rate, True
    for at, task_id in polls:
        if at > warm_end:
            break
        seen.add(task_id)
        if len(seen) == n_jobs:
            sweep, extrapolated = at - first, False
            break
    tasks = report["tasks"]
    lag_ready = [finished[t] - tasks[t]["ready_at"] for t in finished if t in tasks]
    lag_report = [finished[t] - tasks[t]["reported_at"] for t in finished if tasks.get(t, {}).get("reported_at")]
    lag_seen = [t["reported_at"] - t["ready_at"] for t in tasks.values() if t.get("reported_at") and t.get("ready_at")]
    return Result(
        config=config,
        sweep_s=sweep,
        sweep_extrapolated=extrapolated,
        polls_per_s=rate,
        lag_ready=p50_p95(lag_ready) if config.watch_s is None else None,
        lag_seen=p50_p95(lag_seen) if config.watch_s is None else None,
        lag_report=p50_p95(lag_report) if config.watch_s is None else None,
        polls=len(polls),
        done=len(finished),
        worker_cpu_s=worker_cpu,
        fake_cpu_s=report["cpu_s"],
        wall_s=time.monotonic() - started,
    )


# -- idle tick ------------------------------------------------------------------------------
def idle_tick_cpu(n_jobs: int, ticks: int = 100) -> list[tuple[str, float, float]]:
    """CPU and wall milliseconds per tick with nothing due: empty, and with ``n_jobs`` not due."""
    from mediagen.config import Settings
    from mediagen.db.tables import Job, utcnow
    from mediagen.jobs import actions
    from mediagen.studio import Studio
    from mediagen.worker.loop import Worker
    from mediagen.worker.sweep import tick

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDIAGEN_OUTBOUND_ALLOW"] = '["127.0.0.1/32"]'
        studio = Studio.open(Settings(data_dir=Path(tmp) / "data", public_base_url="http://127.0.0.1:9/cdn"))
        try:
            idle_worker = Worker(studio, "idle")
            for label in ("empty database", f"{n_jobs} jobs in flight, none due"):
                if label != "empty database":
                    for i in range(n_jobs):
                        actions.submit_video(studio, f"idle {i}", model="local-video")
                    with studio.db.write() as session:
                        session.execute(update(Job).values(next_poll_at=utcnow() + timedelta(hours=1)))
                calls = {
                    "sweep.tick()": lambda: tick(studio, worker_id="idle"),
                    "Worker.run_tick() (tick + housekeeping + heartbeat)": lambda: idle_worker.run_tick().busy,
                }
                for name, call in calls.items():
                    call()  # warm up
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(ticks):
                        assert not call()
                    rows.append(
                        (
                            f"{name}, {label}",
                            (time.process_time() - cpu) / ticks * 1000,
                            (time.perf_counter() - wall) / ticks * 1000,
                        )
                    )
        finally:
            studio.close()
    return rows


# -- report ---------------------------------------------------------------------------------
def main() -> None:
    from mediagen.config import Settings

    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--ready-after", type=float, default=10.0, help="warm-up before the first task is ready")
    parser.add_argument("--spread", type=float, default=20.0, help="tasks become ready over this many seconds")
    parser.add_argument("--concurrency", type=int, default=128, help="MEDIAGEN_POLL_CONCURRENCY of the tuned rows")
    parser.add_argument("--interval", type=float, default=1.0, help="MEDIAGEN_POLL_INTERVAL_S of the tuned rows")
    parser.add_argument("--watch", type=float, help="only watch the warm-up this long (no lag)")
    args = parser.parse_args()

    settings = [
        (defaults["poll_concurrency"].default, defaults["poll_interval_s"].default),  # as shipped
        (args.concurrency, args.interval),
    ]
    configs = [Config(w, c, i, args.watch) for c, i in dict.fromkeys(settings) for w in (1, 2)]
    results = []
    for config in configs:
        print(f"running {config} ...", file=sys.stderr, flush=True)
        results.append(run(config, args.jobs, args.ready_after, args.spread))

    print(
        f"\nPoll sweep: {args.jobs} in-flight sora-2 jobs, loopback fake answering each poll after "
        f"{POLL_DELAY_S * 1000:.0f} ms; tasks become ready {args.ready_after:.0f}–"
        f"{args.ready_after + args.spread:.0f} s after the workers start. {os.cpu_count()} CPUs. "
        f"First row pair: the shipped defaults.\n"
    )
    print(
        "| workers | POLL_CONCURRENCY | POLL_INTERVAL_S | sweep (s) | polls/s | lag ready→stored p50 / p95 (s) "
        "| of which ready→seen p50 / p95 (s) | seen→stored p50 / p95 (s) | succeeded | polls | worker CPU (s) "
        "| fake CPU (s) | run wall (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        c = r.config
        sweep = f"~{r.sweep_s:.1f}" if r.sweep_extrapolated else f"{r.sweep_s:.2f}"
        done = f"{r.done}/{args.jobs}" + (f" (watched {c.watch_s:.0f} s)" if c.watch_s else "")
        print(
            f"| {c.workers} | {c.concurrency} | {c.interval_s:g} | {sweep} | {r.polls_per_s:.0f} "
            f"| {pair_text(r.lag_ready)} | {pair_text(r.lag_seen)} | {pair_text(r.lag_report)} | {done} "
            f"| {r.polls} | {r.worker_cpu_s:.1f} | {r.fake_cpu_s:.1f} | {r.wall_s:.0f} |"
        )

    print("\nIdle tick (nothing due), in-process, mean of 100:\n")
    print("| tick | CPU ms/tick | wall ms/tick |")
    print("|---|---:|---:|")
    for label, cpu_ms, wall_ms in idle_tick_cpu(args.jobs):
        print(f"| {label} | {cpu_ms:.2f} | {wall_ms:.2f} |")


if __name__ == "__main__":
    main()
