"""The gallery's view in its URL: filters, order, page size and page live in ``st.query_params``,
so a link reproduces what its sender saw.

A link is read once per browser session, before the widgets are drawn (their keys are seeded
from it); after that the widgets lead and the URL follows them on every run. Values a link got
wrong are dropped with a note naming the parameter, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import streamlit as st

READ_FLAG = "g-link-read"
PAGE_STACK = "gallery-pages"


@dataclass(frozen=True)
class LinkParam:
    """One query parameter and the widget key it seeds."""

    name: str
    key: str
    many: bool = False


PARAMS = (
    LinkParam("kind", "g-kind", many=True),
    LinkParam("status", "g-status", many=True),
    LinkParam("model", "g-model", many=True),
    LinkParam("q", "g-text"),
    LinkParam("order", "g-order"),
    LinkParam("size", "g-size"),
    LinkParam("starred", "g-starred"),
    LinkParam("comparisons", "g-comparisons"),
    LinkParam("collection", "g-collection"),
    LinkParam("owner", "g-owner"),
)


def read_link_once(choices: dict[str, Sequence[Any]], parse: dict[str, Callable[[str], Any]]) -> list[str]:
    """Seed widget state from the URL the session opened with; return notes on dropped values.

    ``choices`` lists the allowed values of multi-choice and choice parameters; ``parse`` turns a
    parameter's text into the widget's value (raising ``ValueError`` when it cannot).
    """
    if st.session_state.get(READ_FLAG):
        return []
    st.session_state[READ_FLAG] = True
    notes: list[str] = []
    for param in PARAMS:
        given = st.query_params.get_all(param.name)
        if not given:
            continue
        try:
            values = [parse.get(param.name, str)(value) for value in given]
        except ValueError:
            notes.append(f"ignored {param.name}={given[0]!r} from the link: not understood")
            continue
        allowed = choices.get(param.name)
        if allowed is not None:
            unknown = [v for v in values if v not in allowed]
            if unknown:
                shown = ", ".join(str(a) for a in allowed) or "none here"
                notes.append(f"ignored {param.name}={unknown[0]!r} from the link (allowed: {shown})")
            values = [v for v in values if v in allowed]
            if not values:
                continue
        st.session_state[param.key] = values if param.many else values[0]
    _read_dates(notes)
    if cursor := st.query_params.get("after"):
        st.session_state[PAGE_STACK] = {"signature": None, "stack": [None, cursor], "from_link": True}
    return notes


def _read_dates(notes: list[str]) -> None:
    since, until = st.query_params.get("from"), st.query_params.get("to")
    if not since and not until:
        return
    try:
        first = date.fromisoformat(since or until or "")
        last = date.fromisoformat(until or since or "")
    except ValueError:
        notes.append("ignored from/to from the link: dates are YYYY-MM-DD")
        return
    st.session_state["g-dates"] = (first, last)


def write_link(values: dict[str, Any], cursor: str | None) -> None:
    """Mirror the current view into the URL, leaving out what is at its default."""
    wanted: dict[str, Any] = {}
    for name, value in values.items():
        if value in (None, "", [], (), False):
            continue
        if isinstance(value, date):
            value = value.isoformat()
        wanted[name] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    if cursor:
        wanted["after"] = cursor
    current = {name: st.query_params.get_all(name) for name in st.query_params}
    normalised = {name: value if isinstance(value, list) else [value] for name, value in wanted.items()}
    if current != normalised:  # writing the same URL again would add a browser history entry
        st.query_params.from_dict(wanted)
