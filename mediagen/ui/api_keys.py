"""The System page's API keys section: admins make keys (the secret shown once), see every key
with its last use, and revoke one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mediagen.auth import keys
from mediagen.errors import MediagenError
from mediagen.studio import Studio

from . import widgets
from .tables import readable


def manage(studio: Studio) -> None:
    st.caption(
        "Programs call /api and /v1 with a key (`Authorization: Bearer KEY`); a key acts as its user, with the "
        "role MEDIAGEN_ROLES gives them at each request. API docs: /api/docs"
    )
    with st.form("api-key-create", clear_on_submit=True, border=False), st.container(horizontal=True):
        user = st.text_input("User (e-mail)", key="api-key-user", placeholder="ana@example.com")
        name = st.text_input("What it is for", key="api-key-name", placeholder="nightly renders")
        made = st.form_submit_button("Create key", icon=":material/key:")
    if made:
        try:
            info, secret = keys.create_key(studio, user, name)
        except MediagenError as exc:
            st.error(widgets.plain(str(exc)))
        else:
            st.success(widgets.plain(f"Key {info.id} made for {info.user}. Copy it now: it is not shown again."))
            st.code(secret, language=None)
    listed = keys.list_keys(studio)
    if not listed:
        st.caption("No API keys yet.")
        return
    table = pd.DataFrame(
        [
            {
                "id": k.id,
                "user": k.user,
                "for": k.name,
                "created": k.created_at,
                "last used": k.last_used_at,
                "revoked": k.revoked_at,
            }
            for k in listed
        ]
    )
    st.dataframe(readable(table, times=("created", "last used", "revoked")), hide_index=True, key="api-keys")
    live = [k.id for k in listed if k.revoked_at is None]
    if live:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            chosen = st.selectbox("Key to revoke", live, key="api-key-revoke-id")
            if st.button("Revoke", key="api-key-revoke", icon=":material/block:"):
                keys.revoke_key(studio, chosen)
                st.rerun()
