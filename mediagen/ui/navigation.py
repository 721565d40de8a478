"""Pages and sections of the dashboard."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"


def build_navigation() -> st.navigation:  # type: ignore[valid-type]
    st.set_page_config(page_title="mediagen", page_icon="🎞️", layout="wide")
    return st.navigation(
        {
            "Overview": [st.Page(PAGES_DIR / "home.py", title="Home", icon="🏠", default=True)],
        }
    )
