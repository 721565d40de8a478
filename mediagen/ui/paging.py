"""Keyset paging kept in session state: a stack of cursors per list, reset whenever the list's
filters change. A page opened from a link starts a stack of its own; "Previous" from there
returns to the first page."""

from __future__ import annotations

import streamlit as st


class Pager:
    def __init__(self, state_key: str, widget_prefix: str) -> None:
        self.state_key = state_key
        self.widget_prefix = widget_prefix

    def current(self, *signature_parts: object) -> str | None:
        """The cursor of the page to show for a list filtered by ``signature_parts``."""
        signature = repr(signature_parts)
        state = st.session_state.setdefault(self.state_key, {"signature": signature, "stack": [None]})
        if state["signature"] != signature:
            if state.pop("from_link", False):  # the link's filters are these: keep its page
                state["signature"] = signature
            else:
                state.update(signature=signature, stack=[None])
        return state["stack"][-1]

    def number(self) -> int:
        return len(st.session_state[self.state_key]["stack"])

    def controls(self, next_cursor: str | None) -> None:
        stack = st.session_state[self.state_key]["stack"]
        with st.container(horizontal=True):
            if st.button("‹ Previous", key=f"{self.widget_prefix}-prev", disabled=len(stack) == 1):
                stack.pop()
                st.rerun()
            if st.button("Next ›", key=f"{self.widget_prefix}-next", disabled=next_cursor is None):
                stack.append(next_cursor)
                st.rerun()
