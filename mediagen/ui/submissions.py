"""One press of Generate, one job.

Streamlit starts a run for every click, even while the previous run is still generating: with
``runner.fastReruns`` (the default) the new run starts beside the old one, which stops at its next
Streamlit call. The two presses of a double click were two runs, two jobs and, with a paid
provider, two bills.

Each studio keeps a ``SubmissionGuard`` in the browser session: the pages' counterpart of the API's
``Idempotency-Key``. A submission is claimed before anything is created and freed if nothing was.
A press is turned away while the session's previous submission to that studio is still under way,
and when it asks for exactly what was submitted a moment ago: the second press of a double click
can land after a quick submission (a video is queued in milliseconds) has already ended. A press
turned away is said so on the page; nothing typed is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

import streamlit as st

from mediagen.db.tables import Job
from mediagen.errors import MediagenError
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.ui import widgets

# The second press of a double click follows the first within the desktop's double-click time
# (500 ms unless changed), and the first submission cannot have ended before the first press.
REPEAT_WINDOW_S = 1.0
# How often a run that found another run's submission under way looks whether it has ended.
AWAIT_S = 0.5


class Made(Protocol):
    """What a submission makes: a job, or a comparison (a group of jobs)."""

    @property
    def id(self) -> str: ...


M = TypeVar("M", bound=Made)


class Verdict(Enum):
    ACCEPTED = "accepted"
    BUSY = "busy"  # the session's previous submission to this studio is still under way
    REPEAT = "repeat"  # the same request as one that ended a moment ago: the same gesture


@dataclass(frozen=True)
class Outcome(Generic[M]):
    """What the session's last accepted press came to: a job (or group), or why nothing was made."""

    job: M | None = None
    error: MediagenError | None = None


class SubmissionGuard(Generic[M]):
    """One studio's submissions in one browser session. Thread-safe: two runs of one session can
    be alive at once (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._last: tuple[Hashable, float, str] | None = None  # request, when it ended, its job
        self.outcome: Outcome[M] | None = None
        self.notice: str | None = None  # why the last press made nothing, said once

    def take_notice(self) -> str | None:
        with self._lock:
            notice, self.notice = self.notice, None
        return notice

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, request: Hashable, create: Callable[[], M]) -> tuple[Verdict, str | None]:
        """Run ``create`` unless this press is turned away; the verdict, and the id of the job
        this press made or, for a repeat, of the one made a moment ago."""
        with self._lock:
            if self._busy:
                return Verdict.BUSY, None
            if self._last is not None:
                last_request, ended, job_id = self._last
                if last_request == request and time.monotonic() - ended < REPEAT_WINDOW_S:
                    return Verdict.REPEAT, job_id
            self._busy = True
        job, outcome = None, None
        try:
            job = create()
            outcome = Outcome(job=job)
        except MediagenError as exc:  # refused before anything was created: the claim is freed
            outcome = Outcome(error=exc)
        finally:
            # Recorded here, before any Streamlit call: a run stopped for a newer one still leaves
            # its result for the page.
            with self._lock:
                self._busy = False
                if outcome is not None:
                    self.outcome = outcome
                if job is not None:
                    self._last = (request, time.monotonic(), job.id)
        return Verdict.ACCEPTED, job.id if job else None


def guard(kind: JobKind) -> SubmissionGuard[Job]:
    key = f"{kind.value}-submissions"
    if key not in st.session_state:
        st.session_state[key] = SubmissionGuard[Job]()
    found: SubmissionGuard[Job] = st.session_state[key]
    return found


def generate_button(
    kind: JobKind, request: widgets.GenerationRequest, create: Callable[[], Job], *, icon: str, working: str
) -> None:
    """Generate, submitting ``request`` through the studio's guard; then what the last submission
    came to (or, while another run's submission is under way, a wait for it). The button is
    disabled from the press until the submission has ended."""
    submissions = guard(kind)
    # The press is read from the button's callback, which runs before the script: the button can
    # then be drawn disabled in the very run the press started (a disabled button reads as
    # unpressed, and a press on one that was disabled is dropped by Streamlit).
    pressed_key = f"{kind.value}-pressed"
    pressed = bool(st.session_state.pop(pressed_key, False))
    busy = submissions.busy or pressed
    st.button(
        working if busy else "Generate",
        type="primary",
        key=f"{kind.value}-generate",
        icon=":material/hourglass_top:" if busy else icon,
        disabled=busy,
        on_click=st.session_state.__setitem__,
        args=(pressed_key, True),
    )
    if pressed:
        verdict, job_id = submissions.submit(request.fingerprint, create)
        if verdict is Verdict.REPEAT:
            submissions.notice = (
                f"Pressed twice: that request was just sent as job {job_id}; "
                "this press made nothing. Press Generate again for another."
            )
        elif verdict is Verdict.BUSY:
            submissions.notice = "Still working on your last request; this press made nothing."
        st.rerun()  # the form again, its button as the submission now allows, and the outcome
    if submissions.busy:
        await_other_run(submissions, working)
    elif submissions.outcome is not None:
        _show_outcome(submissions.outcome)
    if notice := submissions.take_notice():
        st.info(notice, icon=":material/ads_click:")


@st.fragment(run_every=AWAIT_S)
def await_other_run(submissions: SubmissionGuard[M], working: str) -> None:
    """The submission belongs to a run that a newer one replaced: it ends on its own, and then
    the whole page shows its result."""
    if submissions.busy:
        st.info(working, icon=":material/hourglass_top:")
    else:
        st.rerun(scope="app")


def _show_outcome(outcome: Outcome[Job]) -> None:
    if outcome.error is not None:
        widgets.show_error(outcome.error, lead="Nothing was generated")
        return
    job = outcome.job
    assert job is not None
    status = JobStatus(job.status)
    if job.kind == JobKind.VIDEO:
        st.success(f"Queued as job {job.id}; it is listed under Your videos.", icon=":material/schedule:")
    elif status is JobStatus.SUCCEEDED:
        st.success(f"{len(job.assets)} image(s) in {widgets.elapsed(job)}, job {job.id}", icon=":material/check:")
    else:
        st.error(
            f"Job {job.id} {widgets.status_label(status).lower()}: {widgets.plain(job.error_message)}",
            icon=":material/error:",
        )
