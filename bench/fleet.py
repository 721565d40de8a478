"""What the worker benches share: the loopback fake of OpenAI's video API in its own process,
in-flight video jobs inserted as a poller leaves them, ``python -m mediagen worker`` processes on
one database, and the CPU they use (from ``/proc``, so threads and all).

The fake answers every poll after a delay; each task reports ``in_progress`` until its ready time
(``schedule``), then ``completed``. It records every poll it answers and, per task, when it became
ready (from then on it reports it done) and when a poll first heard so.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from mediagen.config import Settings  # noqa: E402
from mediagen.db.local_cluster import Cluster  # noqa: E402
from mediagen.db.tables import Job, JobEvent, utcnow  # noqa: E402
from mediagen.jobs import actions  # noqa: E402
from mediagen.jobs.status import ACTIVE_STATUSES, FINAL_STATUSES, JobKind, JobStatus  # noqa: E402
from mediagen.studio import Studio  # noqa: E402
from tests.support.fake_providers import FakeProviders, Recorded  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTED_LINE = "polling every"  # what ``python -m mediagen worker`` prints once it runs


# -- the fake, in its own process -------------------------------------------------------------
class SweepFake(FakeProviders):
    """OpenAI videos whose status depends on time: in progress until each task's ready time."""

    def __init__(self, poll_delay_s: float) -> None:
        super().__init__()
        self.set_delay(poll_delay_s)

    def set_delay(self, poll_delay_s: float) -> None:
        self.route_delay_s["openai.videos.get"] = poll_delay_s

    def make_tasks(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            call = Recorded("bench", "POST", "/", {}, {}, None, {"model": "sora-2", "prompt": f"sweep {i}"}, b"")
            ids.append(json.loads(self._openai_create(call, None).body)["id"])  # type: ignore[arg-type]
        with self._lock:
            self.requests.clear()
        return ids

    def schedule(
        self, start: float, ready_after_s: float, spread_s: float, seed: int, count: int | None = None
    ) -> None:
        """The first ``count`` tasks (all by default) become ready at random times in
        ``start + ready_after_s`` … ``+ spread_s``; the others stay in progress."""
        rng = random.Random(seed)
        with self._lock:
            for i, task in enumerate(self._tasks.values()):
                if count is None or i < count:
                    task["ready_at"] = start + ready_after_s + rng.uniform(0, spread_s)

    def polled(self) -> int:
        """How many tasks have been polled at least once."""
        with self._lock:
            return sum(1 for task in self._tasks.values() if task["polls"])

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
    operations = {
        "tasks": fake.make_tasks,
        "schedule": fake.schedule,
        "delay": fake.set_delay,
        "polled": fake.polled,
        "report": fake.report,
    }
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        print(json.dumps(operations[op](**command)), flush=True)
    fake.stop()


class FakeProcess:
    """The fake in a process of its own, so its CPU is not the workers' (nor the bench's)."""

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

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)


# -- the studio the workers share -------------------------------------------------------------
def worker_env(
    fake: FakeProcess | None,
    data_dir: Path,
    *,
    concurrency: int,
    interval_s: float,
    database_url: str | None = None,
) -> dict[str, str]:
    """The environment of a worker (and of the bench's own studio): only what is set here of
    ``MEDIAGEN_*`` and ``OPENAI_*``, pointing OpenAI at the fake when there is one."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGEN_", "OPENAI_"))}
    env = {
        **keep,
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        "MEDIAGEN_POLL_CONCURRENCY": str(concurrency),
        "MEDIAGEN_POLL_INTERVAL_S": str(interval_s),
    }
    if fake is not None:
        env |= {"OPENAI_API_KEY": FakeProviders.OPENAI_KEY, "OPENAI_BASE_URL": fake.openai_base}
    if database_url:
        env["MEDIAGEN_DATABASE_URL"] = database_url
    return env


def open_studio(env: dict[str, str]) -> Any:
    """The bench's own studio on the workers' database (migrated here, before they start)."""
    for name in [n for n in os.environ if n.startswith(("MEDIAGEN_", "OPENAI_"))]:
        del os.environ[name]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("MEDIAGEN_", "OPENAI_"))})
    return Studio.open(Settings())


def insert_in_flight(studio: Any, task_ids: list[str], *, due_at: datetime | None = None) -> list[str]:
    """Jobs as the poller would have left them right after submitting each one (bulk insert),
    due for their next poll at ``due_at`` (now by default)."""
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
                next_poll_at=due_at or now,
                provider_job_id=task_id,
                submitted_at=now,
            )
            session.add(job)
            session.add(JobEvent(job=job, at=now, status="queued", progress=0))
            rows.append(job)
        session.flush()
        return [job.id for job in rows]


def park_active_jobs(studio: Any) -> None:
    """Put every unfinished job out of the workers' reach, so they stop quickly."""
    with studio.db.write() as session:
        session.execute(update(Job).where(Job.status.in_(ACTIVE_STATUSES)).values(next_poll_at=None))


