"""Media in a local folder, served over HTTP by the app itself at ``/cdn``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import quote

UPLOAD_PREFIX = ".upload-"


class MediaURLs(Protocol):
    def media_base(self) -> str: ...

    def url(self, key: str) -> str: ...


class FixedURLs:
    """Media URLs under one fixed base, never signed."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def media_base(self) -> str:
        return self.base

    def url(self, key: str) -> str:
        return f"{self.base}/{quote(key)}"


class LocalStorage:
    name = "local"
    setup: str | None = None  # a folder: nothing to set up

    def __init__(
        self, root: Path, urls: str | MediaURLs, *, upload_dir: Path | None = None, stale_after_s: float = 600.0
    ) -> None:
        self.root = root.resolve()
        # A fixed base, or the studio's ``Serving``: the address of the running app, signed with sign-in.
        self.urls = FixedURLs(urls) if isinstance(urls, str) else urls
        # Outside the served folder but beside it (same filesystem: the final rename is atomic).
        self.upload_dir = (upload_dir or self.root.parent / "uploads").resolve()
        # An upload writes continuously, so a temp file untouched this long belongs to a dead process.
        self.stale_after_s = stale_after_s

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts or not key:
            raise ValueError(f"storage key {key!r} must be a relative path without '..'")
        return self.root.joinpath(*pure.parts)

    def put(self, key: str, data: BinaryIO, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        # Write outside the served folder and rename, so a reader never sees half a file, and a
        # process killed mid-write (no except clause runs) leaves its file where /cdn cannot serve it.
        fd, tmp_name = tempfile.mkstemp(dir=self.upload_dir, prefix=UPLOAD_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(data, out, length=1024 * 1024)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        with path.open("rb") as source:
            self.put(key, source, content_type, metadata)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for key in keys:
            try:
                self.delete(key)
            except (OSError, ValueError) as exc:
                failed[key] = f"{type(exc).__name__}: {exc}"
        return failed

    def delete_prefix(self, prefix: str) -> int:
        folder, _, stem = prefix.rpartition("/")
        removed = 0
        for path in self._path(folder).glob(f"{stem}*") if folder else []:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            return path.stat().st_size if path.is_file() else None
        except FileNotFoundError:
            return None

    def url(self, key: str) -> str:
        return self.urls.url(key)

    def sweep_uploads(self) -> int:
        """Remove temp files that killed processes left in the upload folder; return how many."""
        removed = 0
        cutoff = time.time() - self.stale_after_s
        for path in self.upload_dir.glob(f"{UPLOAD_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def prepare(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        notes = [f"media folder {self.root} is served at {self.urls.media_base()}"]
        if removed := self.sweep_uploads():
            notes.append(f"removed {removed} unfinished upload(s) left in {self.upload_dir}")
        return notes
