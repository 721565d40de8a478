"""Where a job came from and what it led to, in its details: the images it started from, the job
it was made from, the jobs made from it, and its comparison; each a link to open.

A job's details have their own URL, ``/gallery?job=ID``: these links, and any shared one, open
them.
"""

from __future__ import annotations

import streamlit as st

from mediagen.db.tables import Job
from mediagen.jobs import lineage
from mediagen.jobs.lineage import Derivation
from mediagen.studio import Studio
from mediagen.ui import widgets

GALLERY_PAGE = "pages/gallery.py"
COMPARE_PAGE = "pages/compare.py"
JOB_PARAM = "job"
INPUT_WIDTH = 120
# "<child> of job X": what the child is to its parent.
MADE_AS = {
    Derivation.RERUN: "run again with changes from",
    Derivation.VIDEO: "a video made from",
    Derivation.EDIT: "an edit of",
    Derivation.VARIATION: "a variation of",
}
# What each job made from this one is.
LED_TO = {
    Derivation.RERUN: "Run again with changes:",
    Derivation.VIDEO: "Video:",
    Derivation.EDIT: "Edit:",
    Derivation.VARIATION: "Variation:",
}


def job_link(job: Job, lead: str = "") -> None:
    """A link opening ``job``'s details, labelled with what it is and its prompt."""
    prompt = job.prompt if len(job.prompt) <= 60 else job.prompt[:59] + "…"
    label = f"{lead}{job.kind} job {job.id} · {widgets.status_label(job.status).lower()} · {prompt}"
    st.page_link(GALLERY_PAGE, label=widgets.plain(label), icon=":material/link:", query_params={JOB_PARAM: job.id})


def _made_as(job: Job) -> str:
    return MADE_AS[Derivation(job.derivation)] if job.derivation else "made from"


def story(studio: Studio, job: Job) -> None:
    """The job's inputs and lineage both ways, and its comparison (nothing for a job with none)."""
    if job.inputs:
        st.text("Started from")
        with st.container(horizontal=True):
            for row in job.inputs:
                with st.container(width=INPUT_WIDTH * 3, key=f"input-{job.id}-{row.index}"):
                    st.image(studio.storage.url(row.key), width=INPUT_WIDTH)
                    st.caption(
                        widgets.plain(f"{row.role} · {row.origin} · {row.width}×{row.height}")
                        + f" · {widgets.human_bytes(row.bytes)}"
                    )
    ancestors = lineage.parents(studio, job.id)
    if ancestors:
        st.text("Made from")
        how = _made_as(job)
        with st.container(key=f"made-from-{job.id}"):
            for parent in ancestors:
                job_link(parent, lead=f"{how[0].upper()}{how[1:]} ")
                how = _made_as(parent)
    made = lineage.children(studio, job.id)
    if made:
        st.text(f"Led to ({len(made)})")
        with st.container(key=f"led-to-{job.id}"):
            for child in made:
                job_link(child, lead=f"{LED_TO[Derivation(child.derivation)] if child.derivation else 'Used it:'} ")
    if job.comparison_id:
        column = (job.comparison_column or 0) + 1
        st.page_link(
            COMPARE_PAGE,
            label=f"Column {column} of comparison {job.comparison_id}",
            icon=":material/view_column:",
            query_params={"comparison": job.comparison_id},
        )
