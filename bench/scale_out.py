"""Scaling out: polling, claims and local jobs with 1, 2 and 4 workers on SQLite and PostgreSQL.

For each database × worker count, four runs, each on a new database (SQLite: a file in a new data
dir; PostgreSQL: a new database on one throwaway cluster, ``mediagen/db/local_cluster.py``) with new
``python -m mediagen worker`` processes, started before the work comes due:

1. Polling: ``--jobs`` sora-2 jobs in flight at the loopback fake of OpenAI's video API (its own
   process, ``bench/videos.py``), which answers each poll after ``--poll-delay`` s; all due at once.
   - sweep: from when they came due until every job had been polled once; polls/s: the polls
     answered in that first sweep per second of it (all are due: the fleet's capacity, not the
     cadence);
   - poll gap max: the longest time between two polls of one job while it is in progress (one
     interval, plus however late the poll was);
   - CPU ms/poll: the workers' CPU (and the PostgreSQL server's, and the fake's) from when the jobs
     came due until the first task is done, per poll answered meanwhile; machine busy: the share of
     all cores the whole machine (everyone's processes) used meanwhile;
   - lag done→stored: ``--done`` of the tasks are done at random times over ``--spread`` s, from
     ``--ready-after`` s on (the others stay in progress, so the polling load stays); from the
     moment the fake starts answering a task ``completed`` to its job's ``finished_at``
     (succeeded, video and thumbnail stored), p50 / p95, end to end; and its two parts: until a
     poll heard it, and from that poll to stored.
2. Provider-bound: the same first sweep with ``--bound-concurrency`` polls in flight per worker,
   few enough that the fake's answer time and not the machine's CPU is the limit: polls/s.
3. Claims: the same first sweep with the fake answering at once: due jobs claimed per second end
   to end, the jobs / (the last job's first poll − when they came due). A poll follows its claim
   as soon as a thread is free, so this is how fast the fleet takes due work when the provider is
   no limit.
4. Local: ``--local-jobs`` local-video jobs of 1 s at 160x96 submitted one after another through
   the use case (``actions.submit_video``), on the shipped poll interval; from the first submit
   until the last one is stored.

    .venv/bin/python bench/scale_out.py [--database sqlite postgresql] [--workers 1 2 4] \\
        [--jobs 5000 --interval 10 --done 1000] [--local-jobs 1000] [--runs polling bound claims local]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fleet import (
    Databases,
    FakeProcess,
    Setup,
    Workers,
    at,
    busy_share,
    count_jobs,
    failure_codes,
    finished_at,
    insert_in_flight,
    machine_cpu,
    new_setup,
    p50_p95,
    pair_text,
    running_workers,
    set_due,
    sleep_until,
    wait_for,
)

from mediagen.db.local_cluster import Cluster
from mediagen.jobs import actions
from mediagen.jobs.status import FINAL_STATUSES, JobStatus

LOCAL_PARAMS = {"duration": 1, "size": "160x96"}
GIVE_UP_AFTER_S = 90.0  # after the last task is ready (or the last local job is submitted)


@dataclass(frozen=True)
class Plan:
    jobs: int
    done: int
    interval_s: float
    concurrency: int
    bound_concurrency: int
    poll_delay_s: float
    ready_after_s: float
    spread_s: float
    startup_s: float
    local_jobs: int
    local_interval_s: float


# -- 1. polling in-flight jobs ----------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """CPU seconds so far (workers, database server, fake, whole machine) at one moment."""

    workers: float
    server: float | None
    fake: float
    machine: tuple[float, float]

    @classmethod
    def take(cls, workers: Workers, databases: Databases, database: str, fake: FakeProcess) -> Reading:
        return cls(workers.cpu_s(), databases.server_cpu_s(database), fake.cpu_s(), machine_cpu())


@dataclass(frozen=True)
class Polling:
    sweep_s: float | None  # None: not every job was polled before the first task was done
    polls_per_s: float
    gap_max_s: float | None
    worker_ms: float
    server_ms: float | None
    fake_ms: float
    busy: float
    lag: tuple[float, float] | None
    lag_seen: tuple[float, float] | None  # of which: done -> a poll heard so
    lag_copy: tuple[float, float] | None  # of which: that poll -> stored
    stored: int
    late_start: bool
    errors: list[str]


def first_sweep(polls: list[tuple[float, str]], jobs: int, due: float) -> tuple[float | None, float]:
    """(seconds until every job was polled once, polls per second meanwhile); over the polls
    seen when not every job was."""
    seen: set[str] = set()
    for i, (when, task_id) in enumerate(polls):
        seen.add(task_id)
        if len(seen) == jobs:
            return when - due, (i + 1) / max(1e-9, when - due)
    last = polls[-1][0] if polls else due
    return None, len(polls) / max(1e-9, last - due)


def longest_gap(polls: list[tuple[float, str]], tasks: dict[str, Any]) -> float | None:
    """The longest time between two polls of one job while its task was in progress."""
    last: dict[str, float] = {}
    longest = None
    for when, task_id in polls:
        ready = tasks[task_id]["ready_at"] or float("inf")
        if task_id in last and when < ready:
            longest = max(longest or 0.0, when - last[task_id])
        last[task_id] = when
    return longest


@dataclass(frozen=True)
class VideoFleet:
    """In-flight jobs at the fake, all due at ``due`` (epoch seconds), and workers that were
    started before then (``late_start``: not all said they run by then)."""

    setup: Setup
    fake: FakeProcess
    workers: Workers
    due: float
    late_start: bool


@contextlib.contextmanager
def video_fleet(
    plan: Plan,
    databases: Databases,
    database: str,
    workers_n: int,
    *,
    poll_delay_s: float,
    concurrency: int,
    done: int = 0,
) -> Iterator[VideoFleet]:
    fake = FakeProcess(poll_delay_s)
    try:
        with new_setup(databases, database, fake, interval_s=plan.interval_s, concurrency=concurrency) as setup:
            insert_in_flight(setup.studio, fake.call("tasks", n=plan.jobs), due_at=at(time.time() + 86400))
            due = time.time() + plan.startup_s  # from now: inserting thousands of jobs takes a while
            set_due(setup.studio, due)
            fake.call(
                "schedule", start=due, ready_after_s=plan.ready_after_s, spread_s=plan.spread_s, seed=1, count=done
            )
            with running_workers(setup, workers_n) as workers:
                late_start = not workers.wait_started(timeout_s=due - time.time())
                if late_start:
                    workers.wait_started()
                yield VideoFleet(setup, fake, workers, due, late_start)
    finally:
        fake.close()


def polling_run(plan: Plan, databases: Databases, database: str, workers_n: int) -> Polling:
    with video_fleet(
        plan,
        databases,
        database,
        workers_n,
        poll_delay_s=plan.poll_delay_s,
        concurrency=plan.concurrency,
        done=plan.done,
    ) as videos:
        due, studio = videos.due, videos.setup.studio
        sleep_until(due)
        before = Reading.take(videos.workers, databases, database, videos.fake)
        sleep_until(due + plan.ready_after_s)
        after = Reading.take(videos.workers, databases, database, videos.fake)
        wait_for(studio, [JobStatus.SUCCEEDED], plan.done, due + plan.ready_after_s + plan.spread_s + GIVE_UP_AFTER_S)
        report = videos.fake.call("report")
        stored = finished_at(studio)
        errors = videos.workers.errors()

    polls = sorted((when, task_id) for when, task_id in report["polls"])
    tasks = report["tasks"]
    polling = [p for p in polls if p[0] <= due + plan.ready_after_s]
    sweep_s, rate = first_sweep(polling, plan.jobs, due)
    n = max(1, len(polling))
    done = {t: tasks[t] for t in stored if tasks.get(t, {}).get("ready_at") and tasks[t]["reported_at"]}
    return Polling(
        sweep_s=sweep_s,
        polls_per_s=rate,
        gap_max_s=longest_gap(polls, tasks),
        worker_ms=(after.workers - before.workers) / n * 1000,
        server_ms=None if before.server is None or after.server is None else (after.server - before.server) / n * 1000,
        fake_ms=(after.fake - before.fake) / n * 1000,
        busy=busy_share(before.machine, after.machine),
        lag=p50_p95([stored[t] - task["ready_at"] for t, task in done.items()]),
        lag_seen=p50_p95([task["reported_at"] - task["ready_at"] for task in done.values()]),
        lag_copy=p50_p95([stored[t] - task["reported_at"] for t, task in done.items()]),
        stored=len(stored),
        late_start=videos.late_start,
        errors=errors,
    )


# -- 2., 3. first sweeps: provider-bound, and claims ---------------------------------------
@dataclass(frozen=True)
class FirstSweep:
    jobs_per_s: float | None  # None: not every job was polled in time
    busy: float  # the machine's share of all cores meanwhile
    late_start: bool


def first_sweep_run(
    plan: Plan, databases: Databases, database: str, workers_n: int, *, poll_delay_s: float, concurrency: int
) -> FirstSweep:
    """Every job due at once: how many a second the fleet claims and polls until it has polled
    each once."""
    with video_fleet(
        plan, databases, database, workers_n, poll_delay_s=poll_delay_s, concurrency=concurrency
    ) as videos:
        sleep_until(videos.due)
        before = machine_cpu()
        until = videos.due + GIVE_UP_AFTER_S
        while time.time() < until and videos.fake.call("polled") < plan.jobs:
            time.sleep(0.2)
        busy = busy_share(before, machine_cpu())
        report = videos.fake.call("report")
    sweep_s, _ = first_sweep(sorted((when, task_id) for when, task_id in report["polls"]), plan.jobs, videos.due)
    return FirstSweep(None if sweep_s is None else plan.jobs / sweep_s, busy, videos.late_start)


def bound_run(plan: Plan, databases: Databases, database: str, workers_n: int) -> FirstSweep:
    """Polls per second with few enough polls in flight that the provider's answer time, not
    the machine's CPU, is the limit."""
    return first_sweep_run(
        plan, databases, database, workers_n, poll_delay_s=plan.poll_delay_s, concurrency=plan.bound_concurrency
    )


