"""Starting a job from another one: "Make a video from this", "Edit", "Variations" and "Run again
with changes" (the links, and the studios following them).

The starting job travels in the studio's URL (``/video_studio?from=JOBID&as=video``), so such a
link can be shared and survives a reload: the studio reads it whenever it changes, prefills its
form from that job (prompt, model, options, seed) and starts from its image. The form stays the
user's to change; the new job records where it came from (``Job.derived_from``/``derivation``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import streamlit as st

from mediagen.auth.roles import Capability
from mediagen.catalog import IntRange, ModelSpec, Size
from mediagen.db.tables import Job
from mediagen.errors import InvalidInput, MediagenError
from mediagen.jobs import queries
from mediagen.jobs.lineage import Derivation, Lineage
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.studio import Studio
from mediagen.ui import services, widgets

FROM, AS = "from", "as"
STUDIO_PAGES = {JobKind.IMAGE: "pages/image_studio.py", JobKind.VIDEO: "pages/video_studio.py"}
# What each studio can make from another job.
OFFERED = {
    JobKind.IMAGE: (Derivation.EDIT, Derivation.VARIATION, Derivation.RERUN),
    JobKind.VIDEO: (Derivation.VIDEO, Derivation.RERUN),
}
FROM_AN_IMAGE = {Derivation.VIDEO: JobKind.VIDEO, Derivation.EDIT: JobKind.IMAGE, Derivation.VARIATION: JobKind.IMAGE}
ACTION_LABELS = {
    Derivation.VIDEO: ("Make a video from this", ":material/movie:"),
    Derivation.EDIT: ("Edit", ":material/edit:"),
    Derivation.VARIATION: ("Variations", ":material/auto_awesome_mosaic:"),
    Derivation.RERUN: ("Run again with changes", ":material/tune:"),
}
BANNER_TEXT = {
    Derivation.VIDEO: "A video that starts on this image, from job {id}",
    Derivation.EDIT: "Editing this image, from job {id}: say what to change",
    Derivation.VARIATION: "Variations of this image, from job {id}: same prompt, new seed",
    Derivation.RERUN: "Running job {id} again with changes",
}


@dataclass(frozen=True)
class StartingPoint:
    job: Job  # loaded with its assets and inputs
    how: Derivation

    @property
    def lineage(self) -> Lineage:
        return Lineage(self.job.id, self.how)


def image_models(studio: Studio, kind: JobKind) -> list[ModelSpec]:
    """The configured models of ``kind`` that can start from an image."""
    return [spec for spec in studio.catalog.models(kind) if spec.image_input("image")]


def offered(studio: Studio, job: Job) -> list[Derivation]:
    """What can be made from ``job`` here: from a finished image, whatever a configured model can
    start from it; from any job, running it again."""
    made: list[Derivation] = []
    if job.kind == JobKind.IMAGE and job.status == JobStatus.SUCCEEDED and job.assets:
        made += [how for how, kind in FROM_AN_IMAGE.items() if image_models(studio, kind)]
    return [*made, Derivation.RERUN]


def studio_for(job: Job, how: Derivation) -> JobKind:
    return FROM_AN_IMAGE.get(how, JobKind(job.kind))


def action_links(studio: Studio, job: Job, *, only: tuple[Derivation, ...] | None = None) -> None:
    """A link per thing that can be made from ``job``, each opening its studio prefilled."""
    for how in offered(studio, job):
        if only is not None and how not in only:
            continue
        label, icon = ACTION_LABELS[how]
        st.page_link(
            STUDIO_PAGES[studio_for(job, how)], label=label, icon=icon, query_params={FROM: job.id, AS: how.value}
        )


def card_menu(studio: Studio, job: Job) -> None:
    """On a gallery card, what can be made from its image, behind one small button (for those
    who may generate)."""
    if len(offered(studio, job)) > 1 and services.signed_in_user().may(Capability.GENERATE):
        with st.popover("Use", icon=":material/arrow_outward:"):
            action_links(studio, job, only=tuple(FROM_AN_IMAGE))


# --- the studio side: reading the link and prefilling the form ---


def state_key(kind: JobKind, name: str) -> str:
    return f"{kind.value}-start-{name}"


def read_link(studio: Studio, kind: JobKind) -> StartingPoint | None:
    """The starting point the studio's URL names, prefilling the form the first run it is seen
    (later runs keep what the user changed); a link that cannot be followed is said so once."""
    wanted = (st.query_params.get(FROM), st.query_params.get(AS))
    if wanted != st.session_state.get(state_key(kind, "link")):
        st.session_state[state_key(kind, "link")] = wanted
        st.session_state.pop(state_key(kind, "point"), None)
        if wanted[0]:
            try:
                point = _follow(studio, kind, wanted[0], wanted[1])
            except MediagenError as exc:
                widgets.show_error(exc, lead=f"Could not start from job {wanted[0]}")
            else:
                _prefill(studio, kind, point)
                st.session_state[state_key(kind, "point")] = point
                # Said again: a link to the studio already open reruns it with the link's query,
                # but the browser's address bar keeps the old one until the page sends its own.
                st.query_params.update({FROM: point.job.id, AS: point.how.value})
    found: StartingPoint | None = st.session_state.get(state_key(kind, "point"))
    return found


def _follow(studio: Studio, kind: JobKind, job_id: str, how_text: str | None) -> StartingPoint:
    allowed = [how.value for how in OFFERED[kind]]
    if how_text not in allowed:
        raise InvalidInput("as", f"{how_text!r} is not something this studio makes from a job", allowed)
    how = Derivation(how_text)
    job = queries.get_job(studio, job_id)
    if how is Derivation.RERUN and job.kind != kind:
        raise InvalidInput("from", f"job {job_id} is a {job.kind}", f"a {kind.value} job, or open it in its own studio")
    if how is not Derivation.RERUN and how not in offered(studio, job):
        if not image_models(studio, kind):
            raise InvalidInput("as", f"no configured {kind.value} model starts from an image", "rerun")
        raise InvalidInput("from", f"job {job_id} has no finished image to start from", "a succeeded image job")
    return StartingPoint(job, how)


def _model_for(studio: Studio, kind: JobKind, point: StartingPoint) -> ModelSpec | None:
    """The job's own model when it can be used here, else the first that can start from an image."""
    served = {spec.name: spec for spec in studio.catalog.models(kind)}
    own = served.get(point.job.model)
    if point.how is Derivation.RERUN:
        return own
    if own is not None and own.image_input("image"):
        return own
    takers = image_models(studio, kind)
    return takers[0] if takers else None


