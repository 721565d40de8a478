"""The app server process's start-up (``mediagen.server``), without a browser."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mediagen import server
from mediagen.config import Settings
from mediagen.studio import Studio


@pytest.fixture
def started(settings: Settings) -> Iterator[Studio]:
    studio = Studio.open(settings.model_copy(update={"worker_in_app": False}))
    server.use(studio)
    try:
        yield server.start()
    finally:
        server.stop()
        gc.unfreeze()  # the rest of the session's tests run with the collector as they found it


def test_start_up_objects_are_kept_out_of_full_collections(started: Studio) -> None:
    """What exists once the server has started lives as long as the process; a full collection
    that walked it all (about 85 ms here) was the API's p99. After start it is frozen: in no
    generation the collector scans."""
    assert started is server.studio()
    assert gc.get_freeze_count() > 10_000
    scanned = {id(o) for o in gc.get_objects()}
    assert id(started.settings) not in scanned and id(started.catalog) not in scanned
    # Objects made afterwards are collected as usual.
    later: list[object] = []
    later.append(later)
    assert any(o is later for o in gc.get_objects())
