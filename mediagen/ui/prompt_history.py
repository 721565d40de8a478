"""The studios' prompt "History": the user's own recent prompts (``jobs.prompt_history``), one
pick filling the prompt box."""

from __future__ import annotations

import streamlit as st

from mediagen.jobs.prompt_history import recent_prompts
from mediagen.jobs.status import JobKind
from mediagen.studio import Studio

SHOWN_CHARS = 100


def _use_picked(kind: JobKind) -> None:
    """Put the picked prompt in the prompt box (a callback: it runs before the box is drawn) and
    empty the pick, so the same prompt can be picked again after it was changed."""
    key = f"{kind.value}-history"
    if picked := st.session_state.get(key):
        st.session_state[f"{kind.value}-prompt"] = picked
    st.session_state[key] = None


def recent_prompts_picker(studio: Studio, kind: JobKind, owner: str) -> None:
    prompts = recent_prompts(studio, owner)
    if not prompts:
        return
    # Not labelled "…prompt…": a label finder (a screen reader's, a test's) looking for the
    # Prompt box must find that box only.
    st.selectbox(
        "History",
        prompts,
        index=None,
        key=f"{kind.value}-history",
        placeholder=f"History: reuse a recent prompt of yours ({len(prompts)})",
        label_visibility="collapsed",
        format_func=lambda text: text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…",
        on_change=_use_picked,
        args=(kind,),
    )
