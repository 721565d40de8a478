"""Start `streamlit run app.py` for real, on a free loopback port with its own data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AppServer:
    base: str
    env: dict[str, str]
    data_dir: Path
    pid: int  # the server process, for what only the OS can tell (its open watches, its threads)
    log_path: Path  # its stdout and stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_server(
    workdir: Path,
    *,
    port: int | None = None,
    streamlit_args: tuple[str, ...] = (),
    data_dir: Path | None = None,
    **settings: str,
) -> Iterator[AppServer]:
    """``streamlit run app.py`` with its log, HOME and (unless ``data_dir`` is given, e.g. one
    several replicas share) data dir in ``workdir``; each of ``settings`` becomes ``MEDIAGEN_<NAME>``
    in its environment."""
    data_dir = data_dir or workdir / "data"
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MEDIAGEN_DATA_DIR": str(data_dir),
        # Unset, as after `make run`: local media URLs follow the port the app serves, and the CLI
        # finds the running app; S3 media is presigned. A test may still pass public_base_url.
        "MEDIAGEN_PUBLIC_BASE_URL": "",
        "MEDIAGEN_POLL_INTERVAL_S": "0.3",
        "PYTHONPATH": str(ROOT),
        # A developer's own ~/.streamlit/secrets.toml must not turn sign-in on in a test server.
        "HOME": str(workdir),
        **{f"MEDIAGEN_{k.upper()}": v for k, v in settings.items()},
    }
    log_path = workdir / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), *streamlit_args]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(base, proc, log_path)
            yield AppServer(base, env, data_dir, proc.pid, log_path)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("streamlit did not become healthy:\n" + log_path.read_text())
