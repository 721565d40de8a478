"""Result copies beside the polling: a finished task's output is copied into storage in a pool of
its own, so one slow download never holds up the polling of a worker's other jobs.

The job stays leased meanwhile (the lease outlasts the download timeout); if the process dies,
the lease runs out and another worker copies it again under a newer fencing token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


class Downloads:
    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def start(self, copy: Callable[[], Any]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="mediagen-download")
            future = self._pool.submit(copy)
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self) -> None:
        """Until every copy started so far has ended."""
        with self._lock:
            pending = list(self._pending)
        wait(pending)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
