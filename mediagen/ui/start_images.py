"""What a studio's submission starts from: the starting job named by the URL (shown above the
form, with "Start over") or the images uploaded in the form ("Start from an image", a mask), as
the ``ImageRef``s the job is made with. (Following the link and prefilling: ``starting_points``.)"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import streamlit as st

from mediagen.jobs.lineage import Derivation, Lineage
from mediagen.jobs.references import ImageRef
from mediagen.jobs.status import JobKind
from mediagen.studio import Studio
from mediagen.ui import widgets
from mediagen.ui.starting_points import AS, BANNER_TEXT, FROM, StartingPoint, state_key

PICTURE_WIDTH = 96


def _start_over(kind: JobKind) -> None:
    for name in (FROM, AS):
        st.query_params.pop(name, None)
    st.session_state[state_key(kind, "link")] = (None, None)
    st.session_state.pop(state_key(kind, "point"), None)


@dataclass(frozen=True)
class StartImages:
    """What a submission starts from: the starting job's image (or, for a rerun, its inputs)
    and/or files uploaded in the form."""

    point: StartingPoint | None
    image_upload: Any = None  # Streamlit's UploadedFile, a BytesIO
    mask_upload: Any = None

    @property
    def lineage(self) -> Lineage | None:
        return self.point.lineage if self.point else None

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """What makes two presses start from the same images."""
        parts = [f"{self.point.how}:{self.point.job.id}" if self.point else ""]
        for upload in (self.image_upload, self.mask_upload):
            parts.append(f"{upload.file_id}" if upload is not None else "")
        return tuple(parts)

    @contextlib.contextmanager
    def references(self, studio: Studio) -> Iterator[list[ImageRef]]:
        """The images as ``ImageRef``s, readable from their start for each press."""
        refs: list[ImageRef] = []
        with contextlib.ExitStack() as opened:
            if self.point is not None and self.point.how is Derivation.RERUN:
                for row in self.point.job.inputs:
                    if row.source_job_id:
                        refs.append(ImageRef(role=row.role, source=row.source_job_id))
                    else:  # an upload kept with the job: read again from our storage
                        handle = opened.enter_context(studio.storage.open(row.key))
                        refs.append(ImageRef(role=row.role, upload=handle, name=row.origin.removeprefix("upload ")))
            elif self.point is not None:
                refs.append(ImageRef(source=self.point.job.id))
            for role, upload in (("image", self.image_upload), ("mask", self.mask_upload)):
                if upload is not None:
                    upload.seek(0)
                    refs.append(ImageRef(role=role, upload=upload, name=upload.name))
            yield refs


def banner(studio: Studio, kind: JobKind, point: StartingPoint | None) -> None:
    """Above the form: what the submission starts from, with "Start over"."""
    if point is None:
        return
    job = point.job
    with st.container(border=True, key=f"{kind.value}-start"), st.container(horizontal=True):
        for url, caption in _start_pictures(studio, point):
            st.image(url, caption=caption, width=PICTURE_WIDTH)
        with st.container(width="stretch"):
            st.markdown(f"**{widgets.plain(BANNER_TEXT[point.how].format(id=job.id))}**")
            with st.container(horizontal=True, vertical_alignment="center"):
                st.button(
                    "Start over",
                    key=f"{kind.value}-start-over",
                    icon=":material/close:",
                    on_click=_start_over,
                    args=(kind,),
                )
                st.page_link("pages/gallery.py", label=f"Details of job {job.id}", query_params={"job": job.id})


def image_inputs(studio: Studio, kind: JobKind, model: str, point: StartingPoint | None) -> StartImages:
    """The form's images: the starting job's, else an optional upload, shown only for a model
    that takes one, with the model's limits as help; a mask where the model takes one."""
    prefix = kind.value
    spec = studio.catalog.get(model)
    accepts, mask = spec.image_input("image"), spec.image_input("mask")
    image_upload = mask_upload = None
    has_start_image = point is not None and (point.how is not Derivation.RERUN or bool(point.job.inputs))
    if has_start_image and accepts is None:
        st.warning(
            f"{widgets.plain(spec.label)} does not start from an image: pick a model that does, or Start over.",
            icon=":material/warning:",
        )
    offers_mask = mask is not None and not _rerun_has_mask(point)
    if accepts is None or (has_start_image and not offers_mask):
        return StartImages(point)
    # Folded away: most requests start from text, and Generate stays on the screen.
    title = "Add a mask" if has_start_image else "Start from an image"
    required = accepts.required and not has_start_image
    with st.expander(
        f"{title} ({'required' if required else 'optional'})", icon=":material/add_photo_alternate:", expanded=required
    ):
        if not has_start_image:
            image_upload = st.file_uploader("Image", key=f"{prefix}-upload-image", help=accepts.describe())
        if mask is not None and offers_mask and (has_start_image or image_upload is not None):
            mask_upload = st.file_uploader("Mask (optional)", key=f"{prefix}-upload-mask", help=mask.describe())
    return StartImages(point, image_upload, mask_upload)


def _rerun_has_mask(point: StartingPoint | None) -> bool:
    return point is not None and point.how is Derivation.RERUN and any(i.role == "mask" for i in point.job.inputs)


def _start_pictures(studio: Studio, point: StartingPoint) -> list[tuple[str, str | None]]:
    """Small pictures of what the new job starts from, with what each is."""
    if point.how is Derivation.RERUN:
        return [(studio.storage.url(row.key), f"{row.role}: {row.origin}") for row in point.job.inputs]
    first = point.job.assets[0]
    return [(studio.storage.url(first.thumbnail_key or first.key), None)]  # the text beside names it
