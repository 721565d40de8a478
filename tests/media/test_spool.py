"""The download spool: a folder per process, locked while the process lives, and a sweep that
goes by the lock (real processes, one of them killed with -9)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mediagen.media.spool import Spool, sweep_spool

SPOOLING_PROCESS = """
import sys, time
from pathlib import Path
from mediagen.media.spool import Spool
folder = Spool(Path(sys.argv[1]), sys.argv[2]).claim()
(folder / "ingest-x.part").write_bytes(b"half a video")
print("spooling", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def _spooling_process(root: Path, name: str) -> Iterator[subprocess.Popen[str]]:
    """Another process with a file in its spool folder, alive until the block ends (or killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SPOOLING_PROCESS, str(root), name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "spooling\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_sweep_removes_the_spool_folders_of_dead_processes_and_never_a_live_ones(tmp_path) -> None:
    """Each process spools in a folder of its own, locked while it lives. A sweep goes by the lock,
    not by age: a live process's files stay however old they look (a long upload, a clock step), a
    process killed with -9 loses its folder at once."""
    root = tmp_path / "spool"
    here = Spool(root, "this-process")
    (here.claim() / "ingest-mine.part").write_bytes(b"x")
    with _spooling_process(root, "alive"), _spooling_process(root, "killed") as killed:
        for path in root.rglob("ingest-*.part"):
            _age(path, 86_400)
        killed.kill()
        killed.wait(timeout=10)
        # Files from before per-process folders: a stale one goes, a fresh one may be a live download.
        (root / "ingest-legacy-old.part").write_bytes(b"x")
        (root / "ingest-legacy-new.part").write_bytes(b"x")
        _age(root / "ingest-legacy-old.part", 3600)

        assert sweep_spool(root, legacy_older_than_s=600) == 2
        left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        assert left == [
            "alive",
            "alive.lock",
            "alive/ingest-x.part",
            "ingest-legacy-new.part",
            "this-process",
            "this-process.lock",
            "this-process/ingest-mine.part",
        ]
        assert sweep_spool(root, legacy_older_than_s=600) == 0
    here.close()
    assert sorted(p.name for p in root.iterdir()) == ["alive", "alive.lock", "ingest-legacy-new.part"]
