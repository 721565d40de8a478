"""Real ``python -m mediagen worker`` processes for the fault tests: their environment, a pool that
stops every one on the way out, what their logs say, and an in-process studio on the same data.

Every wait is a poll with a deadline on something observable (``wait_for``); nothing sleeps
blindly and calls it an assertion.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mediagen.config import Settings
from mediagen.studio import Studio

from .fake_providers import FakeProviders

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
LEASE_S = 3  # short, so a dead worker's job frees up quickly
DOWNLOAD_TIMEOUT_S = 2  # the settings insist lease_s > download_timeout_s


def wait_for(predicate: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def provider_env(fake: FakeProviders) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": fake.OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',  # the fake on loopback stands in for public hosts
    }


def worker_env(fake: FakeProviders | None, data_dir: Path, **settings: Any) -> dict[str, str]:
    """A worker's environment: only the ``MEDIAGEN_*`` settings given here (``None`` leaves one
    unset, e.g. ``database_url=None`` for the data dir's SQLite file) and the fake's keys."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGEN_", "OPENAI_", "MINIMAX_", "REPLICATE_"))}
    return {
        **base,
        **(provider_env(fake) if fake else {"MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]'}),
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_PUBLIC_BASE_URL": "http://127.0.0.1:9/cdn",
        "MEDIAGEN_POLL_INTERVAL_S": "0.1",
        **{f"MEDIAGEN_{k.upper()}": str(v) for k, v in settings.items() if v is not None},
    }


@dataclass
class Worker:
    """One ``python -m mediagen worker`` process; its stderr (the log) goes to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.kill()
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def outcomes(self) -> Counter[str]:
        return tick_outcomes(self.log())


def tick_outcomes(log_text: str) -> Counter[str]:
    """Sum of every ``worker tick: {...}`` and ``worker copy: {...}`` line a worker logged. A tick
    hands finished results to background copies ("copying"); the copy logs how it ended."""
    total: Counter[str] = Counter()
    for match in re.finditer(r"worker (?:tick|copy): (\{.*?\})", log_text):
        total.update(ast.literal_eval(match.group(1)))
    del total["copying"]
    return total


@contextlib.contextmanager
def worker_pool(workdir: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``start(env, name)``; every one is stopped on the way out."""
    started: list[Worker] = []
    handles: list[Any] = []

    def start(env: dict[str, str], name: str) -> Worker:
        log_path = workdir / f"{name}.log"
        handle = log_path.open("wb")
        handles.append(handle)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediagen", "worker"],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
        started.append(Worker(proc, log_path, name))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for handle in handles:
            handle.close()


def open_studio(fake: FakeProviders | None, data_dir: Path, **settings: Any) -> Studio:
    """An in-process studio on ``data_dir``; provider keys and the outbound allow-list come from
    the environment, as in a deployment."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MEDIAGEN_"):
                patch.delenv(name)
        env = provider_env(fake) if fake else {"MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]'}
        for name, value in env.items():
            patch.setenv(name, value)
        return Studio.open(Settings(data_dir=data_dir, public_base_url="http://127.0.0.1:9/cdn", **settings))


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (hidden temp files included, so leaks show)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def spool_leftovers(data_dir: Path) -> list[str]:
    """Files in the download spool. A ``*.lock`` file is not a leftover: a fix may keep one per
    live process to mark the spool files it owns."""
    return [name for name in files_under(data_dir / "spool") if not name.endswith(".lock")]


OUT_OF_REACH = "WARNING mediagen.db.engine: the database … is out of reach"
# psycopg's own note when the server cuts a connection in the middle of a batched statement
# (pipeline mode): the driver's, one per cut batch, not a line of ours.
DRIVER_CUT_NOTE = "WARNING psycopg: error ignored terminating <psycopg.Pipeline"


def problem_lines(log_text: str) -> list[str]:
    """A worker log's lines above INFO, and its tracebacks, with the outage warning's details
    (database URL, reason) left out so that one such line reads the same in every log."""
    lines = []
    for line in log_text.splitlines():
        if line.startswith("Traceback"):
            lines.append(line)
        elif (" WARNING " in line or " ERROR " in line or " CRITICAL " in line) and DRIVER_CUT_NOTE not in line:
            lines.append(OUT_OF_REACH if "is out of reach (" in line else line.split(" ", 2)[2])
    return lines
