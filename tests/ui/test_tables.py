"""``tables.readable``: a frame for ``st.dataframe`` with nothing Streamlit would draw as "None"."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from mediagen.ui.tables import readable


def test_missing_values_read_as_a_dash_or_blank_and_times_in_utc() -> None:
    frame = pd.DataFrame(
        {
            "finished": pd.to_datetime([datetime(2026, 12, 6, 3, 4, 5, tzinfo=UTC), None], utc=True),
            "duration_s": [4.25, float("nan")],
            "http_status": [200.0, float("nan")],
            "steps": [3, 1],
            "error": [None, "refused"],
            "ok": [True, False],
            "revoked": [None, None],
        }
    )
    shown = readable(frame, {"duration_s": "{:.1f}"}, times=("revoked",))
    assert not shown.isna().any().any()
    assert shown["finished"].tolist() == ["2026-12-06 03:04:05", "—"]
    assert shown["duration_s"].tolist() == ["4.2", "—"]
    assert shown["http_status"].tolist() == ["200", "—"]  # numbers with gaps, unformatted: as short as they go
    assert shown["steps"].tolist() == [3, 1] and shown["ok"].tolist() == [True, False]  # complete: untouched
    assert shown["error"].tolist() == ["", "refused"]
    assert shown["revoked"].tolist() == ["—", "—"]
    assert frame["error"].isna().any()  # the caller's frame is left as it was
