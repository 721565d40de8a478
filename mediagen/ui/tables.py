"""Frames made ready for ``st.dataframe``: Streamlit draws a missing value as the word "None",
which reads like a value. Here a missing time or number reads "—" and a missing text is blank;
times read in one format, in UTC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

MISSING = "—"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def readable(frame: pd.DataFrame, formats: Mapping[str, str] | None = None, times: Sequence[str] = ()) -> pd.DataFrame:
    """A copy of ``frame`` without missing values. Times become UTC text (``times`` names columns
    of times pandas cannot tell, say all empty); the numeric columns named in ``formats`` (those
    that can lack a value) become text by their format (``"{:.1f}"``), as does any other numeric
    column that lacks a value; text columns get "" where they lack one."""
    formats = formats or {}
    shown = frame.copy()
    for name in shown.columns:
        column = pd.to_datetime(shown[name], utc=True) if name in times else shown[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            utc = column.dt.tz_convert("UTC") if column.dt.tz is not None else column
            shown[name] = utc.dt.strftime(TIME_FORMAT).fillna(MISSING)
        elif pd.api.types.is_bool_dtype(column):
            continue
        elif pd.api.types.is_numeric_dtype(column):
            if name in formats or column.isna().any():
                pattern = formats.get(name, "{:g}")
                shown[name] = [MISSING if pd.isna(value) else pattern.format(value) for value in column]
        else:
            shown[name] = column.astype(object).where(column.notna(), "")
    return shown


def number_column(label: str, help: str | None = None) -> st.column_config.Column:
    """A column of numbers ``readable`` turned to text: aligned as numbers are."""
    return st.column_config.TextColumn(label, help=help, alignment="right")
