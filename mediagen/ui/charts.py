"""The Task history charts, as Altair specs of our own: Streamlit's quick charts choose axes by
themselves (mixed date formats, a day as a sliver, rotated model names eating the plot)."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd

DAY_FORMAT = "%b %d"  # "Dec 06", on every label
BAR_PX = 16  # height of one bar in a horizontal bar chart
TIME_MEASURES = {"p50_s": "p50 (median)", "p95_s": "p95"}
TIME_COLOURS = ["#7fb3ff", "#2f6fd6"]


def per_day(table: pd.DataFrame, title: str, colours: Mapping[str, str]) -> alt.Chart:
    """Stacked bars of ``table`` (one row per UTC day, every day of the period, one column per
    status): each day a band of its own, labelled under its bar, today's as wide as any."""
    days = table.rename_axis("day").reset_index().melt(id_vars="day", var_name="status", value_name="value")
    days["day"] = pd.to_datetime(days["day"])
    statuses = list(table.columns)
    return (
        alt.Chart(days)
        .mark_bar()
        .encode(
            x=alt.X(
                "day:O",
                timeUnit="utcyearmonthdate",
                title=None,
                axis=alt.Axis(format=DAY_FORMAT, labelAngle=0, labelOverlap="parity"),  # UTC, as the unit
            ),
            y=alt.Y("value:Q", title=title, stack=True, axis=alt.Axis(tickMinStep=1)),
            color=alt.Color(
                "status:N",
                title=None,
                scale=alt.Scale(domain=statuses, range=[colours.get(s, "#4a7fd6") for s in statuses]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("day:O", timeUnit="utcyearmonthdate", format="%Y-%m-%d", title="day (UTC)"),
                alt.Tooltip("status:N"),
                alt.Tooltip("value:Q", title=title),
            ],
        )
        .properties(height=220)
    )


def time_to_result(models: pd.DataFrame) -> alt.Chart:
    """p50 and p95 seconds to result per model, as horizontal bars: model names read across on
    the left, so however long they are the bars keep their room."""
    long = models.melt(id_vars="model", value_vars=list(TIME_MEASURES), var_name="measure", value_name="seconds")
    long["measure"] = long["measure"].map(TIME_MEASURES)
    measures = list(TIME_MEASURES.values())
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, axis=alt.Axis(labelLimit=320)),
            yOffset=alt.YOffset("measure:N", sort=measures),
            x=alt.X("seconds:Q", title="seconds to result"),
            color=alt.Color(
                "measure:N",
                title=None,
                scale=alt.Scale(domain=measures, range=TIME_COLOURS),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=["model:N", "measure:N", alt.Tooltip("seconds:Q", format=".1f")],
        )
        .properties(height=alt.Step(BAR_PX))  # a fixed height would squeeze the bars under Streamlit's theme
    )
