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
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from tests.support.fake_providers import FakeProviders, Recorded  # noqa: E402

POLL_DELAY_S = 0.1
GIVE_UP_AFTER_S = 90.0  # after the last task is ready; a run that has not finished by then is cut short
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the fake, in its own process -------------------------------------------------------------
class SweepFake(FakeProviders):
    """OpenAI videos whose status depends on time: in progress until each task's ready time."""

    def __init__(self, poll_delay_s: float) -> None:
        super().__init__()
        self.route_delay_s["openai.videos.get"] = poll_delay_s

    def make_tasks(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            call = Recorded("bench", "POST", "/", {}, {}, None, {"model": "sora-2", "prompt": f"sweep {i}"}, b"")
            ids.append(json.loads(self._openai_create(call, None).body)["id"])  # type: ignore[arg-type]
        with self._lock:
            self.requests.clear()
        return ids

    def schedule(self, start: float, ready_after_s: float, spread_s: float, seed: int) -> None:
        rng = random.Random(seed)
        with self._lock:
            for task in self._tasks.values():
                task["ready_at"] = start + ready_after_s + rng.uniform(0, spread_s)

    def _openai_get(self, call: Recorded, _reply: Any) -> Any:
        task_id = call.path.rsplit("/", 1)[-1]
        now = time.time()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return self._openai_missing(task_id)
            ready = now >= task.get("ready_at", float("inf"))
            task["polls"] += 1
            task["status"] = "completed" if ready else "in_progress"
            if ready:
                task.setdefault("reported_at", now)
        resource = self._video_resource(task_id, task["status"], 100 if ready else 50)
        return JSONResponse(resource, headers={"openai-poll-after-ms": "50"})

    def report(self) -> dict[str, Any]:
        with self._lock:
            polls = [(r.at, r.path.rsplit("/", 1)[-1]) for r in self.requests if r.route == "openai.videos.get"]
            downloads = [
                (r.at, r.path.split("/")[-2])
                for r in self.requests
                if r.route == "openai.videos.content" and r.query.get("variant") == "video"
            ]
            tasks = {
                task_id: {"ready_at": t.get("ready_at"), "reported_at": t.get("reported_at")}
                for task_id, t in self._tasks.items()
            }
        return {"polls": polls, "downloads": downloads, "tasks": tasks, "cpu_s": time.process_time()}


def serve_fake(poll_delay_s: float) -> None:
    """Control loop on stdin/stdout, one JSON object per line each way."""
    fake = SweepFake(poll_delay_s).start()
    print(json.dumps({"base_url": fake.base_url, "openai_base": fake.openai_base}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        answer = {"tasks": fake.make_tasks, "schedule": fake.schedule, "report": fake.report}[op](**command)
        print(json.dumps(answer), flush=True)
    fake.stop()


class FakeProcess:
    def __init__(self, poll_delay_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake", str(poll_delay_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        hello = self.read()
        self.base_url, self.openai_base = hello["base_url"], hello["openai_base"]

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake provider process died")
        return json.loads(line)

    def call(self, op: str, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)


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


def _env(fake: FakeProcess, data_dir: Path, config: Config) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGEN_", "OPENAI_"))}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "OPENAI_API_KEY": FakeProviders.OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        "MEDIAGEN_POLL_CONCURRENCY": str(config.concurrency),
        "MEDIAGEN_POLL_INTERVAL_S": str(config.interval_s),
    }


def _studio(env: dict[str, str]) -> Any:
    os.environ.update({k: v for k, v in env.items() if k.startswith(("MEDIAGEN_", "OPENAI_"))})
    from mediagen.config import Settings
    from mediagen.studio import Studio

    return Studio.open(Settings())


def _in_flight(studio: Any, task_ids: list[str]) -> list[str]:
    """Jobs as the poller would have left them right after submitting each one (bulk insert)."""
    from mediagen.db.tables import Job, JobEvent, utcnow
    from mediagen.jobs import actions
    from mediagen.jobs.status import JobKind, JobStatus

    request = actions.validate(studio, JobKind.VIDEO, "sweep", "sora-2", None)
    now = utcnow()
    with studio.db.write() as session:
        rows = []
        for i, task_id in enumerate(task_ids):
            job = Job(
                kind=JobKind.VIDEO,
                status=JobStatus.QUEUED,
                provider="openai",
                model="sora-2",
                prompt=f"sweep {i}",
                params=request.params,
                created_at=now,
                deadline_at=now + timedelta(hours=1),
                next_poll_at=now,
                provider_job_id=task_id,
                submitted_at=now,
            )
            session.add(job)
            session.add(JobEvent(job=job, at=now, status="queued", progress=0))
            rows.append(job)
        session.flush()
        return [job.id for job in rows]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _pcts(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def run(config: Config, n_jobs: int, ready_after_s: float, spread_s: float) -> Result:
    from mediagen.db.tables import Job

    started = time.monotonic()
    fake = FakeProcess(POLL_DELAY_S)
    workers: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = _env(fake, data_dir, config)
        studio = _studio(env)
        try:
            task_ids = fake.call("tasks", n=n_jobs)
            job_ids = _in_flight(studio, task_ids)
            t0 = time.time()
            ready_after = ready_after_s if config.watch_s is None else 10**6
            fake.call("schedule", start=t0, ready_after_s=ready_after, spread_s=spread_s, seed=1)
            for i in range(config.workers):
                log = (Path(tmp) / f"worker-{i}.log").open("wb")
                workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "mediagen", "worker"],
                        env=env,
                        cwd=tmp,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
            limit = t0 + (config.watch_s + 3 if config.watch_s else ready_after_s + spread_s + GIVE_UP_AFTER_S)
            done = 0
            while time.time() < limit:
                with studio.db.read() as session:
                    done = session.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded"))
                if config.watch_s is None and done >= n_jobs:
                    break
                time.sleep(0.5)
            worker_cpu = sum(_cpu_s(w.pid) for w in workers)
            report = fake.call("report")
            with studio.db.read() as session:
                finished = dict(
                    session.execute(
                        select(Job.provider_job_id, Job.finished_at).where(
                            Job.id.in_(job_ids), Job.status == "succeeded"
                        )
                    ).all()
                )
            # Put every job out of reach before the workers stop, so they stop quickly.
            with studio.db.write() as session:
                session.execute(update(Job).where(Job.status.in_(["queued", "running"])).values(next_poll_at=None))
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
            studio.close()
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
    lag_ready = [finished[t].timestamp() - tasks[t]["ready_at"] for t in finished if t in tasks]
    lag_report = [
        finished[t].timestamp() - tasks[t]["reported_at"] for t in finished if tasks.get(t, {}).get("reported_at")
    ]
    lag_seen = [t["reported_at"] - t["ready_at"] for t in tasks.values() if t.get("reported_at") and t.get("ready_at")]
    return Result(
        config=config,
        sweep_s=sweep,
        sweep_extrapolated=extrapolated,
        polls_per_s=rate,
        lag_ready=_pcts(lag_ready) if config.watch_s is None else None,
        lag_seen=_pcts(lag_seen) if config.watch_s is None else None,
        lag_report=_pcts(lag_report) if config.watch_s is None else None,
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
def _fmt_pair(pair: tuple[float, float] | None) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}" if pair else "n/a"


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
    parser.add_argument("--serve-fake", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is not None:
        serve_fake(args.serve_fake)
        return

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
            f"| {_fmt_pair(r.lag_ready)} | {_fmt_pair(r.lag_seen)} | {_fmt_pair(r.lag_report)} | {done} "
            f"| {r.polls} | {r.worker_cpu_s:.1f} | {r.fake_cpu_s:.1f} | {r.wall_s:.0f} |"
        )

    print("\nIdle tick (nothing due), in-process, mean of 100:\n")
    print("| tick | CPU ms/tick | wall ms/tick |")
    print("|---|---:|---:|")
    for label, cpu_ms, wall_ms in idle_tick_cpu(args.jobs):
        print(f"| {label} | {cpu_ms:.2f} | {wall_ms:.2f} |")


if __name__ == "__main__":
    main()
