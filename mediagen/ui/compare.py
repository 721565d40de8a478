"""The Compare page: one prompt and shared options on 2–6 columns, each a model with its own
settings if wanted, all started at once (``jobs.compare``); the group opens below the form, at its
own URL (``/compare?comparison=ID``), so the address bar is the link to share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import streamlit as st

from mediagen.auth.roles import User
from mediagen.catalog import Choice, IntRange, ModelSpec, Param, Size
from mediagen.db.tables import Comparison
from mediagen.jobs import compare
from mediagen.jobs.status import JobKind
from mediagen.studio import Studio
from mediagen.ui import services, widgets
from mediagen.ui.access import StudioPage, may_open
from mediagen.ui.comparison_view import OPENED_PARAM, group_view
from mediagen.ui.submissions import SubmissionGuard, Verdict, await_other_run

KIND_LABELS = {JobKind.IMAGE.value: "Images", JobKind.VIDEO.value: "Videos"}
COLUMN_IDS = "cmp-columns"  # the form's columns, as ids that stay with a column when another is removed
NEXT_ID = "cmp-next-column"
PRESSED = "cmp-pressed"
GUARD = "compare-submissions"
AS_SHARED = "as shared"


@dataclass(frozen=True)
class CompareRequest:
    kind: JobKind
    prompt: str
    shared: dict[str, Any]
    columns: tuple[compare.Column, ...]

    @property
    def fingerprint(self) -> str:
        """What makes two presses of Compare the same request."""
        columns = [(c.model, c.params) for c in self.columns]
        return json.dumps([self.kind, self.prompt, self.shared, columns], sort_keys=True, default=str)


def page_user() -> User:
    """Creators and admins compare; anyone who may browse the gallery may open a comparison
    someone shared (read only), as its gallery card links here."""
    user = services.signed_in_user()
    if opened_comparison() and may_open(user, StudioPage.GALLERY) and not may_open(user, StudioPage.COMPARE):
        return user
    return services.page_user(StudioPage.COMPARE)


def opened_comparison() -> str | None:
    return st.query_params.get(OPENED_PARAM) or None


def page(studio: Studio, user: User) -> None:
    if may_open(user, StudioPage.COMPARE):
        request = compare_form(studio)
        compare_button(studio, user, request)
    if comparison_id := opened_comparison():
        st.divider()
        group_view(studio, comparison_id, user)


def compare_form(studio: Studio) -> CompareRequest:
    kind = JobKind(
        st.segmented_control(
            "Compare", list(KIND_LABELS), format_func=KIND_LABELS.get, key="cmp-kind", default=JobKind.IMAGE.value
        )
        or JobKind.IMAGE.value
    )
    prompt = st.text_area(
        "Prompt", key="cmp-prompt", height=100, placeholder="One idea, on every column: a red fox in fresh snow"
    )
    shared = _shared_options(kind)
    models = [m.name for m in studio.catalog.models(kind)]
    ids = _column_ids()
    columns = []
    for number, (column_id, place) in enumerate(zip(ids, st.columns(len(ids)), strict=True)):
        with place, st.container(border=True, key=f"cmp-column-{column_id}"):
            columns.append(
                _column_form(studio, kind, models, number, column_id, removable=len(ids) > compare.MIN_COLUMNS)
            )
    return CompareRequest(kind, prompt, shared, tuple(columns))


def _shared_options(kind: JobKind) -> dict[str, Any]:
    """The options every column gets unless it sets its own; a model without one skips it."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        size = st.text_input(
            "Size (all columns)",
            key="cmp-size",
            placeholder="each model's default",
            help="WIDTHxHEIGHT, e.g. 512x512. Models that do not take a size skip it.",
            width=220,
        )
        seed = st.number_input(
            "Seed (all columns)", min_value=0, value=None, step=1, key="cmp-seed", placeholder="any", width=180
        )
        duration = None
        if kind is JobKind.VIDEO:
            duration = st.number_input(
                "Duration, s (all columns)", min_value=1, value=None, step=1, key="cmp-duration", placeholder="default"
            )
    shared = {"size": size.strip() or None, "seed": seed, "duration": duration}
    return {name: value for name, value in shared.items() if value is not None}


def _column_ids() -> list[int]:
    ids: list[int] = st.session_state.setdefault(COLUMN_IDS, [0, 1, 2])
    st.session_state.setdefault(NEXT_ID, len(ids))
    return ids


