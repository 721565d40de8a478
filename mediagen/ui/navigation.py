"""Pages and sections of the dashboard, for the signed-in user's role.

Every page is routed at its own URL, ``/<page>`` (so a typed or bookmarked URL reaches the page,
which then refuses politely if it is not the user's), and the root URL shows the user's home
page; the sidebar lists only the pages the role may use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from mediagen.auth.roles import User
from mediagen.errors import MediagenError
from mediagen.ui import services, widgets
from mediagen.ui.access import PAGE_TITLES, StudioPage, may_open

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"
# Our own file, sent inline: a Material icon as page_icon makes browsers fetch it from Google's
# font servers, which offline (or behind a strict firewall) leaves the tab without an icon.
FAVICON = Path(__file__).with_name("favicon.svg")
SECTIONS = {
    "Create": (StudioPage.IMAGE_STUDIO, StudioPage.VIDEO_STUDIO, StudioPage.COMPARE),
    "Browse": (StudioPage.GALLERY,),
    "Admin": (StudioPage.TASK_HISTORY, StudioPage.SYSTEM),
}
ICONS = {
    StudioPage.IMAGE_STUDIO: ":material/image:",
    StudioPage.VIDEO_STUDIO: ":material/movie:",
    StudioPage.COMPARE: ":material/view_column:",
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
    st.set_page_config(page_title="mediagen", page_icon=str(FAVICON), layout="wide")
    user = services.current_user()
    if user is None:
        return _at_every_url(_sign_in, "Sign in")
    if user.role is None:
        return _at_every_url(_no_access, "No access")
    home = next(page for pages in SECTIONS.values() for page in pages if may_open(user, page))
    routed = {
        page: st.Page(PAGES_DIR / f"{page}.py", title=PAGE_TITLES[page], icon=ICONS[page], url_path=str(page))
        for page in StudioPage
    }
    # Streamlit serves its default page at "/" only, never at the page's own name: the root URL
    # gets a twin of the home page, so /image_studio keeps working for the page that is home.
    root = st.Page(
        PAGES_DIR / f"{home}.py",
        title=PAGE_TITLES[home],
        icon=ICONS[home],
        url_path="",
        default=True,
        visibility="hidden",
    )
    chosen = st.navigation([root, *routed.values()], position="hidden")
    # On the root URL, the home page's link is the twin's, so the sidebar shows it as the page open.
    links = {**routed, home: root} if chosen is root else routed
    with st.sidebar:
        for section, pages in SECTIONS.items():
            mine = [page for page in pages if may_open(user, page)]
            if mine:
                st.caption(section)
                for page in mine:
                    st.page_link(links[page])
        st.divider()
        _who(user)
    return chosen


def _at_every_url(body: Callable[[], None], title: str):  # -> StreamlitPage
    """The one page a visitor without access gets (sign in, ask for a role), at the root URL and at
    every page's URL: a shared link asks them to sign in instead of saying the page is not found."""
    pages = [st.Page(body, title=title, url_path="", default=True)]
    pages += [st.Page(body, title=title, url_path=str(page), visibility="hidden") for page in StudioPage]
    return st.navigation(pages, position="hidden")


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
