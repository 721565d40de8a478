"""Both storage backends through one suite: the local folder (served over HTTP) and S3 in moto's
server mode over real HTTP. S3-only behaviour (multipart, presigning, CORS, lifecycle) follows."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mediagen.config import Settings
from mediagen.db.tables import utcnow
from mediagen.errors import IngestError, MediagenError
from mediagen.jobs import actions, queries
from mediagen.jobs.schema import JobOut
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.media.ingest import Limits, ingest_outputs
from mediagen.media.spool import Spool
from mediagen.providers.base import MediaSource
from mediagen.storage import make_storage
from mediagen.studio import Studio
from mediagen.worker.sweep import tick

from ..support.s3_server import AWS_ENV, client, moto_server, new_bucket
from ..support.servers import free_port

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def folder_server(tmp_path: Path) -> Iterator[str]:
    """Serves the local media folder over HTTP, as the app's /cdn mount does."""
    media = tmp_path / "data" / "media"
    media.mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(params=["local", "s3"])
def backend_settings(request, tmp_path, aws) -> Settings:
    if request.param == "local":
        base = request.getfixturevalue("folder_server")
        return Settings(data_dir=tmp_path / "data", public_base_url=base, poll_interval_s=0.05)
    endpoint = request.getfixturevalue("s3_endpoint")
    return Settings(
        data_dir=tmp_path / "data",
        storage="s3",
        s3_bucket=new_bucket(endpoint),
        s3_endpoint_url=endpoint,
        s3_prefix="studio",
        poll_interval_s=0.05,
    )


class Exploding(io.RawIOBase):
    """A file that fails part-way through being read, like a disk or a download giving out."""

    def __init__(self, size: int, fail_after: int) -> None:
        self.size, self.fail_after, self.sent = size, fail_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.sent >= self.fail_after:
            raise OSError("the source gave out")
        n = min(len(buffer), self.size - self.sent)
        buffer[:n] = b"x" * n
        self.sent += n
        return n


def test_put_open_url_delete(backend_settings) -> None:
    storage = make_storage(backend_settings)
    payload = os.urandom(100_000)
    storage.put("image/2026/01/01/a-0.png", io.BytesIO(payload), "image/png", {"mediagen-job": "a"})
    assert storage.exists("image/2026/01/01/a-0.png")
    with storage.open("image/2026/01/01/a-0.png") as handle:
        assert handle.read() == payload
    answer = httpx.get(storage.url("image/2026/01/01/a-0.png"), timeout=10)
    assert answer.status_code == 200 and answer.content == payload
    storage.delete("image/2026/01/01/a-0.png")
    storage.delete("image/2026/01/01/a-0.png")  # deleting twice is fine
    assert not storage.exists("image/2026/01/01/a-0.png")
    with pytest.raises(ValueError):
        storage.put("../escape", io.BytesIO(b"x"), "text/plain")


def test_a_failed_upload_leaves_nothing(backend_settings) -> None:
    storage = make_storage(backend_settings)
    with pytest.raises((OSError, MediagenError)):
        storage.put("video/big.mp4", Exploding(30 * MiB, fail_after=12 * MiB), "video/mp4")  # type: ignore[arg-type]
    assert not storage.exists("video/big.mp4")
    if backend_settings.storage == "s3":
        pending = client(backend_settings.s3_endpoint_url).list_multipart_uploads(Bucket=backend_settings.s3_bucket)
        assert pending.get("Uploads", []) == []
    else:
        assert [p for p in backend_settings.media_dir.rglob("*") if p.is_file()] == []


