"""What a storage backend is: put, open, delete, exists, and a URL for a key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class Storage(Protocol):
    name: str
    # What ``prepare`` sets up on the backend that an admin may want to ensure again by hand (the
    # bucket's CORS and lifecycle rules); None when there is nothing to set up.
    setup: str | None

    def put(self, key: str, data: BinaryIO, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        """Store ``data`` (read from its current position) under ``key``, replacing any object.
        The object appears whole or not at all. ``metadata`` is small and ASCII."""
        ...

    def put_file(self, key: str, path: Path, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        """Store the file at ``path`` under ``key``, as ``put`` does. Backends read it lazily from
        disk, part by part, so memory stays flat whatever the file size."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Remove the keys, in as few requests as the backend allows; return those that could not
        be removed, each with the reason. Missing keys are not failures. May raise when the
        backend cannot be reached at all (then nothing is known to be removed)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix``; return how many."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None:
        """The stored object's length in bytes; None when there is no such object."""
        ...

    def url(self, key: str) -> str:
        """An absolute URL a browser can fetch, made now (presigned URLs are never stored)."""
        ...

    def prepare(self) -> list[str]:
        """Make sure the backend is ready to serve browsers (CORS, lifecycle); say what was done."""
        ...