def _prefill(studio: Studio, kind: JobKind, point: StartingPoint) -> None:
    """Seed the form's widgets from the job, as the studio's keys name them (``widgets``)."""
    prefix = kind.value
    job = point.job
    st.session_state[f"{prefix}-prompt"] = "" if point.how is Derivation.EDIT else job.prompt
    spec = _model_for(studio, kind, point)
    if spec is None:  # a rerun on a model no longer configured here: the user picks another
        st.session_state[state_key(kind, "note")] = f"Model {job.model} is not configured here; pick another."
        return
    st.session_state[f"{prefix}-model"] = spec.name
    # A video of an image starts from the video model's own defaults: the image's options (its
    # size, how many) say nothing about the video. Anything else keeps the job's options.
    given = dict(job.params) if point.how is not Derivation.VIDEO else {}
    for param in spec.params:
        if point.how is Derivation.VARIATION and param.name == "seed" and isinstance(param, IntRange):
            given["seed"] = _new_seed(param, job.params.get("seed"))
        _prefill_param(param, given.get(param.name), f"{prefix}-{spec.name}-{param.name}")


def _new_seed(param: IntRange, old: Any) -> int:
    seed = random.randint(param.low, param.high)
    return seed if seed != old else (seed + 1 if seed < param.high else param.low)


def _prefill_param(param: Any, value: Any, key: str) -> None:
    try:
        value = param.normalize(value)
    except InvalidInput:  # this model takes other values: leave its default
        value = param.default
    if isinstance(param, IntRange) and param.low == param.high:
        return  # a fixed value has no input
    if isinstance(param, Size) and value not in param.options:
        st.session_state[key] = widgets.CUSTOM_SIZE
        st.session_state[f"{key}-custom"] = value
        return
    st.session_state[key] = value


def note(kind: JobKind) -> None:
    if text := st.session_state.pop(state_key(kind, "note"), None):
        st.warning(widgets.plain(text), icon=":material/info:")