def _stored_nothing(settings: Settings) -> None:
    if settings.storage == "s3":
        s3 = client(settings.s3_endpoint_url)
        assert s3.list_objects_v2(Bucket=settings.s3_bucket).get("Contents", []) == []
        assert s3.list_multipart_uploads(Bucket=settings.s3_bucket).get("Uploads", []) == []
    else:
        assert [p for p in settings.media_dir.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("tail", "limit", "phrase"),
    [
        (b"\0" * (20 * MiB), 12 * MiB, "larger than the 12,582,912-byte limit"),
        (os.urandom(20 * MiB), 64 * MiB, "video could not be decoded|video has no video stream"),
    ],
    ids=["over-the-size-limit-mid-upload", "mp4-signature-then-garbage"],
)
def test_ingest_streaming_into_storage_keeps_nothing_on_failure(
    backend_settings, small_mp4, tail, limit, phrase
) -> None:
    """The upload starts while the download runs: a source that breaks the size limit part-way, or
    turns out undecodable once whole, leaves no object, no pending multipart upload, no file."""
    storage = make_storage(backend_settings)
    spool = Spool(backend_settings.spool_dir, "test")
    with pytest.raises(IngestError, match=phrase):
        ingest_outputs(
            storage,
            [MediaSource(data=small_mp4[:64] + tail)],
            kind=JobKind.VIDEO,
            job_id="j-broken",
            created_at=utcnow(),
            limits=Limits(max_bytes=limit, deadline_s=60, spool=spool),
        )
    _stored_nothing(backend_settings)
    assert list(spool.folder.iterdir()) == []  # the download's temp file is gone too


def test_images_and_videos_end_to_end(backend_settings) -> None:
    studio = Studio.open(backend_settings)
    try:
        image = actions.generate_image(studio, "a lighthouse", params={"size": "256x256"})
        video = actions.submit_video(studio, "waves", params={"duration": 1, "size": "128x72"})
        deadline = time.monotonic() + 60
        while not JobStatus(video.status).is_final and time.monotonic() < deadline:
            tick(studio)
            time.sleep(0.05)
            video = queries.get_job(studio, video.id)
        assert image.status == video.status == JobStatus.SUCCEEDED
        for job in (image, video):
            data = JobOut.of(job, studio.storage).data()
            for asset, row in zip(data["assets"], job.assets, strict=True):
                body = httpx.get(asset["url"], timeout=10)
                assert body.status_code == 200 and len(body.content) == asset["bytes"]
                assert httpx.get(asset["thumbnail_url"], timeout=10).content[8:12] == b"WEBP"
                assert row.storage == backend_settings.storage
        assert list(studio.spool.folder.iterdir()) == []  # downloads spooled there, then removed
    finally:
        studio.close()
    assert list(backend_settings.spool_dir.iterdir()) == []  # and the process's folder went with it


# -- S3 only -------------------------------------------------------------------------------------
@pytest.fixture
def s3_settings(tmp_path, s3_endpoint, aws) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", storage="s3", s3_bucket=new_bucket(s3_endpoint), s3_endpoint_url=s3_endpoint
    )


@pytest.mark.parametrize("method", ["put", "put_file"])
def test_large_files_go_multipart_with_checksums_and_headers(s3_settings, tmp_path, method) -> None:
    storage = make_storage(s3_settings)
    big, small = os.urandom(20 * MiB), b"small"
    metadata = {"mediagen-job": "j1", "note": "héllo"}
    if method == "put":
        storage.put("video/big.mp4", io.BytesIO(big), "video/mp4", metadata)
        storage.put("image/small.png", io.BytesIO(small), "image/png")
    else:
        (tmp_path / "big").write_bytes(big)
        (tmp_path / "small").write_bytes(small)
        storage.put_file("video/big.mp4", tmp_path / "big", "video/mp4", metadata)
        storage.put_file("image/small.png", tmp_path / "small", "image/png")
    s3 = client(s3_settings.s3_endpoint_url)
    assert s3.get_object(Bucket=s3_settings.s3_bucket, Key="video/big.mp4")["Body"].read() == big
    big = s3.head_object(Bucket=s3_settings.s3_bucket, Key="video/big.mp4", PartNumber=1)
    assert big["PartsCount"] == 3  # 8 + 8 + 4 MiB
    head = s3.head_object(Bucket=s3_settings.s3_bucket, Key="video/big.mp4", ChecksumMode="ENABLED")
    assert head["ContentType"] == "video/mp4" and head["CacheControl"].startswith("public")
    assert head["Metadata"] == {"mediagen-job": "j1"}  # non-ASCII metadata is dropped, never sent
    assert "ChecksumCRC32" in head
    small = s3.head_object(Bucket=s3_settings.s3_bucket, Key="image/small.png", PartNumber=1)
    assert small.get("PartsCount", 1) == 1


