"""Pages and sections of the dashboard, for the signed-in user's role.

Every page is routed (so a typed URL reaches the page, which then refuses politely if it is not
the user's); the sidebar lists only the pages the role may use.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mediagen.auth.roles import User
from mediagen.errors import MediagenError
from mediagen.ui import services, widgets
from mediagen.ui.access import PAGE_TITLES, StudioPage, may_open

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"
SECTIONS = {
    "Create": (StudioPage.IMAGE_STUDIO, StudioPage.VIDEO_STUDIO),
    "Browse": (StudioPage.GALLERY,),
    "Admin": (StudioPage.TASK_HISTORY, StudioPage.SYSTEM),
}
ICONS = {
    StudioPage.IMAGE_STUDIO: ":material/image:",
    StudioPage.VIDEO_STUDIO: ":material/movie:",
    StudioPage.GALLERY: ":material/photo_library:",
    StudioPage.TASK_HISTORY: ":material/history:",
    StudioPage.SYSTEM: ":material/monitor_heart:",
}


def run_page(page) -> None:  # type: ignore[no-untyped-def]  # a StreamlitPage
    """Run the chosen page; an error we explain (``MediagenError``) that a page did not handle
    itself is shown as its message. Anything else is a bug: Streamlit shows its redacted notice
    (``client.showErrorDetails``) and the server log has the traceback."""
    try:
        page.run()
    except MediagenError as exc:
        widgets.show_error(exc)


def build_navigation():  # -> StreamlitPage
    st.set_page_config(page_title="mediagen", page_icon=":material/movie_filter:", layout="wide")
    user = services.current_user()
    if user is None:
        return st.navigation([st.Page(_sign_in, title="Sign in", url_path="sign-in")], position="hidden")
    if user.role is None:
        return st.navigation([st.Page(_no_access, title="No access", url_path="no-access")], position="hidden")
    home = next(page for pages in SECTIONS.values() for page in pages if may_open(user, page))
    routed = {
        page: st.Page(PAGES_DIR / f"{page}.py", title=PAGE_TITLES[page], icon=ICONS[page], default=page == home)
        for page in StudioPage
    }
    chosen = st.navigation(list(routed.values()), position="hidden")
    with st.sidebar:
        for section, pages in SECTIONS.items():
            mine = [page for page in pages if may_open(user, page)]
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
