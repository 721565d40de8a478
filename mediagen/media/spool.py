"""The download spool: provider output waits on disk between download and upload, each process
in a folder of its own, so that a sweep tells a live process's files from a dead one's by a lock
the kernel holds for the process, never by their age (a long upload, a clock step, a paused VM).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from pathlib import Path

LOCK_SUFFIX = ".lock"  # beside each process's folder: held while the process lives


class Spool:
    """This process's own folder in the download spool ``root``: provider output waits here between
    download and upload. ``{name}.lock`` beside it stays locked (``flock``) while the process
    lives, and the kernel lets go of it when the process dies, kill -9 included; so ``sweep_spool``
    tells a live process's files from a dead one's by the lock, never by their age.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.folder = root / name
        self._lock_path = root / f"{name}{LOCK_SUFFIX}"
        self._lock_fd: int | None = None
        self._guard = threading.Lock()

    def claim(self) -> Path:
        """The folder, locked and made on first use."""
        with self._guard:
            if self._lock_fd is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _hold_lock(self._lock_path)
            self.folder.mkdir(exist_ok=True)
        return self.folder

    def close(self) -> None:
        """Remove the folder and let go of it: for when nothing of this process is being copied."""
        with self._guard:
            if self._lock_fd is None:
                return
            shutil.rmtree(self.folder, ignore_errors=True)
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None


def _hold_lock(path: Path) -> int:
    """An open descriptor holding an exclusive lock on ``path``. A sweep may have unlinked the file
    between our open and our lock (it found it unlocked): then lock a new one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


def sweep_spool(root: Path, legacy_older_than_s: float) -> int:
    """Remove what processes that died left in the spool ``root``: the folder of every process
    whose lock is free, with its lock. Files directly in ``root`` come from versions before
    per-process folders, which may still run during an upgrade: those go once older than
    ``legacy_older_than_s`` (the lease, which a live download's file is younger than). Returns
    how many files were removed."""
    removed = 0
    for lock_path in root.glob(f"*{LOCK_SUFFIX}"):
        removed += _remove_if_dead(lock_path)
    cutoff = time.time() - legacy_older_than_s
    for path in root.glob("ingest-*.part"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _remove_if_dead(lock_path: Path) -> int:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:  # another sweep got there first
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its process is alive
        folder = lock_path.with_name(lock_path.name.removesuffix(LOCK_SUFFIX))
        files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        return files
    finally:
        os.close(fd)
