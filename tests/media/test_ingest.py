"""Ingest copies provider output into storage from bytes, base64, files and URLs, identified by the
bytes themselves, with a WebP thumbnail; any failure leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mediagen.errors import IngestError, ProviderError
from mediagen.jobs.status import JobKind
from mediagen.media.ingest import Limits, StoredMedia, ingest_outputs
from mediagen.media.inspect import THUMBNAIL_SIDE
from mediagen.media.spool import Spool
from mediagen.netguard import OutboundGuard
from mediagen.providers.base import MediaSource
from mediagen.providers.local_art import render_png
from mediagen.storage.local import LocalStorage

CREATED = datetime(2026, 3, 7, 23, 15, tzinfo=UTC)
# The loopback servers these tests fetch from are allowed, as MEDIAGEN_OUTBOUND_ALLOW would.
LIMITS = Limits(max_bytes=20 * 1024 * 1024, deadline_s=30, guard=OutboundGuard.from_entries(["127.0.0.1/32"]))
JOB = "job42"
# Big enough that the thumbnail has to be scaled down, small enough to render in a blink.
PNG = render_png("ingest picture", 7, 768, 512)
PNG_KEY = f"image/2026/03/07/{JOB}-0.png"


_LARGE: list[bytes] = []


def _large_png() -> bytes:
    """A noise PNG over 8 MiB: several read chunks, several base64 chunks, and a spool that
    rolls over from memory to disk."""
    if not _LARGE:
        pixels = np.random.default_rng(0).integers(0, 256, (1800, 1800, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
        _LARGE.append(out.getvalue())
    return _LARGE[0]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "media", "http://127.0.0.1:9/cdn")
    store.prepare()
    return store


def _files(storage: LocalStorage) -> list[str]:
    """Every file under the storage root, temp files included, so leaks show."""
    return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file())


def _ingest(
    storage: LocalStorage, *sources: MediaSource, kind: JobKind = JobKind.IMAGE, limits: Limits = LIMITS
) -> list[StoredMedia]:
    return ingest_outputs(storage, list(sources), kind=kind, job_id=JOB, created_at=CREATED, limits=limits)


def _assert_stored_png(storage: LocalStorage, stored: StoredMedia, data: bytes, index: int = 0) -> None:
    key = f"image/2026/03/07/{JOB}-{index}.png"
    assert stored.index == index
    assert stored.key == key
    assert stored.content_type == "image/png"
    with storage.open(key) as handle:
        assert handle.read() == data
    assert stored.bytes == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as original:
        assert (stored.width, stored.height) == original.size
    assert stored.duration_s is None
    _assert_thumbnail(storage, stored)


def _assert_thumbnail(storage: LocalStorage, stored: StoredMedia) -> Image.Image:
    assert stored.thumbnail_key == stored.key.rsplit(".", 1)[0] + ".thumb.webp"
    assert storage.exists(stored.thumbnail_key)
    with storage.open(stored.thumbnail_key) as handle:
        thumb = Image.open(io.BytesIO(handle.read()))
        thumb.load()
    assert thumb.format == "WEBP"
    assert max(thumb.size) <= THUMBNAIL_SIDE == 384
    # Same shape as the original, give or take rounding.
    assert abs(thumb.width / thumb.height - stored.width / stored.height) < 0.02
    return thumb


# -- a real HTTP server on loopback ------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PNG if self.path == "/picture.png" else _large_png() if self.path == "/large.png" else None
        if body is not None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")  # a provider's word means nothing
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/busy"):
            self.send_error(503, "try later")
        else:
            self.send_error(404, "no such output")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- every source gives the same stored object ---------------------------------------------


def test_ingest_from_bytes(storage: LocalStorage) -> None:
    [stored] = _ingest(storage, MediaSource(data=PNG))
    _assert_stored_png(storage, stored, PNG)
    assert (stored.width, stored.height) == (768, 512)
    thumb = _assert_thumbnail(storage, stored)
    assert thumb.size == (384, 256)
    assert _files(storage) == [PNG_KEY, f"image/2026/03/07/{JOB}-0.thumb.webp"]


def test_ingest_from_base64(storage: LocalStorage) -> None:
    [stored] = _ingest(storage, MediaSource(b64=base64.b64encode(PNG).decode()))
    _assert_stored_png(storage, stored, PNG)


def test_ingest_from_a_data_url(storage: LocalStorage) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    [stored] = _ingest(storage, MediaSource(b64=url))
    _assert_stored_png(storage, stored, PNG)


def test_ingest_from_base64_with_newlines(storage: LocalStorage) -> None:
    wrapped = base64.encodebytes(PNG).decode()  # MIME style: a newline every 76 characters
    assert wrapped.count("\n") > 100
    [stored] = _ingest(storage, MediaSource(b64="\n" + wrapped.replace("\n", "\r\n")))
    _assert_stored_png(storage, stored, PNG)


def test_ingest_from_a_file(storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "out" / "result.bin"  # the name says nothing; the bytes decide
    source.parent.mkdir()
    source.write_bytes(PNG)
    [stored] = _ingest(storage, MediaSource(path=source))
    _assert_stored_png(storage, stored, PNG)
    assert source.read_bytes() == PNG  # the source is left alone


def test_ingest_from_an_http_url(storage: LocalStorage, http_base: str) -> None:
    [stored] = _ingest(storage, MediaSource(url=f"{http_base}/picture.png"))
    _assert_stored_png(storage, stored, PNG)


@pytest.mark.parametrize("source", ["data", "b64", "path", "url"])
def test_ingest_of_a_large_output_from_every_source(
    storage: LocalStorage, tmp_path: Path, http_base: str, source: str
) -> None:
    data = _large_png()
    assert len(data) > 8 * 1024 * 1024
    if source == "data":
        media = MediaSource(data=data)
    elif source == "b64":
        media = MediaSource(b64=base64.b64encode(data).decode())
    elif source == "path":
        (tmp_path / "large.png").write_bytes(data)
        media = MediaSource(path=tmp_path / "large.png")
    else:
        media = MediaSource(url=f"{http_base}/large.png")
    [stored] = _ingest(storage, media)
    _assert_stored_png(storage, stored, data)
    assert (stored.width, stored.height) == (1800, 1800)
    assert _assert_thumbnail(storage, stored).size == (384, 384)


def test_ingest_several_outputs_keys_by_index(storage: LocalStorage) -> None:
    second = render_png("another", 1, 256, 384)
    first_stored, second_stored = _ingest(storage, MediaSource(data=PNG), MediaSource(data=second))
    _assert_stored_png(storage, first_stored, PNG, 0)
    _assert_stored_png(storage, second_stored, second, 1)
    assert (second_stored.width, second_stored.height) == (256, 384)
    assert len(_files(storage)) == 4


def test_ingesting_again_overwrites_instead_of_duplicating(storage: LocalStorage) -> None:
    _ingest(storage, MediaSource(data=PNG))
    before = _files(storage)
    [stored] = _ingest(storage, MediaSource(b64=base64.b64encode(PNG).decode()))
    assert _files(storage) == before
    _assert_stored_png(storage, stored, PNG)


def test_video_ingest(storage: LocalStorage, small_mp4: bytes) -> None:
    [stored] = _ingest(storage, MediaSource(data=small_mp4), kind=JobKind.VIDEO)
    assert stored.key == f"video/2026/03/07/{JOB}-0.mp4"
    assert stored.content_type == "video/mp4"
    assert (stored.width, stored.height) == (160, 96)
    assert stored.duration_s == pytest.approx(0.5, abs=0.05)  # 12 frames at 24 fps
    assert stored.bytes == len(small_mp4)
    assert stored.sha256 == hashlib.sha256(small_mp4).hexdigest()
    with storage.open(stored.key) as handle:
        assert handle.read() == small_mp4
    with av.open(str(storage.root / stored.key)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    poster = _assert_thumbnail(storage, stored)
    assert poster.size == (160, 96)
    assert _files(storage) == [f"video/2026/03/07/{JOB}-0.mp4", f"video/2026/03/07/{JOB}-0.thumb.webp"]


# -- failures leave nothing behind ---------------------------------------------------------


def _refused(
    storage: LocalStorage, *sources: MediaSource, kind: JobKind = JobKind.IMAGE, limits: Limits = LIMITS
) -> Exception:
    with pytest.raises((IngestError, ProviderError)) as caught:
        _ingest(storage, *sources, kind=kind, limits=limits)
    assert _files(storage) == []
    return caught.value


def test_random_junk_is_refused(storage: LocalStorage) -> None:
    junk = random.Random(1234).randbytes(64 * 1024)
    error = _refused(storage, MediaSource(data=junk))
    assert isinstance(error, IngestError)
    assert "not a recognisable image or video" in str(error)


def test_truncated_png_is_refused(storage: LocalStorage) -> None:
    error = _refused(storage, MediaSource(data=PNG[: len(PNG) // 2]))
    assert isinstance(error, IngestError)
    assert "image could not be decoded" in str(error)


def test_png_where_a_video_was_expected_is_refused(storage: LocalStorage) -> None:
    error = _refused(storage, MediaSource(data=PNG), kind=JobKind.VIDEO)
    assert isinstance(error, IngestError)
    assert str(error) == "expected video output but the provider sent image/png"


def test_video_where_an_image_was_expected_is_refused(storage: LocalStorage, small_mp4: bytes) -> None:
    error = _refused(storage, MediaSource(data=small_mp4))
    assert str(error) == "expected image output but the provider sent video/mp4"


def test_text_is_refused(storage: LocalStorage) -> None:
    text = b'{"error": "content policy violation", "detail": "the request was rejected"}\n' * 20
    error = _refused(storage, MediaSource(data=text))
    assert isinstance(error, IngestError)
    assert "unknown file signature" in str(error)


def test_empty_output_is_refused(storage: LocalStorage) -> None:
    error = _refused(storage, MediaSource(data=b""))
    assert isinstance(error, IngestError)
    assert str(error) == "output 0 is empty"


def test_no_outputs_at_all_is_refused(storage: LocalStorage) -> None:
    error = _refused(storage)
    assert "returned no media" in str(error)


@pytest.mark.parametrize("text", ["not base64 at all!", "iVBORw0KGgo=*&^", "data:image/png;base64,@@@@"])
def test_invalid_base64_is_refused(storage: LocalStorage, text: str) -> None:
    error = _refused(storage, MediaSource(b64=text))
    assert isinstance(error, IngestError)
    assert str(error) == "output is not valid base64"


def test_output_over_the_size_limit_is_refused(storage: LocalStorage) -> None:
    limits = Limits(max_bytes=len(PNG) - 1, deadline_s=30)
    error = _refused(storage, MediaSource(data=PNG), limits=limits)
    assert isinstance(error, IngestError)
    assert f"larger than the {len(PNG) - 1:,}-byte limit" in str(error)


def test_output_exactly_at_the_size_limit_is_accepted(storage: LocalStorage) -> None:
    [stored] = _ingest(storage, MediaSource(data=PNG), limits=Limits(max_bytes=len(PNG), deadline_s=30))
    assert stored.bytes == len(PNG)


def test_second_output_failing_removes_the_first(storage: LocalStorage) -> None:
    error = _refused(storage, MediaSource(data=PNG), MediaSource(data=b"GIF89a" + b"\x00" * 10))
    assert isinstance(error, IngestError)
    assert "image could not be decoded" in str(error)


def test_second_output_being_empty_removes_the_first(storage: LocalStorage) -> None:
    error = _refused(storage, MediaSource(data=PNG), MediaSource(data=b""))
    assert str(error) == "output 1 is empty"


def test_http_404_is_a_permanent_provider_error(storage: LocalStorage, http_base: str) -> None:
    error = _refused(storage, MediaSource(url=f"{http_base}/gone.png?sig=secret"))
    assert isinstance(error, ProviderError)
    assert error.retryable is False
    assert error.code == "download_failed"
    assert "failed with HTTP 404" in str(error)
    assert "secret" not in str(error)  # query strings (signatures) stay out of messages


def test_http_503_is_a_retryable_provider_error(storage: LocalStorage, http_base: str) -> None:
    error = _refused(storage, MediaSource(url=f"{http_base}/busy"))
    assert isinstance(error, ProviderError)
    assert error.retryable is True
    assert error.code == "download_failed"
    assert "failed with HTTP 503" in str(error)


def test_second_output_download_failing_removes_the_first(storage: LocalStorage, http_base: str) -> None:
    first, second = MediaSource(url=f"{http_base}/picture.png"), MediaSource(url=f"{http_base}/busy")
    error = _refused(storage, first, second)
    assert isinstance(error, ProviderError)
    assert error.retryable is True


def test_an_ingest_spools_in_its_process_folder_and_leaves_nothing(storage: LocalStorage, tmp_path) -> None:
    spool = Spool(tmp_path / "spool", "worker-1")
    limits = Limits(max_bytes=LIMITS.max_bytes, deadline_s=30, spool=spool)
    seen: list[Path] = []
    original = storage.put_file

    def put_file(key, path, content_type, metadata=None):
        seen.append(path)
        original(key, path, content_type, metadata)

    storage.put_file = put_file  # type: ignore[method-assign]  # to see where the spool file was
    _ingest(storage, MediaSource(data=PNG), limits=limits)
    assert [path.parent for path in seen] == [spool.folder]
    assert list(spool.folder.iterdir()) == []
    spool.close()
    assert list((tmp_path / "spool").iterdir()) == []
