"""Reference images: checked before anything is written, stored with the job, lineage both ways.

Against real SQLite and PostgreSQL, real local storage and a loopback HTTP server; the provider
is the scripted one, serving models of this test's own that declare image inputs.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from mediagen.auth.roles import Role, User
from mediagen.catalog import ImageInput, IntRange, ModelSpec
from mediagen.db.tables import Job, JobInput
from mediagen.errors import InvalidInput, ProviderError
from mediagen.jobs import actions, queries
from mediagen.jobs.lineage import Derivation, Lineage, children, parents
from mediagen.jobs.references import ImageRef
from mediagen.jobs.schema import JobOut
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.library.deletion import delete_jobs
from mediagen.providers import PROVIDERS
from mediagen.providers.base import ImageResult, MediaSource, PollResult, ProviderEntry, Reference, TaskState
from mediagen.providers.settings import ProviderSettings
from mediagen.studio import Studio
from mediagen.worker.sweep import tick

from ..conftest import stored_files
from ..support.fakes import ScriptedProvider

EDIT = ModelSpec(
    name="refs-edit",
    provider="refs",
    kind=JobKind.IMAGE,
    label="Edits",
    params=(IntRange("n", "", 1, 4, 1),),
    image_inputs=(
        ImageInput("image", "image", min_side=64, max_side=2048, max_bytes=300_000),
        ImageInput("mask", "mask", formats=("png",), same_size_as_image=True),
    ),
)
TEXT_ONLY = ModelSpec(name="refs-text", provider="refs", kind=JobKind.IMAGE, label="Text only")
FIRST_FRAME = ModelSpec(
    name="refs-i2v",
    provider="refs",
    kind=JobKind.VIDEO,
    label="Image to video",
    params=(IntRange("duration", "", 1, 10, 2),),
    image_inputs=(ImageInput("image", "first_frame_image", required=True, min_side=64),),
)


class RecordingProvider(ScriptedProvider):
    """The scripted provider, keeping the references each call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[list[tuple[str, bytes]]] = []

    def generate(self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()):
        self.references.append([(r.role, r.read()) for r in references])
        return super().generate(model, prompt, params, references)

    def submit(self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()):
        self.references.append([(r.role, r.read()) for r in references])
        return super().submit(model, prompt, params, references)