def claims_run(plan: Plan, databases: Databases, database: str, workers_n: int) -> FirstSweep:
    """Due jobs claimed (and first polled) per second when the provider answers at once."""
    return first_sweep_run(plan, databases, database, workers_n, poll_delay_s=0.0, concurrency=plan.concurrency)


# -- 4. short local jobs end to end -----------------------------------------------------------
@dataclass(frozen=True)
class Local:
    seconds: float | None  # None: not every job ended in time
    succeeded: int
    ended: int
    failures: dict[str, int]  # error code -> jobs
    errors: list[str]  # error lines the workers logged


def local_run(plan: Plan, databases: Databases, database: str, workers_n: int) -> Local:
    interval_s = plan.local_interval_s
    with (
        new_setup(databases, database, None, interval_s=interval_s, concurrency=plan.concurrency) as setup,
        running_workers(setup, workers_n) as workers,
    ):
        workers.wait_started()
        start = time.time()
        for i in range(plan.local_jobs):
            actions.submit_video(setup.studio, f"local clip {i}", model="local-video", params=dict(LOCAL_PARAMS))
        wait_for(setup.studio, FINAL_STATUSES, plan.local_jobs, time.time() + plan.local_jobs + GIVE_UP_AFTER_S)
        ended = count_jobs(setup.studio, FINAL_STATUSES)
        stored = finished_at(setup.studio)
        failures = failure_codes(setup.studio)
        errors = workers.errors()
    last = max(stored.values(), default=start)
    return Local(last - start if ended == plan.local_jobs else None, len(stored), ended, failures, errors)


