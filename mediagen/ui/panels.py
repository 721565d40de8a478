"""The live video panel: reads the database only, refreshed by a fragment timer."""

from __future__ import annotations

import streamlit as st

from mediagen.db.tables import Job
from mediagen.jobs import queries
from mediagen.jobs.status import ACTIVE_STATUSES, JobKind, JobStatus
from mediagen.studio import Studio
from mediagen.ui import starting_points, widgets
from mediagen.ui.media import action_feedback, cancel_button, describe, play, retry_button

PANEL_REFRESH_S = 1.5
PANEL_JOBS = 10


@st.fragment(run_every=PANEL_REFRESH_S)
def video_panel(studio: Studio, owner: str) -> None:
    """This user's active and recent video jobs. State lives in the database, so the panel is
    the same after a reload or from another tab."""
    st.subheader("Your videos")
    action_feedback()
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
            widgets.job_heading(job)
        with buttons:
            cancel_button(studio, job, key=f"cancel-{job.id}")
            retry_button(studio, job, key=f"retry-{job.id}")
        if status in ACTIVE_STATUSES:
            widgets.job_progress(job)
        elif status is JobStatus.SUCCEEDED:
            for asset in job.assets:
                play(studio, asset)
                st.caption(describe(asset))
        else:
            widgets.job_error(job)
        if status.is_final:
            starting_points.action_links(studio, job)