def _add_column() -> None:
    ids = st.session_state[COLUMN_IDS]
    if len(ids) < compare.MAX_COLUMNS:
        ids.append(st.session_state[NEXT_ID])
        st.session_state[NEXT_ID] += 1


def _remove_column(column_id: int) -> None:
    ids = st.session_state[COLUMN_IDS]
    if len(ids) > compare.MIN_COLUMNS:
        ids.remove(column_id)


def _column_form(
    studio: Studio, kind: JobKind, models: list[str], number: int, column_id: int, *, removable: bool
) -> compare.Column:
    key = f"cmp-{kind}-{column_id}"
    st.session_state.setdefault(f"{key}-model", models[column_id % len(models)])
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**Column {number + 1}**")
        st.space("stretch")
        st.button(
            "Remove",
            key=f"{key}-remove",
            icon=":material/close:",
            disabled=not removable,
            on_click=_remove_column,
            args=(column_id,),
            help=None if removable else f"A comparison has at least {compare.MIN_COLUMNS} columns",
        )
    model = st.selectbox("Model", models, key=f"{key}-model", format_func=lambda n: studio.catalog.get(n).label)
    spec = studio.catalog.get(model)
    with st.expander("Own settings"):
        st.caption("Left empty, an option is as shared above, or the model's default.")
        params = _own_settings(spec, f"{key}-{model}")
    return compare.Column(model, params)


def _own_settings(spec: ModelSpec, prefix: str) -> dict[str, Any]:
    chosen = {param.name: _optional_input(param, f"{prefix}-{param.name}") for param in spec.params}
    return {name: value for name, value in chosen.items() if value is not None}


def _optional_input(param: Param, key: str) -> Any:
    """An input that may stay empty (None: the shared value or the model's default)."""
    label = "Number of images" if param.name == "n" else param.name.capitalize()
    if isinstance(param, Size | Choice):
        options = list(param.options) if isinstance(param, Size) else list(param.choices)
        return st.selectbox(label, options, index=None, key=key, placeholder=AS_SHARED, help=param.help)
    if isinstance(param, IntRange) and param.low != param.high:
        return st.number_input(
            label, param.low, param.high, value=None, step=1, key=key, placeholder=AS_SHARED, help=param.help
        )
    return None


def _guard() -> SubmissionGuard[Comparison]:
    if GUARD not in st.session_state:
        st.session_state[GUARD] = SubmissionGuard[Comparison]()
    found: SubmissionGuard[Comparison] = st.session_state[GUARD]
    return found


def compare_button(studio: Studio, user: User, request: CompareRequest) -> None:
    """Add column and Compare; one press starts one group (the studios' guard against double
    clicks), which then opens below at its own URL."""
    submissions = _guard()
    # Read from the button's callback, before the script: the button is drawn disabled in the very
    # run its press started (see ``submissions.generate_button``).
    pressed = bool(st.session_state.pop(PRESSED, False))
    busy = submissions.busy or pressed
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button(
            "Add column",
            key="cmp-add",
            icon=":material/add:",
            on_click=_add_column,
            disabled=len(request.columns) >= compare.MAX_COLUMNS,
            help=f"At most {compare.MAX_COLUMNS} columns",
        )
        st.button(
            "Starting…" if busy else "Compare",
            type="primary",
            key="cmp-start",
            icon=":material/hourglass_top:" if busy else ":material/view_column:",
            disabled=busy,
            on_click=st.session_state.__setitem__,
            args=(PRESSED, True),
        )
    if pressed:
        verdict, group_id = submissions.submit(
            request.fingerprint,
            lambda: compare.start(
                studio,
                request.prompt,
                request.columns,
                kind=request.kind,
                shared_params=request.shared,
                owner=user.email,
            ),
        )
        if verdict is Verdict.REPEAT:
            submissions.notice = (
                f"Pressed twice: that comparison was just started ({group_id}); this press made nothing."
            )
        elif verdict is Verdict.BUSY:
            submissions.notice = "Still starting your last comparison; this press made nothing."
        elif group_id is not None:
            st.query_params[OPENED_PARAM] = group_id  # the group opens below, at a URL to share
        st.rerun()
    if submissions.busy:
        await_other_run(submissions, "Starting…")
    elif submissions.outcome is not None and submissions.outcome.error is not None:
        widgets.show_error(submissions.outcome.error, lead="Nothing was compared")
    if notice := submissions.take_notice():
        st.info(notice, icon=":material/ads_click:")