# -- the table --------------------------------------------------------------------------------
RUNS = {"polling": polling_run, "bound": bound_run, "claims": claims_run, "local": local_run}


@dataclass(frozen=True)
class Row:
    """One database × worker count; a run not asked for (``--runs``) is None."""

    database: str
    workers: int
    polling: Polling | None
    bound: FirstSweep | None
    claims: FirstSweep | None
    local: Local | None


def measure(plan: Plan, databases: Databases, database: str, workers_n: int, runs: list[str]) -> Row:
    results: dict[str, Any] = {}
    for name in runs:
        print(f"{database}, {workers_n} workers: {name} ...", file=sys.stderr, flush=True)
        results[name] = RUNS[name](plan, databases, database, workers_n)
    return Row(database, workers_n, *(results.get(name) for name in RUNS))


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _polling_cells(plan: Plan, p: Polling | None) -> list[str]:
    if p is None:
        return ["–"] * 11
    return [
        _num(p.sweep_s, ".2f") + (" (late start)" if p.late_start else ""),
        f"{p.polls_per_s:.0f}",
        _num(p.gap_max_s, ".2f"),
        f"{p.worker_ms:.2f}",
        _num(p.server_ms, ".2f"),
        f"{p.fake_ms:.2f}",
        f"{p.busy:.0%}",
        pair_text(p.lag),
        pair_text(p.lag_seen),
        pair_text(p.lag_copy),
        f"{p.stored}/{plan.done}",
    ]


