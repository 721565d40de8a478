"""A stored object's bytes over HTTP, whole or one byte range (206), from any storage backend,
streamed: a video is never read into memory."""

from __future__ import annotations

import re
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import InvalidInput
from ..storage.base import Storage

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _wanted(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, or None for the whole object."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        raise InvalidInput("Range", f"{header!r} is not one byte range", "bytes=START-END, bytes=START- or bytes=-N")
    if not match[1]:  # the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    else:
        start, end = int(match[1]), min(int(match[2]) if match[2] else size - 1, size - 1)
    if start >= size or start > end:
        return (-1, -1)
    return start, end


def _chunks(storage: Storage, key: str, start: int, length: int) -> Iterator[bytes]:
    with storage.open(key) as handle:
        if start:
            if handle.seekable():
                handle.seek(start)
            else:  # a network stream: read past what is not wanted
                skip = start
                while skip:
                    skipped = handle.read(min(CHUNK, skip))
                    if not skipped:
                        return
                    skip -= len(skipped)
        left = length
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def stored_bytes(request: Request, storage: Storage, key: str, size: int, content_type: str) -> Response:
    headers = {"Accept-Ranges": "bytes"}
    wanted = _wanted(request.headers.get("range"), size)
    if wanted == (-1, -1):
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(storage, key, 0, size), media_type=content_type, headers=headers)
    start, end = wanted
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = _chunks(storage, key, start, end - start + 1)
    return StreamingResponse(body, status_code=206, media_type=content_type, headers=headers)