# -- worker processes -------------------------------------------------------------------------
class Workers:
    """``python -m mediagen worker`` processes, each logging to a file in ``log_dir``."""

    def __init__(self, env: dict[str, str], count: int, log_dir: Path) -> None:
        self.logs = [log_dir / f"worker-{i}.log" for i in range(count)]
        self.procs = []
        for log in self.logs:
            with log.open("wb") as stderr:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "mediagen", "worker"],
                        env=env,
                        cwd=log_dir,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )

    def wait_started(self, timeout_s: float = 60.0) -> bool:
        """Whether every worker said it runs within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(STARTED_LINE in log.read_text(errors="replace") for log in self.logs):
                return True
            if any(proc.poll() is not None for proc in self.procs):
                raise RuntimeError(f"a worker exited early; see {self.logs}")
            time.sleep(0.05)
        return False

    def cpu_s(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def errors(self) -> list[str]:
        """Tracebacks and error lines the workers logged."""
        return [
            line
            for log in self.logs
            for line in log.read_text(errors="replace").splitlines()
            if "Traceback" in line or " ERROR " in line
        ]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- where each run's database lives ----------------------------------------------------------
class Databases:
    """A new SQLite file per run (in the run's data dir), or a new database per run on one
    throwaway PostgreSQL cluster for the whole bench."""

    def __init__(self, cluster: Cluster | None) -> None:
        self.cluster = cluster

    @contextlib.contextmanager
    def fresh(self, database: str) -> Iterator[str | None]:
        if database == "sqlite":
            yield None
            return
        assert self.cluster is not None
        name = self.cluster.create_database()
        try:
            yield self.cluster.url(name)
        finally:
            self.cluster.drop_database(name)

    def server_cpu_s(self, database: str) -> float | None:
        """The PostgreSQL server's CPU so far: the postmaster, its live backends and those it reaped."""
        if database == "sqlite":
            return None
        assert self.cluster is not None
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        total = cpu_seconds(postmaster, reaped_children=True)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += cpu_seconds(int(stat.parent.name))
        return total


@dataclass(frozen=True)
class Setup:
    """A run's data dir and database, migrated: the workers' environment, the bench's own studio
    on it, and a folder for the workers' logs."""

    env: dict[str, str]
    studio: Any
    folder: Path


@contextlib.contextmanager
def new_setup(
    databases: Databases, database: str, fake: FakeProcess | None, *, interval_s: float, concurrency: int
) -> Iterator[Setup]:
    with tempfile.TemporaryDirectory() as tmp, databases.fresh(database) as url:
        env = worker_env(fake, Path(tmp) / "data", concurrency=concurrency, interval_s=interval_s, database_url=url)
        studio = open_studio(env)
        try:
            yield Setup(env, studio, Path(tmp))
        finally:
            studio.close()


@contextlib.contextmanager
def running_workers(setup: Setup, count: int) -> Iterator[Workers]:
    workers = Workers(setup.env, count, setup.folder)
    try:
        yield workers
    finally:
        park_active_jobs(setup.studio)
        workers.stop()


def set_due(studio: Any, due: float) -> None:
    """Make every job due for a poll at ``due`` (epoch seconds)."""
    with studio.db.write() as session:
        session.execute(update(Job).values(next_poll_at=at(due)))


def sleep_until(timestamp: float) -> None:
    time.sleep(max(0.0, timestamp - time.time()))


def count_jobs(studio: Any, statuses: Iterable[JobStatus]) -> int:
    with studio.db.read() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(statuses))) or 0


def wait_for(studio: Any, statuses: Iterable[JobStatus], count: int, until: float) -> None:
    """Until ``count`` jobs are in one of ``statuses``, or the clock reaches ``until``."""
    while time.time() < until and count_jobs(studio, statuses) < count:
        time.sleep(0.5)


def finished_at(studio: Any) -> dict[str, float]:
    """Provider task id -> when its job was stored, for every job that succeeded."""
    with studio.db.read() as session:
        rows = session.execute(select(Job.provider_job_id, Job.finished_at).where(Job.status == JobStatus.SUCCEEDED))
        return {task_id: stored.timestamp() for task_id, stored in rows}


def failure_codes(studio: Any) -> dict[str, int]:
    """Error code -> how many jobs ended without success with it."""
    with studio.db.read() as session:
        rows = session.execute(
            select(Job.error_code, func.count())
            .where(Job.status.in_(FINAL_STATUSES - {JobStatus.SUCCEEDED}))
            .group_by(Job.error_code)
        )
        return {str(code): n for code, n in rows}


# -- measuring --------------------------------------------------------------------------------
def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU of a live process (all its threads), plus that of its children it has
    waited for when asked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every process of everyone."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # up to steal; guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The machine's CPU use between two ``machine_cpu`` readings, 0–1 of all its cores."""
    return (after[0] - before[0]) / max(1e-9, after[1] - before[1])


def p50_p95(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def pair_text(pair: tuple[float, float] | None) -> str:
    """A ``p50_p95`` as the tables print it."""
    return f"{pair[0]:.2f} / {pair[1]:.2f}" if pair else "n/a"


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-fake"]:
    serve_fake(float(sys.argv[2]))