@pytest.fixture
def refs(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[tuple[Studio, RecordingProvider]]:
    provider = RecordingProvider()
    entry = ProviderEntry(
        name="refs",
        label="References",
        settings=ProviderSettings,
        factory=lambda _own, _studio: provider,
        models=lambda _own: (EDIT, TEXT_ONLY, FIRST_FRAME),
    )
    monkeypatch.setitem(PROVIDERS, "refs", entry)
    opened = Studio.open(settings)
    yield opened, provider
    opened.close()


def png(width: int = 128, height: int = 96, mode: str = "RGB", color: Any = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, "PNG")
    return out.getvalue()


def _count(studio: Studio, table: Any) -> int:
    with studio.db.read() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _no_trace(studio: Studio) -> None:
    """Nothing written: no job, no input row, no object, nothing left in the spool."""
    assert _count(studio, Job) == 0
    assert _count(studio, JobInput) == 0
    assert stored_files(studio) == []
    assert [p for p in studio.settings.spool_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


def _edit(studio: Studio, *refs: ImageRef, model: str = "refs-edit", reader: User | None = None) -> Job:
    return actions.generate_image(studio, "make it blue", model=model, references=refs, reader=reader)


def _answer(provider: ScriptedProvider) -> None:
    provider.image_answer = ImageResult([MediaSource(data=png(64, 64, color=(0, 0, 255)))])


def test_an_upload_is_checked_stored_with_the_job_and_handed_to_the_provider(refs) -> None:
    studio, provider = refs
    _answer(provider)
    picture, mask = png(), png(mode="RGBA", color=(0, 0, 0, 0))
    job = _edit(
        studio,
        ImageRef(upload=io.BytesIO(picture), name="C:\\photos\\cat.png"),
        ImageRef(role="mask", upload=io.BytesIO(mask), name="mask.png"),
    )
    assert job.status == JobStatus.SUCCEEDED
    assert provider.references == [[("image", picture), ("mask", mask)]]
    image_row, mask_row = job.inputs
    assert (image_row.role, image_row.width, image_row.height, image_row.bytes) == ("image", 128, 96, len(picture))
    assert image_row.key == f"inputs/{job.created_at:%Y/%m/%d}/{job.id}-0.png"
    assert image_row.origin == "upload cat.png" and image_row.source_job_id is None
    assert (studio.settings.media_dir / image_row.key).read_bytes() == picture
    assert (studio.settings.media_dir / mask_row.key).read_bytes() == mask
    shown = JobOut.of(queries.get_job(studio, job.id), studio.storage).data()
    assert shown["inputs"][0] == {
        "role": "image",
        "url": f"http://127.0.0.1:9/cdn/{image_row.key}",
        "content_type": "image/png",
        "bytes": len(picture),
        "width": 128,
        "height": 96,
        "origin": "upload cat.png",
        "source_job_id": None,
    }
    assert shown["derived_from"] is None and shown["comparison_id"] is None
    assert [p for p in studio.settings.spool_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


def _text_as_png(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture, only words\n" * 20)
    return path


@pytest.mark.parametrize(
    ("refs_of", "model", "field", "words"),
    [
        pytest.param(
            lambda tmp: [ImageRef(upload=_text_as_png(tmp).open("rb"), name="notes.png")],
            "refs-edit",
            "image",
            "not an image this model takes",
            id="text-renamed-png",
        ),
        pytest.param(
            lambda tmp: [ImageRef(upload=io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 400_000), name="big.png")],
            "refs-edit",
            "image",
            "larger than 300,000 bytes",
            id="too-big",
        ),
        pytest.param(
            lambda tmp: [ImageRef(upload=io.BytesIO(png(32, 200)), name="thin.png")],
            "refs-edit",
            "image",
            "is 32x200 px",
            id="too-small",
        ),
        pytest.param(
            lambda tmp: [
                ImageRef(upload=io.BytesIO(png()), name="cat.png"),
                ImageRef(role="mask", upload=io.BytesIO(png(64, 64, "RGBA", (0, 0, 0, 0))), name="mask.png"),
            ],
            "refs-edit",
            "mask",
            "is 64x64 px but the image is 128x96 px",
            id="mask-of-another-size",
        ),
        pytest.param(
            lambda tmp: [
                ImageRef(upload=io.BytesIO(png()), name="cat.png"),
                ImageRef(role="mask", upload=io.BytesIO(png()), name="mask.png"),
            ],
            "refs-edit",
            "mask",
            "has no transparency",
            id="mask-without-alpha",
        ),
        pytest.param(
            lambda tmp: [ImageRef(role="mask", upload=io.BytesIO(png(mode="RGBA")), name="mask.png")],
            "refs-edit",
            "mask",
            "needs an image",
            id="mask-alone",
        ),
        pytest.param(
            lambda tmp: [ImageRef(upload=io.BytesIO(png()[:200]), name="cut.png")],
            "refs-edit",
            "image",
            "does not decode",
            id="truncated",
        ),
        pytest.param(
            lambda tmp: [ImageRef(upload=io.BytesIO(png()), name="cat.png")],
            "refs-text",
            "image",
            "model refs-text does not take an image",
            id="model-takes-no-image",
        ),
    ],
)
def test_bad_uploads_are_refused_naming_the_field_and_leave_nothing(
    refs, tmp_path, refs_of, model, field, words
) -> None:
    studio, provider = refs
    _answer(provider)
    with pytest.raises(InvalidInput) as refused:
        _edit(studio, *refs_of(tmp_path), model=model)
    assert refused.value.field == field and words in str(refused.value), str(refused.value)
    assert refused.value.allowed  # what would be accepted
    assert provider.references == []
    _no_trace(studio)


def test_a_model_that_takes_no_image_names_those_that_do(refs) -> None:
    studio, _provider = refs
    with pytest.raises(InvalidInput) as refused:
        _edit(studio, ImageRef(upload=io.BytesIO(png()), name="cat.png"), model="refs-text")
    assert "refs-edit" in str(refused.value.allowed)


def test_a_model_that_needs_an_image_gets_one(refs) -> None:
    studio, provider = refs
    with pytest.raises(InvalidInput) as refused:
        actions.submit_video(studio, "waves", model="refs-i2v")
    assert refused.value.field == "image" and "model refs-i2v needs one" in str(refused.value)
    assert provider.submits == []
    _no_trace(studio)


def test_a_job_whose_row_cannot_be_written_leaves_no_input_objects(refs) -> None:
    studio, _provider = refs
    # A parent that does not exist: the database refuses the row (a foreign key) after the
    # input was copied to storage, and the copy is deleted again.
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        actions.submit_video(
            studio,
            "waves",
            model="refs-i2v",
            references=[ImageRef(upload=io.BytesIO(png()), name="cat.png")],
            lineage=Lineage("0123456789abcdef", Derivation.VIDEO),
        )
    _no_trace(studio)


@pytest.fixture
def image_server(small_png) -> Iterator[str]:
    """A loopback HTTP server: /cat.png is a picture, anything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/cat.png"):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(small_png)))
                self.end_headers()
                self.wfile.write(small_png)
            else:
                self.send_error(404)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_refs_name_a_job_a_file_or_a_url(refs, tmp_path, image_server, small_png) -> None:
    studio, provider = refs
    _answer(provider)
    parent = _edit(studio, ImageRef(upload=io.BytesIO(png()), name="cat.png"))
    result = (studio.settings.media_dir / parent.assets[0].key).read_bytes()

    from_job = actions.submit_video(studio, "waves", model="refs-i2v", references=[ImageRef(source=parent.id)])
    (row,) = from_job.inputs
    assert (row.origin, row.source_job_id, row.sha256) == (f"job {parent.id}", parent.id, parent.assets[0].sha256)

    file = tmp_path / "photo.png"
    file.write_bytes(small_png)
    from_file = actions.submit_video(studio, "waves", model="refs-i2v", references=[ImageRef(source=str(file))])
    assert from_file.inputs[0].origin == "file photo.png" and from_file.inputs[0].width == 256

    url = f"{image_server}/cat.png?signature=secret"
    from_url = actions.submit_video(studio, "waves", model="refs-i2v", references=[ImageRef(source=url)])
    assert from_url.inputs[0].origin == f"{image_server}/cat.png"

    provider.script.append(PollResult(TaskState.RUNNING, progress=10))
    tick(studio, worker_id="w")  # submits the three: the provider reads each input from our storage
    assert sorted(provider.references[1:]) == sorted(
        [[("image", result)], [("image", small_png)], [("image", small_png)]]
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("http://192.168.1.10/cat.png", "is refused"),
        ("ftp://example.com/cat.png", "ftp:// URLs are not fetched"),
        ("/no/such/file.png", "no job or file named"),
        ("0123456789abcdef", "no job with id"),
        ("n" * 5000, "no job or file named"),
        ("cat\0.png", "no job or file named"),
    ],
)
def test_refs_that_lead_nowhere_are_refused(refs, source, words) -> None:
    studio, _provider = refs
    with pytest.raises(InvalidInput) as refused:
        actions.submit_video(studio, "waves", model="refs-i2v", references=[ImageRef(source=source)])
    assert refused.value.field == "image" and words in str(refused.value), str(refused.value)
    _no_trace(studio)


def test_a_url_that_answers_404_is_refused(refs, image_server) -> None:
    studio, _provider = refs
    with pytest.raises(InvalidInput, match="answered HTTP 404"):
        actions.submit_video(studio, "waves", model="refs-i2v", references=[ImageRef(source=f"{image_server}/gone")])
    _no_trace(studio)


def test_a_job_ref_must_be_a_succeeded_image_the_reader_may_see(refs, tmp_path, small_png) -> None:
    studio, provider = refs
    _answer(provider)
    alice = User("alice@example.com", "Alice", Role.CREATOR)
    bob = User("bob@example.com", "Bob", Role.CREATOR)
    hers = actions.generate_image(
        studio,
        "a cat",
        model="refs-edit",
        owner=alice.email,
        references=[ImageRef(upload=io.BytesIO(png()), name="cat.png")],
    )
    video = actions.submit_video(
        studio, "waves", model="refs-i2v", references=[ImageRef(upload=io.BytesIO(png()), name="cat.png")]
    )
    provider.image_answer = ProviderError("scripted refusal")
    failed = _edit(studio, ImageRef(source=hers.id), reader=alice)  # hers to use: only the provider says no
    assert failed.status == JobStatus.FAILED and failed.inputs[0].source_job_id == hers.id
    cases = [
        (hers.id, bob, f"no job with id {hers.id!r}"),
        (video.id, None, "is a video, not an image"),
        (failed.id, None, "failed and has no image"),
    ]
    file = tmp_path / "photo.png"
    file.write_bytes(small_png)
    cases.append((str(file), alice, "files on the server are not read for callers"))
    for source, reader, words in cases:
        with pytest.raises(InvalidInput) as refused:
            _edit(studio, ImageRef(source=source), reader=reader)
        assert refused.value.field == "image" and words in str(refused.value), str(refused.value)


def test_lineage_both_ways(refs) -> None:
    studio, provider = refs
    _answer(provider)
    first = _edit(studio, ImageRef(upload=io.BytesIO(png()), name="cat.png"))
    video = actions.submit_video(
        studio,
        "it moves",
        model="refs-i2v",
        references=[ImageRef(source=first.id)],
        lineage=Lineage(first.id, Derivation.VIDEO),
    )
    edit = _edit(studio, ImageRef(source=first.id))  # its result as an input, no lineage said
    rerun = actions.generate_image(
        studio, "make it green", model="refs-edit", lineage=Lineage(edit.id, Derivation.RERUN)
    )
    assert video.derived_from == first.id and video.derivation == "video"
    assert [j.id for j in parents(studio, video.id)] == [first.id]
    assert [j.id for j in parents(studio, rerun.id)] == [edit.id, first.id]
    assert [j.id for j in children(studio, first.id)] == [edit.id, video.id]
    assert [j.id for j in children(studio, edit.id)] == [rerun.id]
    assert children(studio, first.id, owner="someone-else") == []
    assert parents(studio, first.id) == []
    shown = JobOut.of(queries.get_job(studio, video.id), studio.storage).data()
    assert (shown["derived_from"], shown["derivation"]) == (first.id, "video")


def test_retry_keeps_inputs_under_its_own_keys_and_deleting_removes_them(refs) -> None:
    studio, provider = refs
    _answer(provider)
    parent = _edit(studio, ImageRef(upload=io.BytesIO(png()), name="cat.png"))
    old = actions.submit_video(
        studio,
        "it moves",
        model="refs-i2v",
        references=[ImageRef(source=parent.id)],
        lineage=Lineage(parent.id, Derivation.VIDEO),
    )
    actions.cancel_job(studio, old.id)
    new = actions.retry_job(studio, old.id)
    (old_row,), (new_row,) = old.inputs, new.inputs
    assert new_row.key != old_row.key and new_row.key.startswith(f"inputs/{new.created_at:%Y/%m/%d}/{new.id}-0.")
    assert (new_row.sha256, new_row.source_job_id, new_row.origin) == (old_row.sha256, parent.id, f"job {old.id}")
    assert (new.retried_from, new.derived_from, new.derivation) == (old.id, parent.id, "video")
    media = studio.settings.media_dir
    assert (media / new_row.key).read_bytes() == (media / old_row.key).read_bytes()

    actions.cancel_job(studio, new.id)
    deleted = delete_jobs(studio, [old.id, new.id])
    assert deleted.jobs == 2 and deleted.objects_pending == 0
    assert not (media / old_row.key).exists() and not (media / new_row.key).exists()
    assert _count(studio, JobInput) == 1  # the parent's own upload, nothing else
    assert [k for k in stored_files(studio) if k.startswith("inputs/")] == [parent.inputs[0].key]
