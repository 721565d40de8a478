"""Rendering a job's media: result grids, video cards and the detail dialog."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from mediagen.auth.roles import Capability
from mediagen.db.tables import Asset, Job
from mediagen.errors import MediagenError
from mediagen.jobs import actions, queries
from mediagen.jobs.status import ACTIVE_STATUSES, RETRYABLE_STATUSES, JobKind, JobStatus
from mediagen.library import stars
from mediagen.media import derive
from mediagen.studio import Studio
from mediagen.ui import job_story, services, starting_points, widgets
from mediagen.ui import library as library_ui

# How often a queued or running job's details read its progress from the database.
LIVE_REFRESH_S = 1.5


def _reader(studio: Studio, key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with studio.storage.open(key) as handle:
            return handle.read()

    return read


def download(studio: Studio, asset: Asset, key: str) -> None:
    name = asset.key.rsplit("/", 1)[-1]
    st.download_button(
        "Download",
        _reader(studio, asset.key),
        file_name=name,
        mime=asset.content_type,
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


FORMAT_LABELS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "mp4": "MP4", "webm": "WebM", "gif": "GIF preview"}


def format_downloads(studio: Studio, job: Job, asset: Asset) -> None:
    """One button per format; the conversion runs (once, then cached in storage) on click."""

    def converted(fmt: str) -> Callable[[], bytes]:
        return lambda: derive.read_all(studio.storage, derive.derive(studio.storage, asset, job.kind, fmt).key)

    with st.container(horizontal=True):
        for fmt, variant in derive.variants_for(job.kind).items():
            label = FORMAT_LABELS.get(fmt, fmt)
            if job.kind == JobKind.VIDEO and fmt == "webp":
                label = "WebP preview"
            st.download_button(
                label,
                converted(fmt),
                file_name=derive.derived_key(asset.key, variant).rsplit("/", 1)[-1],
                mime=variant.content_type,
                key=f"fmt-{job.id}-{asset.index}-{fmt}",
                icon=":material/download:",
                on_click="ignore",
            )


def describe(asset: Asset) -> str:
    size = f"{asset.width}×{asset.height}"
    if asset.duration_s:
        size += f" · {asset.duration_s:.1f} s"
    return f"{size} · {widgets.human_bytes(asset.bytes)}"


RECENT_IMAGE_JOBS = 8


def recent_images(studio: Studio, owner: str) -> None:
    """The user's latest image jobs, newest first, read from the database: they survive a reload,
    and each is headed by the request it answers."""
    st.subheader("Your images")
    recent = queries.list_jobs(studio, kind=JobKind.IMAGE, owner=owner, limit=RECENT_IMAGE_JOBS)
    if not recent:
        st.info("Your images appear here. Every result is stored and listed in the Gallery.")
    for position, job in enumerate(recent):
        with st.container(border=True, key=f"image-card-{job.id}"):
            widgets.job_heading(job)
            image_results(studio, job, full=position == 0)
            with st.container(horizontal=True):
                starting_points.action_links(studio, job)
    if len(recent) == RECENT_IMAGE_JOBS:
        st.caption("Older images are in the Gallery.")


def image_results(studio: Studio, job: Job, *, full: bool) -> None:
    """A job's images: ``full`` size with their URLs, or as thumbnails for the older ones."""
    if job.status != JobStatus.SUCCEEDED:
        widgets.job_error(job)
        return
    per_row = (2 if len(job.assets) > 1 else 1) if full else 4
    columns = st.columns(per_row)
    for asset, column in zip(job.assets, columns * len(job.assets), strict=False):
        with column:
            shown = asset.key if full or not asset.thumbnail_key else asset.thumbnail_key
            st.image(studio.storage.url(shown), width="stretch")
            st.caption(describe(asset))
            if full:
                widgets.copyable_url(studio.storage.url(asset.key))
            download(studio, asset, key=f"dl-{job.id}-{asset.index}")


def play(studio: Studio, asset: Asset) -> None:
    poster = studio.storage.url(asset.thumbnail_key) if asset.thumbnail_key else None
    widgets.video_player(studio.storage.url(asset.key), poster)


# What the last Cancel or Retry came to, shown by the next run (the action runs in the button's
# callback, before the rerun, so that run already shows the job's new state).
ACTION_FEEDBACK = "job-action-feedback"


def _act(action: Callable[..., Job], studio: Studio, job_id: str, done: str) -> None:
    try:
        job = action(studio, job_id, actor=services.signed_in_user())
    except MediagenError as exc:  # e.g. it ended meanwhile, or is not this user's
        st.session_state[ACTION_FEEDBACK] = (False, str(exc))
    else:
        st.session_state[ACTION_FEEDBACK] = (True, f"{done} {job.id}")


def action_feedback() -> None:
    if feedback := st.session_state.pop(ACTION_FEEDBACK, None):
        succeeded, message = feedback
        if succeeded:
            st.toast(message, icon=":material/check:")
        else:
            st.error(widgets.plain(message), icon=":material/error:")


def cancel_button(studio: Studio, job: Job, key: str) -> None:
    """Cancel, while the job is queued or running, for whoever may change it (owner or admin)."""
    if JobStatus(job.status) in ACTIVE_STATUSES and services.signed_in_user().may_change(job.owner):
        args = (actions.cancel_job, studio, job.id, "Canceled job")
        st.button("Cancel", key=key, on_click=_act, args=args, icon=":material/stop_circle:")