def _sweep_cell(sweep: FirstSweep | None) -> str:
    if sweep is None:
        return "–"
    return f"{_num(sweep.jobs_per_s, '.0f')} ({sweep.busy:.0%} busy{', late start' if sweep.late_start else ''})"


def _local_cell(plan: Plan, local: Local | None) -> str:
    if local is None:
        return "–"
    missing = "" if local.succeeded == plan.local_jobs else f" ({local.succeeded} succeeded)"
    return _num(local.seconds, ".1f") + missing


def print_table(plan: Plan, rows: list[Row]) -> None:
    print(
        f"\nScaling out: {plan.jobs} sora-2 jobs in flight at the loopback fake (each poll answered after "
        f"{plan.poll_delay_s * 1000:.0f} ms), POLL_INTERVAL_S={plan.interval_s:g}, "
        f"POLL_CONCURRENCY={plan.concurrency} ({plan.bound_concurrency} in the provider-bound column); "
        f"{plan.done} tasks done {plan.ready_after_s:g}–{plan.ready_after_s + plan.spread_s:g} s after they came "
        f"due. {plan.local_jobs} local-video jobs of 1 s at 160x96 on POLL_INTERVAL_S={plan.local_interval_s:g}. "
        f"{os.cpu_count()} CPUs. `{' '.join(['.venv/bin/python bench/scale_out.py', *sys.argv[1:]])}`\n"
    )
    print(
        "| database | workers | sweep (s) | polls/s | poll gap max (s) | worker CPU ms/poll | PostgreSQL CPU ms/poll "
        "| fake CPU ms/poll | machine busy | lag done→stored p50 / p95 (s) | of which done→seen (s) | seen→stored (s) "
        f"| stored | polls/s provider-bound ({plan.bound_concurrency} in flight) | claims/s "
        f"| {plan.local_jobs} local jobs (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [
            r.database,
            str(r.workers),
            *_polling_cells(plan, r.polling),
            _sweep_cell(r.bound),
            _sweep_cell(r.claims),
            _local_cell(plan, r.local),
        ]
        print("| " + " | ".join(cells) + " |")
    print_goals(plan, rows)
    print_trouble(rows)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _scaling(one: float | None, two: float | None) -> str:
    if not one or not two:
        return "n/a"
    return f"×{two / one:.2f} (goal ≥ 1.7): {_verdict(two / one >= 1.7)}"


