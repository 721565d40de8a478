"""A job's input images on each storage backend (a folder, S3 in moto over HTTP) and database:
stored under ``inputs/`` with the job, kept when it fails, deleted with it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mediagen.errors import InvalidInput
from mediagen.jobs import actions
from mediagen.jobs.lineage import Derivation, Lineage
from mediagen.jobs.references import ImageRef
from mediagen.jobs.schema import JobOut
from mediagen.jobs.status import JobStatus
from mediagen.library.deletion import delete_jobs

from .test_library import objects


def _png(size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 160, 90)).save(out, "PNG")
    return out.getvalue()


def test_inputs_are_stored_with_the_job_and_deleted_with_it(any_studio) -> None:
    studio = any_studio
    picture = _png()
    edit = actions.generate_image(
        studio,
        "the same, in autumn",
        model="local-image",
        params={"size": "256x256"},
        references=[ImageRef(upload=io.BytesIO(picture), name="park.png")],
    )
    assert edit.status == JobStatus.SUCCEEDED, edit.error_message
    (row,) = edit.inputs
    assert row.storage == studio.storage.name and row.key in objects(studio)
    with studio.storage.open(row.key) as stream:
        assert stream.read() == picture
    assert JobOut.of(edit, studio.storage).data()["inputs"][0]["url"] == studio.storage.url(row.key)

    video = actions.submit_video(
        studio,
        "the leaves fall",
        model="local-video",
        params={"duration": 1, "size": "128x128"},
        references=[ImageRef(source=edit.id)],
        lineage=Lineage(edit.id, Derivation.VIDEO),
    )
    actions.cancel_job(studio, video.id)  # a job that ended without a result keeps its input
    assert video.inputs[0].key in objects(studio)

    delete_jobs(studio, [video.id, edit.id])
    assert objects(studio) == []


def test_a_refused_input_leaves_no_object(any_studio) -> None:
    studio = any_studio
    with pytest.raises(InvalidInput) as refused:
        actions.submit_video(
            studio,
            "x",
            model="local-video",
            references=[ImageRef(upload=io.BytesIO(b"GIF89a" + b"\0" * 100), name="odd.gif")],
        )
    assert refused.value.field == "image"
    with pytest.raises(Exception, match=r"(?i)foreign key"):  # the row is refused after the copy
        actions.submit_video(
            studio,
            "x",
            model="local-video",
            references=[ImageRef(upload=io.BytesIO(_png()), name="ok.png")],
            lineage=Lineage("0123456789abcdef", Derivation.VIDEO),
        )
    assert objects(studio) == []
