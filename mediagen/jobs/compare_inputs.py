"""The images a comparison's columns start from: one set shared by every column, each column's
job keeping its own copy (deleting one job keeps the others' inputs)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from ..auth.roles import User
from ..catalog import ModelSpec
from ..db.tables import Job
from ..errors import InvalidInput
from ..studio import Studio
from .references import ImageRef, check

# A shared upload is read once and handed to every column: at most this much is read from it
# (beyond any model's limit, so the size check still sees an oversized upload as too big).
UPLOAD_READ_LIMIT = 64 * 1024 * 1024


def rereadable(references: Sequence[ImageRef]) -> Callable[[], list[ImageRef]]:
    """The references anew for each column: an upload is a stream that can be read once, so it is
    read here once and each column gets its own copy to store with its job."""
    if not references:
        return list
    read: list[tuple[ImageRef, bytes | None]] = [
        (ref, ref.upload.read(UPLOAD_READ_LIMIT) if ref.upload is not None else None) for ref in references
    ]

    def fresh() -> list[ImageRef]:
        return [
            ref if data is None else ImageRef(role=ref.role, upload=io.BytesIO(data), name=ref.name)
            for ref, data in read
        ]

    return fresh


def check_for_each_model(
    studio: Studio, specs: Sequence[ModelSpec], refs: Callable[[], list[ImageRef]], reader: User | None
) -> None:
    """Every column's images checked as its model takes them, before anything is written (each
    column's start checks them again as it stores them). Models that take images alike are
    checked once: a comparison is often one model with several seeds."""
    seen = set()
    for index, spec in enumerate(specs):
        if spec.image_inputs in seen:
            continue
        seen.add(spec.image_inputs)
        try:
            check(studio, spec, refs(), reader=reader).close()
        except InvalidInput as exc:
            problem = f"{exc.problem} (for columns[{index}], {spec.name})"
            raise InvalidInput(exc.field, problem, exc.allowed) from None


def inputs_of(studio: Studio, job: Job | None) -> list[ImageRef]:
    """The images the column's last job started from, for its re-run: our job where it came from
    one that still exists (lineage stays), else the stored copy."""
    if job is None or not job.inputs:
        return []
    refs = []
    with studio.db.read() as session:
        for item in sorted(job.inputs, key=lambda i: i.index):
            if item.source_job_id and session.get(Job, item.source_job_id) is not None:
                refs.append(ImageRef(role=item.role, source=item.source_job_id))
                continue
            with studio.storage.open(item.key) as handle:
                data = handle.read()
            refs.append(ImageRef(role=item.role, upload=io.BytesIO(data), name=item.origin.removeprefix("upload ")))
    return refs