def print_goals(plan: Plan, rows: list[Row]) -> None:
    print("\nGoals:")
    by_key = {(r.database, r.workers): r for r in rows}
    for database in dict.fromkeys(r.database for r in rows):
        one, two = by_key.get((database, 1)), by_key.get((database, 2))
        if two is not None and two.polling is not None:
            p = two.polling
            ok = p.sweep_s is not None and p.sweep_s <= plan.interval_s
            print(
                f"- {database}: each of {plan.jobs} jobs polled within {plan.interval_s:g} s with 2 workers: "
                f"sweep {_num(p.sweep_s, '.2f')} s, poll gap max {_num(p.gap_max_s, '.2f')} s: {_verdict(ok)}"
            )
        if one is not None and two is not None:
            if one.bound is not None and two.bound is not None:
                scaling = _scaling(one.bound.jobs_per_s, two.bound.jobs_per_s)
                print(f"- {database}: polls/s from 1 to 2 workers, provider-bound: {scaling}")
            if one.polling is not None and two.polling is not None:
                ratio = two.polling.polls_per_s / max(1e-9, one.polling.polls_per_s)
                print(f"  (at POLL_CONCURRENCY={plan.concurrency}, where the CPU can be the limit: ×{ratio:.2f})")
        for r in rows:
            if r.database == database and r.polling is not None:
                lag, stored = r.polling.lag, r.polling.stored
                ok = lag is not None and lag[1] <= 2 * plan.interval_s and stored == plan.done
                print(
                    f"- {database}, {r.workers} workers: lag p95 {_num(lag and lag[1], '.2f')} s "
                    f"(goal ≤ {2 * plan.interval_s:g} s, all {plan.done} stored): {_verdict(ok)}"
                )


def print_trouble(rows: list[Row]) -> None:
    """What went wrong besides the figures: local jobs that failed, errors the workers logged."""
    for r in rows:
        if r.local is not None and r.local.failures:
            print(f"\n{r.database}, {r.workers} workers: local jobs that did not succeed: {r.local.failures}")
        for name, run in (("polling", r.polling), ("local", r.local)):
            if run is not None and run.errors:
                print(f"\n{r.database}, {r.workers} workers, {name}: {len(run.errors)} error lines logged, first:")
                print("   " + run.errors[0])


def main() -> None:
    from mediagen.config import Settings

    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=5000, help="video jobs in flight")
    parser.add_argument("--interval", type=float, default=10.0, help="MEDIAGEN_POLL_INTERVAL_S of the video runs")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults["poll_concurrency"].default,
        help="MEDIAGEN_POLL_CONCURRENCY (shipped default)",
    )
    parser.add_argument("--poll-delay", type=float, default=0.1, help="the fake's answer time per poll (s)")
    parser.add_argument("--done", type=int, help="tasks that finish during the run (default: a fifth of --jobs)")
    parser.add_argument("--ready-after", type=float, help="polling before the first task is done (2.5 intervals)")
    parser.add_argument(
        "--spread",
        type=float,
        help="tasks finish over this many seconds (4 intervals: 5,000 in flight, a fifth done in 40 s, is what "
        "tasks of ~200 s give)",
    )
    parser.add_argument(
        "--startup",
        type=float,
        default=15.0,
        help="time the workers get to start before the jobs come due (s; at most 1.8 intervals)",
    )
    parser.add_argument("--local-jobs", type=int, default=1000)
    parser.add_argument(
        "--local-interval",
        type=float,
        default=defaults["poll_interval_s"].default,
        help="MEDIAGEN_POLL_INTERVAL_S of the local runs (shipped default)",
    )
    parser.add_argument(
        "--bound-concurrency",
        type=int,
        default=16,
        help="MEDIAGEN_POLL_CONCURRENCY of the provider-bound column: few enough polls in flight that every "
        "worker count's polls fit in the machine's CPU",
    )
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="which runs (all)")
    args = parser.parse_args()
    plan = Plan(
        jobs=args.jobs,
        done=args.jobs // 5 if args.done is None else args.done,
        interval_s=args.interval,
        concurrency=args.concurrency,
        bound_concurrency=args.bound_concurrency,
        poll_delay_s=args.poll_delay,
        ready_after_s=2.5 * args.interval if args.ready_after is None else args.ready_after,
        spread_s=4 * args.interval if args.spread is None else args.spread,
        # A worker's first tick waits for jobs due within two intervals; later ones, a tick apart.
        startup_s=min(args.startup, 1.8 * args.interval),
        local_jobs=args.local_jobs,
        local_interval_s=args.local_interval,
    )
    rows = []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(Cluster.running()) if "postgresql" in args.database else None
        databases = Databases(cluster)
        for database in args.database:
            rows += [measure(plan, databases, database, workers_n, args.runs) for workers_n in args.workers]
    print_table(plan, rows)


if __name__ == "__main__":
    main()
