"""The live video panel: reads the database only, refreshed by a fragment timer."""

from __future__ import annotations

import streamlit as st

from mediagen.db.tables import Job
from mediagen.errors import MediagenError
from mediagen.jobs import actions, queries
from mediagen.jobs.status import ACTIVE_STATUSES, RETRYABLE_STATUSES, JobKind, JobStatus
from mediagen.studio import Studio
from mediagen.ui import services, widgets
from mediagen.ui.media import describe, play

PANEL_REFRESH_S = 1.5
PANEL_JOBS = 10


def _act(action, studio: Studio, job_id: str) -> None:
    try:
        action(studio, job_id, actor=services.signed_in_user())
    except MediagenError as exc:
        st.session_state["panel-error"] = str(exc)


@st.fragment(run_every=PANEL_REFRESH_S)
def video_panel(studio: Studio, owner: str) -> None:
    """This user's active and recent video jobs. State lives in the database, so the panel is
    the same after a reload or from another tab."""
    st.subheader("Your videos")
    if message := st.session_state.pop("panel-error", None):
        st.error(widgets.plain(message))
    recent = queries.list_jobs(studio, kind=JobKind.VIDEO, owner=owner, limit=PANEL_JOBS)
    if not recent:
        st.info("Queued videos appear here with live progress.")
    for job in recent:
        _job_card(studio, job)


def _job_card(studio: Studio, job: Job) -> None:
    status = JobStatus(job.status)
    with st.container(border=True, key=f"video-card-{job.id}"):
        head, buttons = st.columns([4, 1], vertical_alignment="center")
        with head:
            widgets.status_badge(status)
            st.text(job.prompt if len(job.prompt) <= 160 else job.prompt[:157] + "…")
            st.caption(f"{job.model} · {widgets.elapsed(job)} · job {job.id}")
        with buttons:
            if status in ACTIVE_STATUSES:
                st.button(
                    "Cancel",
                    key=f"cancel-{job.id}",
                    on_click=_act,
                    args=(actions.cancel_job, studio, job.id),
                    icon=":material/stop_circle:",
                )
            elif status in RETRYABLE_STATUSES:
                st.button(
                    "Retry",
                    key=f"retry-{job.id}",
                    on_click=_act,
                    args=(actions.retry_job, studio, job.id),
                    icon=":material/replay:",
                )
        if status in ACTIVE_STATUSES:
            label = "Waiting for the provider" if status is JobStatus.QUEUED else f"{job.progress}%"
            st.progress(job.progress / 100, text=label)
        elif status is JobStatus.SUCCEEDED:
            for asset in job.assets:
                play(studio, asset)
                st.caption(describe(asset))
        else:
            widgets.job_error(job)
