"""``make scaled`` (``python -m mediagen.scaled``): PostgreSQL, two workers and an app without a
worker of its own come up on one machine, serve a generation end to end, and all stop on Ctrl+C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from .support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e
SERVING = re.compile(
    r"the studio serves (?P<base>\S+) \(app pid (?P<app>\d+), no worker of its own\); "
    r"workers: pids (?P<workers>[\d, ]+); PostgreSQL: (?P<url>\S+); data dir: (?P<data>\S+)\."
)


def _wait_for(what: str, predicate, timeout_s: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.2)
    return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_scaled_serves_a_video_through_its_workers_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    log_path = tmp_path / "scaled.log"
    port = free_port()
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-m", "mediagen.scaled", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        serving = _wait_for(
            "the serving line", lambda: runner.poll() is None and SERVING.search(log_path.read_text()), 150
        )
        base, url = serving["base"], serving["url"].replace("+psycopg", "")
        assert base == f"http://127.0.0.1:{port}"
        app_pid, worker_pids = int(serving["app"]), [int(p) for p in serving["workers"].split(", ")]
        assert len(worker_pids) == 2

        asked = httpx.post(
            f"{base}/api/videos/generate",
            json={"prompt": "waves at dusk", "model": "local-video", "duration": 1, "size": "128x72"},
            timeout=30,
        )
        assert asked.status_code == 202, asked.text
        status_url = asked.json()["check_status_url"]
        done = _wait_for(
            "the video to be made",
            lambda: (body := httpx.get(status_url, timeout=10).json())["status"] in ("completed", "failed") and body,
            90,
        )
        assert done["status"] == "completed", done
        video = httpx.get(done["result"]["video_url"], timeout=10)
        assert video.status_code == 200 and len(video.content) == done["result"]["file_size"]

        with psycopg.connect(url) as conn:
            names = [row[0] for row in conn.execute("SELECT application_name FROM pg_stat_activity")]
            ticking = conn.execute("SELECT count(*) FROM worker_heartbeats WHERE ticks > 0").fetchone()
        # Each process names its connections; the app has no worker, the two workers tick.
        assert sum(n.startswith(f"mediagen-worker-{os.uname().nodename}:") for n in names) >= 2, names
        assert any(n.startswith("mediagen-app-") for n in names), names
        assert ticking == (2,)
        text = log_path.read_text()
        assert "no worker in the app process (MEDIAGEN_WORKER_IN_APP=false)" in text
        assert re.search(r"worker tick: \{'submitted': 1", text), text

        os.killpg(runner.pid, signal.SIGINT)  # Ctrl+C: the terminal signals the whole foreground group
        assert runner.wait(timeout=90) == 0, log_path.read_text()
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()

    text = log_path.read_text()
    assert "stopped PostgreSQL and removed the trial's database and data dir" in text
    assert "Traceback" not in text, text
    assert not [pid for pid in (app_pid, *worker_pids) if _alive(pid)]
    assert not Path(serving["data"]).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
