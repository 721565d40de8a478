"""A comparison shown: its columns side by side (each with its result, time, estimated cost or its
own error, live while running), the winner's star and a column's re-run; and its card in the
gallery, which links to it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from mediagen.auth.roles import User
from mediagen.errors import MediagenError
from mediagen.jobs import compare
from mediagen.jobs.comparisons import ColumnView, ComparisonView
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.studio import Studio
from mediagen.ui import services, widgets
from mediagen.ui.media import describe, play

OPENED_PARAM = "comparison"  # /compare?comparison=ID opens that group
COMPARE_PAGE = "pages/compare.py"
LIVE_REFRESH_S = 1.5
FEEDBACK = "cmp-feedback"  # what the last star or re-run came to, said by the next run


def group_view(studio: Studio, comparison_id: str, user: User) -> None:
    """The group at ``comparison_id``: live while any column runs, still once all have ended."""
    try:
        view = compare.get(studio, comparison_id)
    except MediagenError as exc:
        widgets.show_error(exc)
        return
    _heading(view)
    if view.finished:
        _columns(studio, view, user)
    else:
        _live_columns(studio, comparison_id, user)


@st.fragment(run_every=LIVE_REFRESH_S)
def _live_columns(studio: Studio, comparison_id: str, user: User) -> None:
    """Read from the database only, every moment; once every column has ended, the whole page is
    drawn again, still."""
    view = compare.get(studio, comparison_id)
    if view.finished:
        st.rerun(scope="app")
    _columns(studio, view, user)


def _heading(view: ComparisonView) -> None:
    st.subheader("Comparison")
    st.text(view.prompt)
    kind = "images" if view.kind == JobKind.IMAGE else "videos"
    total = f" · estimated {_usd(view.estimated_cost)} in all" if view.estimated_cost is not None else ""
    st.caption(
        widgets.plain(
            f"{len(view.columns)} columns of {kind} · {view.owner} · {view.created_at:%Y-%m-%d %H:%M} UTC{total}"
        )
    )
    st.code(share_url(view.id), language=None)


def share_url(comparison_id: str) -> str:
    """This page's address with the group in it: what the browser shows, to copy and share."""
    query = urlencode({OPENED_PARAM: comparison_id})
    here = urlsplit(st.context.url or "")
    if not here.netloc:  # no browser behind this session (a script test): the path alone
        return f"/compare?{query}"
    return urlunsplit((here.scheme, here.netloc, here.path, query, ""))


def _columns(studio: Studio, view: ComparisonView, user: User) -> None:
    _feedback()
    changeable = user.may_change(view.owner)
    for column, place in zip(view.columns, st.columns(len(view.columns)), strict=True):
        with place, st.container(border=True, key=f"cmp-result-{view.id}-{column.index}"):
            _column(studio, view, column, changeable=changeable)


def _column(studio: Studio, view: ComparisonView, column: ColumnView, *, changeable: bool) -> None:
    winner = column.job is not None and column.job.id == view.winner_job_id
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**{column.index + 1}. {widgets.plain(_label(studio, column.model))}**")
        if winner:
            st.badge("Winner", icon=":material/star:", color="orange")
    if chosen := _chosen(studio, column):
        st.caption(widgets.plain(" · ".join(f"{name} {value}" for name, value in sorted(chosen.items()))))
    if column.skipped:
        st.caption(widgets.plain(f"skipped (this model does not take them): {', '.join(column.skipped)}"))
    job = column.job
    if job is None:
        st.error(widgets.plain(f"Not started: {column.error}"), icon=":material/error:")
    else:
        widgets.status_badge(job.status)
        status = JobStatus(job.status)
        if not status.is_final:
            widgets.job_progress(job)
        elif status is JobStatus.SUCCEEDED:
            for asset in job.assets:
                if job.kind == JobKind.VIDEO:
                    play(studio, asset)
                else:
                    st.image(studio.storage.url(asset.key), width="stretch")
                st.caption(describe(asset))
        else:
            widgets.job_error(job)
        st.caption(widgets.plain(_time_and_cost(column)))
        reruns = f" · run {column.runs}" if column.runs > 1 else ""
        st.caption(widgets.plain(f"job {job.id}{reruns}"))
    if changeable:
        _column_actions(studio, view, column, winner=winner)