def test_cdn_urls_and_presigned_urls(s3_settings, s3_endpoint, tmp_path) -> None:
    presigned = make_storage(s3_settings)
    presigned.put("a.txt", io.BytesIO(b"hello"), "text/plain")
    url = presigned.url("a.txt")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    assert httpx.get(url, timeout=10).content == b"hello"

    # A CDN reads the bucket anonymously (a public-read policy here; origin access control in AWS).
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{s3_settings.s3_bucket}/*",
            }
        ],
    }
    client(s3_endpoint).put_bucket_policy(Bucket=s3_settings.s3_bucket, Policy=json.dumps(policy))
    cdn_base = f"{s3_endpoint}/{s3_settings.s3_bucket}"
    cdn = make_storage(s3_settings.model_copy(update={"public_base_url": cdn_base}))
    assert cdn.url("a.txt") == f"{cdn_base}/a.txt"
    assert httpx.get(cdn.url("a.txt"), timeout=10).content == b"hello"

    week = Settings(data_dir=tmp_path, storage="s3", s3_bucket="b", presign_ttl_s=10**7)
    assert week.presign_ttl == 7 * 24 * 3600


def test_cors_and_lifecycle_rules_are_ensured_keeping_others(s3_settings) -> None:
    s3 = client(s3_settings.s3_endpoint_url)
    bucket = s3_settings.s3_bucket
    theirs = {"ID": "other-app", "AllowedMethods": ["PUT"], "AllowedOrigins": ["https://other.example"]}
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [theirs]})
    their_rule = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [their_rule]})

    storage = make_storage(s3_settings.model_copy(update={"cors_origins": ["https://studio.example"]}))
    notes = storage.prepare()
    assert "1 other rule(s) kept" in notes[0] and "1 other rule(s) kept" in notes[1]
    cors = {rule.get("ID"): rule for rule in s3.get_bucket_cors(Bucket=bucket)["CORSRules"]}
    assert set(cors) == {"other-app", "mediagen-media-get"}
    assert sorted(cors["mediagen-media-get"]["AllowedMethods"]) == ["GET", "HEAD"]
    assert cors["mediagen-media-get"]["AllowedOrigins"] == ["https://studio.example"]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"expire-logs", "mediagen-abort-incomplete-uploads"}
    assert rules["mediagen-abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1

    again = storage.prepare()
    assert "already allows" in again[0] and "in place" in again[1]
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 2


def test_storage_settings_are_checked(tmp_path) -> None:
    with pytest.raises(ValueError, match="MEDIAGEN_S3_BUCKET"):
        Settings(data_dir=tmp_path, storage="s3")


def test_derived_formats_are_made_once_and_cached(backend_settings) -> None:
    import av
    from PIL import Image

    from mediagen.errors import InvalidInput
    from mediagen.media import derive, keys

    studio = Studio.open(backend_settings)
    try:
        image = actions.generate_image(studio, "a lighthouse", params={"size": "256x256"})
        video = actions.submit_video(studio, "waves", params={"duration": 1, "size": "128x72"})
        deadline = time.monotonic() + 60
        while not JobStatus(video.status).is_final and time.monotonic() < deadline:
            tick(studio)
            time.sleep(0.05)
            video = queries.get_job(studio, video.id)
        png, mp4 = image.assets[0], video.assets[0]

        assert derive.derive(studio.storage, png, "image", "png").key == png.key  # already PNG
        for fmt, pil_format in (("jpeg", "JPEG"), ("webp", "WEBP")):
            made = derive.derive(studio.storage, png, "image", fmt)
            with Image.open(io.BytesIO(derive.read_all(studio.storage, made.key))) as converted:
                assert converted.format == pil_format and converted.size == (256, 256)

        webm = derive.derive(studio.storage, mp4, "video", "webm")
        with av.open(io.BytesIO(derive.read_all(studio.storage, webm.key))) as container:
            assert container.streams.video[0].codec_context.name == "vp9"
            assert container.streams.video[0].codec_context.width == 128
        for fmt in ("gif", "webp"):
            preview = derive.derive(studio.storage, mp4, "video", fmt)
            with Image.open(io.BytesIO(derive.read_all(studio.storage, preview.key))) as animated:
                assert animated.n_frames > 1 and animated.width == 320
        assert derive.derive(studio.storage, mp4, "video", "mp4").key == mp4.key
        with pytest.raises(InvalidInput, match="allowed: png, jpeg, webp"):
            derive.derive(studio.storage, png, "image", "tiff")
        for key in keys.all_derived_keys(png.key, "image") + keys.all_derived_keys(mp4.key, "video"):
            assert studio.storage.exists(key), key  # each made once, now cached beside the original
    finally:
        studio.close()


def _s3_env(endpoint: str, bucket: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_ENV,
        "MEDIAGEN_STORAGE": "s3",
        "MEDIAGEN_S3_BUCKET": bucket,
        "MEDIAGEN_S3_ENDPOINT_URL": endpoint,
        "MEDIAGEN_DATA_DIR": str(data_dir),
        "MEDIAGEN_POLL_INTERVAL_S": "0.1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


@pytest.mark.e2e
def test_cli_on_s3_end_to_end(s3_endpoint, tmp_path) -> None:
    import subprocess
    import sys

    env = _s3_env(s3_endpoint, new_bucket(s3_endpoint), tmp_path / "data")
    for args in (
        ["image", "a fox", "--size", "256x256", "--n", "2"],
        ["video", "waves", "--duration", "1", "--size", "128x72", "--wait"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mediagen", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        job = json.loads(done.stdout)
        assert job["status"] == "succeeded"
        for asset in job["assets"]:
            assert "X-Amz-Signature=" in asset["url"]  # no CDN configured: presigned when shown
            body = httpx.get(asset["url"], timeout=10)
            assert body.status_code == 200 and len(body.content) == asset["bytes"]
    assert not (tmp_path / "data" / "media").exists() or not any((tmp_path / "data" / "media").rglob("*.*"))


def test_prepare_explains_what_it_could_not_do(s3_settings) -> None:
    """When bucket settings cannot be read or changed (here: the bucket is missing), startup still
    goes on, and the notes say what failed, which permission it needs and what to do by hand."""
    storage = make_storage(s3_settings.model_copy(update={"s3_bucket": "no-such-bucket-here"}))
    cors, lifecycle = storage.prepare()
    assert cors.startswith("could not set CORS on no-such-bucket-here (NoSuchBucket)")
    assert "s3:PutBucketCORS" in cors and "allow GET/HEAD from * by hand" in cors
    assert lifecycle.startswith("could not set the lifecycle rule on no-such-bucket-here (NoSuchBucket)")
    assert "s3:PutLifecycleConfiguration" in lifecycle


def test_delete_prefix_removes_one_jobs_objects_only(backend_settings) -> None:
    storage = make_storage(backend_settings)
    keys = ["video/2026/11/24/j1-0.mp4", "video/2026/11/24/j1-0.thumb.webp", "video/2026/11/24/j1-1.mp4"]
    kept = ["video/2026/11/24/j10-0.mp4", "video/2026/11/24/j2-0.mp4"]
    for key in keys + kept:
        storage.put(key, io.BytesIO(b"x"), "video/mp4")
    assert storage.delete_prefix("video/2026/11/24/j1-") == 3
    assert [k for k in keys + kept if storage.exists(k)] == kept
    assert storage.delete_prefix("video/2026/11/24/j1-") == 0


def test_delete_many_removes_in_bulk_and_missing_keys_are_no_failure(backend_settings) -> None:
    storage = make_storage(backend_settings)
    keys = ["image/2026/11/24/j1-0.png", "image/2026/11/24/j1-0.thumb.webp", "image/2026/11/24/j1-0.jpeg"]
    kept = ["image/2026/11/24/j2-0.png"]
    for key in keys + kept:
        storage.put(key, io.BytesIO(b"x"), "image/png")
    assert storage.delete_many([*keys, "image/2026/11/24/never-0.png"]) == {}
    assert [k for k in keys + kept if storage.exists(k)] == kept
    assert storage.delete_many(keys) == {}  # again: already gone is done
