"""Pages and sections of the dashboard, for the signed-in user's role.

Every page is routed (so a typed URL reaches the page, which then refuses politely if it is not
the user's); the sidebar lists only the pages the role may use.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mediagen.access import PAGE_TITLES, Page, User
from mediagen.ui import services, widgets

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"
SECTIONS = {
    "Create": (Page.IMAGE_STUDIO, Page.VIDEO_STUDIO),
    "Browse": (Page.GALLERY,),
    "Admin": (Page.TASK_HISTORY, Page.SYSTEM),
}
ICONS = {
    Page.IMAGE_STUDIO: ":material/image:",
    Page.VIDEO_STUDIO: ":material/movie:",
    Page.GALLERY: ":material/photo_library:",
    Page.TASK_HISTORY: ":material/history:",
    Page.SYSTEM: ":material/monitor_heart:",
}


def build_navigation():  # -> StreamlitPage
    st.set_page_config(page_title="mediagen", page_icon=":material/movie_filter:", layout="wide")
    user = services.current_user()
    if user is None:
        return st.navigation([st.Page(_sign_in, title="Sign in", url_path="sign-in")], position="hidden")
    if user.role is None:
        return st.navigation([st.Page(_no_access, title="No access", url_path="no-access")], position="hidden")
    home = next(page for pages in SECTIONS.values() for page in pages if user.may_open(page))
    routed = {
        page: st.Page(PAGES_DIR / f"{page}.py", title=PAGE_TITLES[page], icon=ICONS[page], default=page == home)
        for page in Page
    }
    chosen = st.navigation(list(routed.values()), position="hidden")
    with st.sidebar:
        for section, pages in SECTIONS.items():
            mine = [page for page in pages if user.may_open(page)]
            if mine:
                st.caption(section)
                for page in mine:
                    st.page_link(routed[page])
        st.divider()
        _who(user)
    return chosen


def _who(user: User) -> None:
    if user.local:
        st.info(
            "Local mode: no sign-in, a single admin, reachable only from this machine (127.0.0.1). "
            "Configure `[auth]` in .streamlit/secrets.toml to share the studio.",
            icon=":material/lock_person:",
        )
        return
    st.markdown(f"**{widgets.plain(user.name)}**  \n{widgets.plain(user.email)} · {user.role}")
    st.button("Sign out", key="sign-out", on_click=st.logout, icon=":material/logout:")


def _sign_in() -> None:
    st.title("mediagen")
    st.write("Sign in to generate, browse and review media.")
    st.button("Sign in", key="sign-in", type="primary", on_click=st.login, icon=":material/login:")


def _no_access() -> None:
    user = services.current_user()
    assert user is not None
    contact = services.studio().settings.admin_contact or "your studio's admin"
    st.title("No access yet")
    st.warning(
        f"You are signed in as {widgets.plain(user.email)}, but this studio has not given that address a role. "
        f"Ask {widgets.plain(contact)} to add it to MEDIAGEN_ROLES.",
        icon=":material/lock:",
    )
    st.button("Sign out", key="sign-out", on_click=st.logout, icon=":material/logout:")
