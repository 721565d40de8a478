"""The studios' guard against a second press of Generate, on a real database. Two runs of one
browser session can be alive at once (Streamlit starts the newer beside the older), so the
guard is exercised from two threads here; the double click itself is in test_browser.py."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mediagen.errors import InvalidInput
from mediagen.jobs import actions, queries
from mediagen.ui.submissions import SubmissionGuard, Verdict


def test_a_press_while_the_sessions_submission_is_under_way_makes_nothing(studio) -> None:
    guard = SubmissionGuard()
    started, release = threading.Event(), threading.Event()

    def slow_submission():
        started.set()
        release.wait(10)
        return actions.submit_video(studio, "the first press")

    with ThreadPoolExecutor(1) as older_run:
        first = older_run.submit(guard.submit, ("the first press",), slow_submission)
        assert started.wait(10) and guard.busy
        second = guard.submit(("another request",), lambda: actions.submit_video(studio, "another request"))
        assert second == (Verdict.BUSY, None)
        release.set()
        verdict, job_id = first.result(10)
    assert verdict is Verdict.ACCEPTED and [job.id for job in queries.list_jobs(studio)] == [job_id]
    assert not guard.busy and guard.outcome is not None and guard.outcome.job is not None
    assert guard.outcome.job.id == job_id


def test_a_refused_request_leaves_nothing_claimed(studio) -> None:
    """Refused before anything was created: the fixed request goes through at once, and the same
    refused request pressed again is checked again rather than taken for a repeat."""
    guard = SubmissionGuard()
    for _ in range(2):
        assert guard.submit(("",), lambda: actions.submit_video(studio, "")) == (Verdict.ACCEPTED, None)
        assert guard.outcome is not None and isinstance(guard.outcome.error, InvalidInput)
        assert guard.outcome.error.field == "prompt"
    verdict, job_id = guard.submit(("fixed",), lambda: actions.submit_video(studio, "fixed"))
    assert verdict is Verdict.ACCEPTED and [job.id for job in queries.list_jobs(studio)] == [job_id]
