"""Gallery pieces: filter inputs, the card grid and its pager."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from typing import Any

import streamlit as st

from mediagen.db.tables import Job
from mediagen.jobs.browse import JobFilters
from mediagen.jobs.comparisons import views_of
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.library import stars
from mediagen.studio import Studio
from mediagen.ui import library as library_ui
from mediagen.ui import links, starting_points, widgets
from mediagen.ui.comparison_view import comparison_link, gallery_card
from mediagen.ui.media import details_if_open, open_details
from mediagen.ui.paging import Pager

GRID_COLUMNS = 4
# The filter inputs "Clear filters" empties (order, page size and selection stay as they are).
FILTER_KEYS = ("g-kind", "g-status", "g-model", "g-dates", "g-text", "g-collection", "g-starred", "g-comparisons")


def date_range(label: str, key: str) -> tuple[date | None, date | None]:
    # Wide enough for the whole "YYYY-MM-DD – YYYY-MM-DD" placeholder; ISO dates, as in links and tables.
    picked: Any = st.date_input(label, value=(), key=key, format="YYYY-MM-DD", width=270)
    if isinstance(picked, date):
        return picked, picked
    if len(picked) == 2:
        return picked[0], picked[1]
    if len(picked) == 1:
        return picked[0], picked[0]
    return None, None


def _clear_filters() -> None:
    for key in FILTER_KEYS:
        st.session_state.pop(key, None)  # the input starts over empty


def _narrowed(filters: JobFilters) -> bool:
    return any(getattr(filters, f.name) for f in fields(filters))


def nothing_to_show(filters: JobFilters) -> None:
    """Why the grid is empty, and the way out: clearing the filters, or making something first."""
    if not _narrowed(filters):
        st.info("Nothing here yet. Generate something in the Image or Video studio.")
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info("No job matches these filters.", icon=":material/filter_alt_off:", width="stretch")
        st.button("Clear filters", key="g-clear-filters", on_click=_clear_filters, icon=":material/clear_all:")


def card_grid(
    studio: Studio,
    jobs: list[Job],
    owner: str,
    filters: JobFilters,
    *,
    selecting: bool = False,
    one_per_comparison: bool = False,
) -> None:
    """The page's cards; with ``one_per_comparison``, a comparison's job (its first, see
    ``browse.first_of_its_comparison``) is drawn as the whole group's card."""
    if not jobs:
        nothing_to_show(filters)
        return
    details_if_open(studio, owner)
    groups = views_of(studio, [job.comparison_id for job in jobs if job.comparison_id]) if one_per_comparison else {}
    starred = stars.starred(studio, owner, [asset.id for job in jobs for asset in job.assets])
    for start in range(0, len(jobs), GRID_COLUMNS):
        columns = st.columns(GRID_COLUMNS)
        for job, column in zip(jobs[start : start + GRID_COLUMNS], columns, strict=False):
            with column:
                if job.comparison_id in groups:
                    gallery_card(studio, groups[job.comparison_id])
                    continue
                _card(studio, job, owner, starred=any(asset.id in starred for asset in job.assets), selecting=selecting)


def _card(studio: Studio, job: Job, owner: str, *, starred: bool, selecting: bool) -> None:
    # As tall as the row's tallest card, its footer at the bottom: the cards of a row line up.
    with st.container(border=True, height="stretch", key=f"card-{job.id}"):
        first = job.assets[0] if job.assets else None
        if first is not None and first.thumbnail_key:
            # Thumbnails only: the full-size file loads when the card is opened.
            st.image(studio.storage.url(first.thumbnail_key), width="stretch")
        elif JobStatus(job.status).is_final:
            widgets.job_error(job)
        else:
            widgets.job_progress(job)  # the badge below names the status
        with st.container(horizontal=True):
            widgets.status_badge(job.status)
            st.badge("video" if job.kind == JobKind.VIDEO else "image", color="gray")
            if len(job.assets) > 1:
                st.badge(f"×{len(job.assets)}", color="gray")
            if starred:
                st.badge("starred", icon=":material/star:", color="orange")
        st.text(job.prompt if len(job.prompt) <= 90 else job.prompt[:87] + "…")
        st.space("stretch")
        st.caption(widgets.plain(f"{job.model} · {job.created_at:%Y-%m-%d %H:%M} UTC"))
        with st.container(horizontal=True, vertical_alignment="center"):
            open_details(job.id, key=f"open-{job.id}")
            starting_points.card_menu(studio, job)
            if job.comparison_id:
                comparison_link(job.comparison_id, key=f"card-comparison-{job.id}")
            if selecting:
                library_ui.select_box(job)


pager = Pager(links.PAGE_STACK, "g")
