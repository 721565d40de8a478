"""The Task history page under AppTest: its charts' specs, what its numbers say they count, and
tables without "None" in them (real database, real local storage, real worker ticks)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from mediagen.jobs import actions
from mediagen.jobs.status import JobStatus

from ..conftest import run_to_end

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database


def _charts(app: Any) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Each chart's Vega-Lite spec and the data it draws."""
    from streamlit import dataframe_util

    charts = []
    for element in app.get("vega_lite_chart"):
        [dataset] = element.proto.datasets
        charts.append(
            (json.loads(element.proto.spec), dataframe_util.convert_arrow_bytes_to_pandas_df(dataset.data.data))
        )
    return charts


def _chart_with(app: Any, axis: str, field: str) -> tuple[dict[str, Any], pd.DataFrame]:
    [chart] = [(spec, data) for spec, data in _charts(app) if spec["encoding"][axis].get("field") == field]
    return chart


# Each table by a column only it has (read-only tables carry no key in AppTest).
TABLES = {"models": "p95_s", "reasons": "latest_message", "jobs": "prompt", "events": "message", "usage": "video_s"}


def _frames(app: Any) -> dict[str, pd.DataFrame]:
    frames = [d.value for d in app.dataframe]
    return {name: frame for name, column in TABLES.items() for frame in frames if column in frame.columns}


def test_jobs_per_day_reads_one_date_format_and_today_is_a_whole_day(app, studio) -> None:
    actions.generate_image(studio, "today's picture", params={"size": "256x256"})
    app.switch_page("pages/task_history.py").run()
    spec, data = _chart_with(app, "x", "day")
    x = spec["encoding"]["x"]
    # One band per UTC day, labelled under its bar: today's bar is as wide as any other.
    assert (x["type"], x["timeUnit"]) == ("ordinal", "utcyearmonthdate")
    assert x["axis"]["format"] == "%b %d" and x["axis"]["labelAngle"] == 0  # every label "Dec 06"
    today = pd.Timestamp.now(tz="UTC").date()
    days = sorted(set(data["day"].dt.date))
    assert days == [today - timedelta(days=n) for n in range(29, -1, -1)]  # "Last 30 days", gaps included


def test_seconds_to_result_lists_models_down_the_side_with_room_for_each(app, studio) -> None:
    actions.generate_image(studio, "one", params={"size": "256x256"})
    run_to_end(studio, actions.submit_video(studio, "two", params={"duration": 1}).id)
    app.switch_page("pages/task_history.py").run()
    spec, _ = _chart_with(app, "y", "model")
    y, x = spec["encoding"]["y"], spec["encoding"]["x"]
    assert y["type"] == "nominal" and y["title"] is None  # names read across, not squeezed under the plot
    assert (x["type"], x["title"]) == ("quantitative", "seconds to result")
    assert spec["encoding"]["color"]["scale"]["domain"] == ["p50 (median)", "p95"]
    assert spec["height"]["step"] >= 14  # each bar as tall as it needs, however many models


def test_the_success_rate_says_what_it_counts(app, studio) -> None:
    actions.generate_image(studio, "made", params={"size": "256x256"})
    actions.cancel_job(studio, actions.submit_video(studio, "stopped").id)
    app.switch_page("pages/task_history.py").run()
    assert {m.label: m.value for m in app.metric}["Success rate"] == "100.0%"
    [said] = [c.value for c in app.caption if "Success rate" in c.value]
    assert "1 succeeded of 1 that succeeded, failed or timed out" in said
    assert "1 canceled job is not counted" in said


def test_the_jobs_table_names_what_its_step_count_counts(app, studio) -> None:
    video = run_to_end(studio, actions.submit_video(studio, "polled", params={"duration": 1}).id)
    app.switch_page("pages/task_history.py").run()
    [table] = [d for d in app.dataframe if d.key == "h-table"]
    assert "attempts" not in table.value.columns
    assert table.value.set_index("id").loc[video.id, "worker_steps"] == video.attempt
    config = json.loads(table.proto.columns)["worker_steps"]
    assert config["label"] == "worker steps"
    assert "status check" in config["help"] and "not retries" in config["help"]


def test_no_table_cell_reads_none(app, studio, scripted_failure) -> None:
    """Missing values (a job not started or not finished, no error, no message, a model with no
    result yet) show as "—" or blank: Streamlit draws a missing value as the word "None"."""
    actions.generate_image(studio, "made", params={"size": "256x256"})
    scripted_failure("refused")
    queued = actions.submit_video(studio, "waiting")
    actions.cancel_job(studio, actions.submit_video(studio, "stopped").id)
    app.switch_page("pages/task_history.py").run()
    app.session_state["h-table"] = {"selection": {"rows": [1], "columns": []}}  # the queued job's timeline
    app.run()
    frames = _frames(app)
    assert set(frames) == set(TABLES)
    for key, frame in frames.items():
        assert not frame.isna().any().any(), (key, frame[frame.isna().any(axis=1)])
    table = frames["jobs"].set_index("id")
    assert table.loc[queued.id, ["started", "finished", "duration_s"]].tolist() == ["—", "—", "—"]
    assert table.loc[queued.id, "error"] == ""
    assert JobStatus(table.loc[queued.id, "status"]) is JobStatus.QUEUED
