"""Access to the running services and the signed-in user, for pages."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from mediagen import server
from mediagen.auth.roles import LOCAL_ADMIN, User, role_for
from mediagen.errors import Forbidden
from mediagen.studio import Studio
from mediagen.ui import widgets
from mediagen.ui.access import StudioPage, require_page


def studio() -> Studio:
    return server.studio()


def auth_configured() -> bool:
    """Whether sign-in is set up (an ``[auth]`` section in .streamlit/secrets.toml)."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return False


def current_user() -> User | None:
    """Who is using the studio: the local admin without sign-in, None before signing in."""
    if not auth_configured():
        return LOCAL_ADMIN
    if not st.user.get("is_logged_in"):
        return None
    email = str(st.user.get("email") or "")
    name = str(st.user.get("name") or email)
    return User(email=email, name=name, role=role_for(email, studio().settings.roles) if email else None)


def signed_in_user() -> User:
    user = current_user()
    if user is None:  # pages are only routed after sign-in; this is the server-side backstop
        st.stop()
    assert user is not None
    return user


def current_owner() -> str:
    return signed_in_user().email


def page_user(page: StudioPage) -> User:
    """The user, if this page is theirs to use; otherwise a polite refusal and the page stops."""
    user = signed_in_user()
    try:
        require_page(user, page)
    except Forbidden as exc:
        st.warning(widgets.plain(str(exc)), icon=":material/lock:")
        st.stop()
    return user
