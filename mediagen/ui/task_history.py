"""The Task history page's parts: metrics from the roll-up, usage and cost, and the jobs table."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from mediagen.admin import history, reports
from mediagen.jobs.browse import JobFilters
from mediagen.studio import Studio
from mediagen.ui import charts, widgets
from mediagen.ui.gallery import date_range
from mediagen.ui.paging import Pager
from mediagen.ui.tables import number_column, readable

PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None, "Custom": -1}
jobs_pager = Pager("history-pages", "h")
PRICE_EXAMPLE = (
    '{"gpt-image-1": {"per_image": {"1024x1024/high": 0.17, "1024x1024": 0.04, "*": 0.06}},\n'
    ' "sora-2": {"per_second": {"1280x720": 0.10, "*": 0.10}}}'
)
SUCCESS_HELP = "Succeeded of succeeded, failed and timed out; canceled jobs are left out (a user stopped them)"
WORKER_STEPS_HELP = (
    "How many times the job was taken up: by a worker for each submit or status check of the provider "
    "(a video is checked every few seconds while it renders), by the app for an image, and once for a "
    "cancel. These are not retries: a retry is a new job, linked by retried_from."
)
# The same colour for a status on every chart.
STATUS_COLOURS = {
    "succeeded": "#2e9e5b",
    "failed": "#d64545",
    "timed_out": "#e08a1e",
    "canceled": "#8a8f98",
}


def period(key: str) -> tuple[date | None, date | None]:
    """The period chosen: a preset counted back from today (UTC days), or a custom range."""
    choice = st.selectbox("Period", list(PERIODS), index=1, key=key, width=160)
    days = PERIODS[choice]
    if days == -1:
        return date_range("From – to", key=f"{key}-range")
    if days is None:
        return None, None
    today = pd.Timestamp.now(tz="UTC").date()
    return today - timedelta(days=days - 1), today


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _share(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1%}"


def _percent(label: str) -> st.column_config.Column:
    return st.column_config.ProgressColumn(label, min_value=0, max_value=1, format="percent")


def _daily_chart(lines: pd.DataFrame, filters: JobFilters, value: str, label: str) -> None:
    """Every day of the period up to its last (today for the presets and "All time"), so today's
    bar has a whole day's room at the end of the axis."""
    last = filters.until or pd.Timestamp.now(tz="UTC").date()
    table = reports.daily(lines, value, filters.since, last)
    chart = charts.per_day(table, label, STATUS_COLOURS)
    st.altair_chart(chart, width="stretch", key=f"h-daily-{value}")


def _success_note(summary: reports.Overview) -> str:
    """What the success rate counts, in numbers, beside a period that may hold canceled jobs."""
    outcomes = summary.finished - summary.canceled
    note = f"Success rate: {summary.succeeded:,} succeeded of {outcomes:,} that succeeded, failed or timed out"
    if summary.canceled == 1:
        return note + "; 1 canceled job is not counted (a user stopped it)."
    if summary.canceled:
        return note + f"; {summary.canceled:,} canceled jobs are not counted (users stopped them)."
    return note + " (canceled jobs are not counted)."


def overview(studio: Studio, lines: pd.DataFrame, filters: JobFilters, summary: reports.Overview) -> None:
    with st.container(horizontal=True):
        st.metric("Finished jobs", f"{summary.finished:,}")
        st.metric("Success rate", _share(summary.success_rate), help=SUCCESS_HELP)
        st.metric("Time to result p50", _seconds(summary.p50_s), help="From submission to the stored result")
        st.metric("p95", _seconds(summary.p95_s))
        st.metric("Failures", f"{summary.failures:,}")
        st.metric("Timeouts", f"{summary.timeouts:,}")
    if summary.finished:
        st.caption(_success_note(summary))
    if lines.empty:
        st.info("No job finished in this period with these filters.")
        return
    st.subheader("Jobs per day")
    _daily_chart(lines, filters, "jobs", "jobs")

    st.subheader("By model")
    models = reports.by_model(studio, lines, filters)
    st.dataframe(
        readable(models, {"success_rate": "{:.1%}", "p50_s": "{:.1f}", "p95_s": "{:.1f}"}),
        hide_index=True,
        key="h-models",
        column_config={
            "success_rate": number_column("success rate", help=SUCCESS_HELP),
            "p50_s": number_column("p50 (s)", help="Time to result, median"),
            "p95_s": number_column("p95 (s)"),
            "timed_out": st.column_config.NumberColumn("timeouts"),
        },
    )
    timed = models.dropna(subset=["p50_s"])
    if not timed.empty:
        st.altair_chart(charts.time_to_result(timed), width="stretch", key="h-times")

    st.subheader("Failure reasons")
    reasons = reports.failure_reasons(studio, lines)
    if reasons.empty:
        st.caption("No failures or timeouts in this period.")
    else:
        st.dataframe(
            readable(reasons),
            hide_index=True,
            key="h-reasons",
            column_config={"share": _percent("share")},
        )