def _column_actions(studio: Studio, view: ComparisonView, column: ColumnView, *, winner: bool) -> None:
    key = f"cmp-{view.id}-{column.index}"
    with st.container(horizontal=True):
        job = column.job
        if job is not None and job.status == JobStatus.SUCCEEDED:
            st.button(
                "Unstar" if winner else "Pick as winner",
                key=f"{key}-star",
                icon=":material/star_border:" if winner else ":material/star:",
                help="Take the star back" if winner else "Star this column as the group's winner (one per group)",
                on_click=_act,
                args=(compare.star, studio, view.id, None if winner else job.id),
            )
        st.button(
            "Re-run",
            key=f"{key}-rerun",
            icon=":material/replay:",
            disabled=not column.finished,
            help="Run this column again with its settings; the column shows the newest run",
            on_click=_act,
            args=(compare.rerun_column, studio, view.id, column.index),
        )


def _act(action: Callable[..., object], studio: Studio, comparison_id: str, argument: object) -> None:
    """Star or re-run, in the button's callback: the run it starts already shows the result."""
    try:
        action(studio, comparison_id, argument, services.signed_in_user())
    except MediagenError as exc:  # ended or deleted meanwhile, or not this user's
        st.session_state[FEEDBACK] = str(exc)


def _feedback() -> None:
    if message := st.session_state.pop(FEEDBACK, None):
        st.error(widgets.plain(message), icon=":material/error:")


def _chosen(studio: Studio, column: ColumnView) -> dict[str, object]:
    """The column's options that are not its model's defaults: what sets it apart."""
    if column.model not in studio.catalog:
        return column.params
    spec = studio.catalog.get(column.model)
    return {
        name: value
        for name, value in column.params.items()
        if (param := spec.param(name)) is None or value != param.default
    }


def _label(studio: Studio, model: str) -> str:
    return studio.catalog.get(model).label if model in studio.catalog else model


def _usd(amount: float) -> str:
    return f"${amount:,.4f}".rstrip("0").rstrip(".") if amount else "$0"


def _time_and_cost(column: ColumnView) -> str:
    taken = f"{column.seconds:.1f} s" if column.seconds is not None else "—"
    cost = f"est. {_usd(column.estimated_cost)}" if column.estimated_cost is not None else "no price set"
    return f"{taken} · {cost}"


def gallery_card(studio: Studio, view: ComparisonView) -> None:
    """One card for the whole group: the winner's picture (or every column's, small), the prompt,
    its models, and a link that opens it."""
    with st.container(border=True, height="stretch", key=f"comparison-card-{view.id}"):
        winner = next((job for job in view.jobs if job.id == view.winner_job_id), None)
        if winner is not None and winner.assets and winner.assets[0].thumbnail_key:
            st.image(studio.storage.url(winner.assets[0].thumbnail_key), width="stretch")
        else:
            with st.container(horizontal=True, gap="small"):
                for column in view.columns:
                    job = column.job
                    thumb = job.assets[0].thumbnail_key if job is not None and job.assets else None
                    if thumb:
                        st.image(studio.storage.url(thumb), width=64)
                    else:
                        widgets.status_badge(column.status)
        with st.container(horizontal=True):
            st.badge("comparison", icon=":material/view_column:", color="blue")
            st.badge(f"{len(view.columns)} columns", color="gray")
            if winner is not None:
                st.badge("winner starred", icon=":material/star:", color="orange")
        st.text(view.prompt if len(view.prompt) <= 90 else view.prompt[:87] + "…")
        st.space("stretch")
        st.caption(widgets.plain(" · ".join(column.model for column in view.columns)))
        st.caption(f"{view.created_at:%Y-%m-%d %H:%M} UTC")
        st.page_link(
            COMPARE_PAGE,
            label="Open comparison",
            icon=":material/open_in_full:",
            query_params={OPENED_PARAM: view.id},
        )


def comparison_link(comparison_id: str, key: str) -> None:
    """On a job's card, when the job is a column of a comparison shown apart from its group."""
    with st.container(key=key):
        st.page_link(
            COMPARE_PAGE,
            label="Its comparison",
            icon=":material/view_column:",
            query_params={OPENED_PARAM: comparison_id},
        )
