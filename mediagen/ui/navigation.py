"""Pages and sections of the dashboard."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"


def build_navigation():  # -> StreamlitPage
    st.set_page_config(page_title="mediagen", page_icon=":material/movie_filter:", layout="wide")
    page = st.navigation(
        {
            "Create": [
                st.Page(PAGES_DIR / "image_studio.py", title="Image studio", icon=":material/image:", default=True),
                st.Page(PAGES_DIR / "video_studio.py", title="Video studio", icon=":material/movie:"),
            ],
            "Browse": [st.Page(PAGES_DIR / "gallery.py", title="Gallery", icon=":material/photo_library:")],
            "Admin": [
                st.Page(PAGES_DIR / "task_history.py", title="Task history", icon=":material/history:"),
                st.Page(PAGES_DIR / "system.py", title="System", icon=":material/monitor_heart:"),
            ],
        }
    )
    with st.sidebar:
        st.caption("Local mode: a single user on this machine.")
    return page