def usage_and_cost(studio: Studio, lines: pd.DataFrame, filters: JobFilters, summary: reports.Overview) -> None:
    unknown = summary.unpriced_models and not summary.cost_usd
    st.metric(
        "Estimated cost",
        "—" if unknown else f"${summary.cost_usd:,.2f}",
        help="Recorded usage × the price table in settings (`MEDIAGEN_PRICES`)",
    )
    if summary.unpriced_models:
        st.caption(
            f"No price set for: {widgets.plain(', '.join(summary.unpriced_models))}. Their usage is counted but "
            "not costed; add them to `MEDIAGEN_PRICES`."
        )
    for column, (by, title) in zip(st.columns(2), (("model", "Per model"), ("owner", "Per user")), strict=True):
        with column:
            st.subheader(title)
            st.dataframe(
                _costs_as_text(reports.usage(lines, by)),
                hide_index=True,
                key=f"h-usage-{by}",
                column_config={
                    "owner": "user",
                    "cost_usd": "est. cost",
                    "video_s": st.column_config.NumberColumn("video (s)", format="%.0f"),
                },
            )
    if summary.cost_usd > 0:
        st.subheader("Cost per day")
        _daily_chart(lines, filters, "cost_usd", "USD")
    with st.expander("Price table"):
        if studio.settings.prices:
            st.json({model: price.model_dump(exclude_defaults=True) for model, price in studio.settings.prices.items()})
        else:
            st.caption("No prices set. `MEDIAGEN_PRICES` takes JSON like:")
            st.code(PRICE_EXAMPLE, language="json")


def _costs_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """Costs as "$1.23", or "no price" where the price table does not cover the usage (a blank
    number would read as free)."""
    return table.assign(cost_usd=[("no price" if math.isnan(c) else f"${c:,.2f}") for c in table["cost_usd"]])


def jobs_table(studio: Studio, filters: JobFilters) -> None:
    cursor = jobs_pager.current(filters)
    frame, next_cursor = history.history_page(studio, filters, after=cursor)
    selection = st.dataframe(
        readable(frame, {"duration_s": "{:.1f}"}),
        key="h-table",
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "duration_s": number_column("duration (s)", help="From submission to the end"),
            "worker_steps": st.column_config.NumberColumn("worker steps", help=WORKER_STEPS_HELP),
        },
    )
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"Page {jobs_pager.number()} · newest first · {history.PAGE_ROWS} per page · times in UTC")
        jobs_pager.controls(next_cursor)
        st.download_button(
            "Download CSV",
            lambda: history.export_csv(studio, filters),
            file_name="mediagen-jobs.csv",
            mime="text/csv",
            key="h-csv",
            icon=":material/download:",
            on_click="ignore",
            help=f"Every matching job, up to {history.EXPORT_ROWS:,}",
        )
    rows = selection.selection.rows if selection else []
    if not rows:
        st.caption("Select a row to see its event timeline.")
        return
    job_id = frame.iloc[rows[0]]["id"]
    st.subheader(f"Timeline of job {job_id}")
    st.dataframe(readable(history.events_frame(studio, job_id)), hide_index=True, key="h-events")
    deliveries = history.webhook_attempts_frame(studio, job_id)
    if not deliveries.empty:
        st.subheader("Webhook deliveries")
        st.dataframe(
            readable(deliveries, {"http_status": "{:.0f}", "ms": "{:.0f}"}),
            hide_index=True,
            key="h-webhooks",
            column_config={"http_status": number_column("http_status"), "ms": number_column("ms")},
        )
