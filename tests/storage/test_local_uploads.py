"""Local storage's temporary upload files: a process killed mid-upload (kill -9, no cleanup code
runs) must leave nothing in the folder ``/cdn`` serves, and what it leaves elsewhere is swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mediagen.config import Settings
from mediagen.storage import make_storage
from mediagen.studio import Studio
from mediagen.worker import housekeeping

from ..support.servers import ROOT

# Writes 2 MiB of a PNG's worth of bytes through LocalStorage.put, then blocks forever mid-upload.
UPLOADER = r"""
import io, sys, time
from pathlib import Path
from mediagen.config import Settings
from mediagen.storage import make_storage

class Stalling(io.RawIOBase):
    def __init__(self):
        self.sent = 0
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.sent >= 2 * 1024 * 1024:
            print("stalled", flush=True)
            time.sleep(3600)
        n = len(buffer)
        buffer[:n] = b"\x89PNG" * (n // 4) + b"x" * (n % 4)
        self.sent += n
        return n

storage = make_storage(Settings(data_dir=Path(sys.argv[1]), public_base_url="http://127.0.0.1:9/cdn"))
storage.put("image/2026/12/03/job-0.png", io.BufferedReader(Stalling()), "image/png")
"""


def _killed_mid_upload(data_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, str(data_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"stalled"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_kill_9_mid_upload_leaves_nothing_where_media_is_served(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _killed_mid_upload(data_dir)
    settings = Settings(data_dir=data_dir, public_base_url="http://127.0.0.1:9/cdn")
    # Nothing half-written beside the media: /cdn serves that folder as it is.
    assert _files(settings.media_dir) == []
    left = [path for path in _files(data_dir) if path.stat().st_size >= 2 * 1024 * 1024]
    assert len(left) == 1, _files(data_dir)
    assert left[0].parent == settings.upload_dir


def test_stale_upload_files_are_swept_at_start_and_by_housekeeping(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _killed_mid_upload(data_dir)
    settings = Settings(data_dir=data_dir, public_base_url="http://127.0.0.1:9/cdn", lease_s=900)
    (dead,) = _files(settings.upload_dir)
    # A recent file may be another process's upload in progress: kept.
    make_storage(settings).prepare()
    assert dead.exists()
    old = time.time() - settings.lease_s - 1
    os.utime(dead, (old, old))
    make_storage(settings).prepare()  # the app's start
    assert not dead.exists()

    _killed_mid_upload(data_dir)
    (dead,) = _files(settings.upload_dir)
    os.utime(dead, (old, old))
    studio = Studio.open(settings)
    try:
        done, error = housekeeping.run(studio, "worker-1")
    finally:
        studio.close()
    assert error is None
    assert done == Counter(uploads_files_removed=1)
    assert _files(settings.upload_dir) == []