def retry_button(studio: Studio, job: Job, key: str) -> None:
    """Retry, once the job failed, was canceled or timed out, for whoever may change it."""
    if JobStatus(job.status) in RETRYABLE_STATUSES and services.signed_in_user().may_change(job.owner):
        args = (actions.retry_job, studio, job.id, "Retry started as job")
        st.button("Retry", key=key, on_click=_act, args=args, icon=":material/replay:")


# The job whose details are open: the dialog is drawn on every run until it is dismissed, so
# what is done inside it (star, collect, confirm a delete) happens with it still open.
OPEN_JOB = "details-open"


def open_details(job_id: str, key: str) -> None:
    st.button(
        "Details",
        key=key,
        icon=":material/open_in_full:",
        on_click=lambda: st.session_state.__setitem__(OPEN_JOB, job_id),
    )


# The job the URL (``/gallery?job=ID``) names, as already followed: the run that follows a
# dismissal, or a press of another Details, still has it in its URL and must not open it again.
LINKED_JOB = "details-linked"


def _forget_details() -> None:
    st.session_state.pop(OPEN_JOB, None)


def open_linked_details(param: str) -> None:
    """Open the details of the job the URL's ``param`` names (``/gallery?job=ID``: shared, or a
    lineage link)."""
    job_id = st.query_params.get(param)
    if not job_id:
        st.session_state.pop(LINKED_JOB, None)
    elif st.session_state.get(LINKED_JOB) != job_id:
        st.session_state[LINKED_JOB] = job_id
        st.session_state[OPEN_JOB] = job_id
        # Said again: a link to the page already open reruns it with the link's query, but the
        # browser's address bar keeps the old one until the page sends its own.
        st.query_params[param] = job_id


def open_job_for_link() -> str | None:
    """The job whose details are open, for the page's URL; the URL so written is not a link
    followed (the next run must not open it over the details opened meanwhile)."""
    found: str | None = st.session_state.get(OPEN_JOB)
    if found:
        st.session_state[LINKED_JOB] = found
    return found


def details_if_open(studio: Studio, owner: str) -> None:
    if job_id := st.session_state.get(OPEN_JOB):
        job_dialog(studio, job_id, owner)


@st.dialog("Job details", width="large", on_dismiss=_forget_details)
def job_dialog(studio: Studio, job_id: str, owner: str) -> None:
    try:
        job = queries.get_job(studio, job_id)
    except MediagenError as exc:  # deleted meanwhile
        _forget_details()
        widgets.show_error(exc)
        return
    if JobStatus(job.status) in ACTIVE_STATUSES:
        _live_status(studio, job.id)
    else:
        widgets.status_badge(job.status)
        action_feedback()
    starred = stars.starred(studio, owner, [asset.id for asset in job.assets])
    for asset in job.assets:
        if job.kind == JobKind.VIDEO:
            play(studio, asset)
        else:
            st.image(studio.storage.url(asset.key), width="stretch")
        st.caption(describe(asset))
        widgets.copyable_url(studio.storage.url(asset.key))
        format_downloads(studio, job, asset)
        with st.container(horizontal=True):
            library_ui.star_button(studio, owner, asset, asset.id in starred)
            library_ui.collect_popover(studio, owner, [asset.id], key=f"collect-{asset.id}")
    widgets.job_error(job)
    st.text("Prompt")
    st.code(job.prompt, language=None, wrap_lines=True)
    left, right = st.columns(2)
    left.text("Job id (for the CLI and the API)")
    left.code(job.id, language=None)
    left.text(f"Model: {job.model} ({job.provider})")
    left.text(f"Created: {job.created_at:%Y-%m-%d %H:%M:%S} UTC")
    if job.finished_at:
        left.text(f"Finished: {job.finished_at:%Y-%m-%d %H:%M:%S} UTC ({widgets.elapsed(job)})")
    right.json(job.params, expanded=True)
    chain = queries.retry_chain(studio, job.id)
    if len(chain) > 1:
        st.text("Retry chain: " + " → ".join(f"{j.id} ({j.status})" for j in chain))
    job_story.story(studio, job)
    if services.signed_in_user().may(Capability.GENERATE):
        with st.container(horizontal=True, key=f"take-further-{job.id}"):
            starting_points.action_links(studio, job)
    with st.container(horizontal=True):
        retry_button(studio, job, key=f"dialog-retry-{job.id}")
        if (
            JobStatus(job.status).is_final
            and services.signed_in_user().may_change(job.owner)
            and library_ui.delete_with_confirmation(studio, [job.id], f"dialog-delete-{job.id}", files=len(job.assets))
        ):
            _forget_details()
            st.rerun()  # the whole page, without the dialog of a job that is gone


@st.fragment(run_every=LIVE_REFRESH_S)
def _live_status(studio: Studio, job_id: str) -> None:
    """A queued or running job's status, progress and Cancel, read from the database only; once
    the job ends, the whole dialog is drawn again with its result."""
    try:
        job = queries.get_job(studio, job_id)
    except MediagenError:  # deleted meanwhile: the dialog says so
        st.rerun()
    if JobStatus(job.status).is_final:
        st.rerun()
    with st.container(horizontal=True, vertical_alignment="center"):
        widgets.status_badge(job.status)
        cancel_button(studio, job, key=f"dialog-cancel-{job.id}")
    widgets.job_progress(job)
    action_feedback()
