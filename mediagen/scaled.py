"""Try the studio scaled out on one machine, run as a deployment runs it (``make scaled``): a
throwaway PostgreSQL, two ``python -m mediagen worker`` processes, and one app server
(``streamlit run app.py``) with ``MEDIAGEN_WORKER_IN_APP=false``, so the workers do all polling,
copying and housekeeping.

    python -m mediagen.scaled [--host 127.0.0.1] [--port 8501] [--workers 2]

It prints where the studio serves. Ctrl+C (or SIGTERM) stops the app, then the workers, then the
database, and removes the database and the data dir made for the trial; so does any of them
stopping on its own. Everything else (provider keys, MEDIAGEN_* settings) comes from the
environment as usual.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .db.engine import Database
from .db.local_cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent  # where app.py and .streamlit/ are
DATABASE = "mediagen"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
            self.popen.kill()
            self.popen.wait()


def say(message: str) -> None:
    print(f"mediagen.scaled: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mediagen.scaled", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="where the app server listens (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="the app server's port (default 8501)")
    parser.add_argument("--workers", type=int, default=2, help="how many worker processes (default 2)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    data_dir = Path(tempfile.mkdtemp(prefix="mediagen-scaled-"))
    try:
        with Cluster.running() as cluster:
            cluster.execute(f'CREATE DATABASE "{DATABASE}"')
            url = cluster.url(DATABASE)
            database = Database(url)
            database.upgrade()
            database.dispose()
            return _serve(args, url, data_dir, stop)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        say("stopped PostgreSQL and removed the trial's database and data dir")


def _serve(args: argparse.Namespace, url: str, data_dir: Path, stop: threading.Event) -> int:
    env = {
        **os.environ,
        "MEDIAGEN_DATABASE_URL": url,
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_WORKER_IN_APP": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started: list[Process] = []

    def start(name: str, command: list[str]) -> Process:
        # A session of its own: Ctrl+C in the terminal reaches this process only, which then
        # stops the others in order (the app before the workers before the database).
        popen = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        started.append(Process(name, popen))
        return started[-1]

    try:
        worker = [sys.executable, "-m", "mediagen", "worker"]
        workers = [start(f"worker {i}", worker) for i in range(1, args.workers + 1)]
        app = start(
            "the app server",
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.address",
                args.host,
                "--server.port",
                str(args.port),
            ],
        )
        base = f"http://{args.host}:{args.port}"
        if not _healthy(base, started, stop):
            return 1 if not stop.is_set() else 0
        say(
            f"the studio serves {base} (app pid {app.popen.pid}, no worker of its own); "
            f"workers: pids {', '.join(str(w.popen.pid) for w in workers)}; PostgreSQL: {url}; "
            f"data dir: {data_dir}. Ctrl+C stops them all."
        )
        while not stop.wait(0.5):
            if ended := _ended(started):
                say(f"{ended.name} stopped by itself (exit {ended.popen.returncode}); stopping the rest")
                return 1
        say("stopping the app server and the workers")
        return 0
    finally:
        for process in reversed(started):  # the app first: nothing new is asked of the workers meanwhile
            process.stop()


def _healthy(base: str, started: list[Process], stop: threading.Event) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        if ended := _ended(started):
            say(f"{ended.name} stopped while starting (exit {ended.popen.returncode}); see its messages above")
            return False
        try:
            if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(0.3)
    if not stop.is_set():
        say(f"the app server did not answer at {base} within {START_TIMEOUT_S:.0f} s")
    return False


def _ended(started: list[Process]) -> Process | None:
    return next((p for p in started if p.popen.poll() is not None), None)


if __name__ == "__main__":
    sys.exit(main())
