"""Zip downloads of a collection, some jobs or a filtered gallery: streamed from the local storage
folder or S3 (moto's server over real HTTP), served by the app's own route over loopback."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import update
from starlette.applications import Starlette

from mediagen import server
from mediagen.api import links
from mediagen.api.answers import EXCEPTION_HANDLERS
from mediagen.api.routes import ROUTES
from mediagen.config import Settings
from mediagen.db.tables import Asset
from mediagen.errors import Conflict, InvalidInput, NotFound
from mediagen.jobs import actions
from mediagen.jobs.browse import JobFilters
from mediagen.library import collections, zips
from mediagen.studio import Studio

from ..support.servers import free_port

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

SMALL = {"size": "256x256"}


@pytest.fixture
def served(any_studio: Studio) -> Iterator[str]:
    """The app's routes (``/library/zip``) with its error answers, on a loopback port, over the
    studio under test; the base URL."""
    server.use(any_studio)
    app = Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS)
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{running.config.port}"
    running.should_exit = True
    thread.join(timeout=10)
    server.use(None)


def test_zip_of_a_collection_streams_the_stored_files(any_studio) -> None:
    studio = any_studio
    image = actions.generate_image(studio, "zip me", params={**SMALL, "n": 2})
    other = actions.generate_image(studio, "not in it", params=SMALL)
    picks = collections.create_collection(studio, "local", "picks")
    collections.add_to_collection(studio, "local", picks.id, [a.id for a in image.assets])

    items = zips.assets_to_zip(studio, owner="local", collection_id=picks.id)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zips.zip_stream(studio, items))))
    names = sorted(archive.namelist())
    assert names == sorted(zips.zip_name(asset, job) for asset, job in items) and len(names) == 2
    for asset, job in items:
        with studio.storage.open(asset.key) as stored:
            assert archive.read(zips.zip_name(asset, job)) == stored.read()
        assert archive.getinfo(zips.zip_name(asset, job)).compress_type == zipfile.ZIP_STORED
    by_jobs = zips.assets_to_zip(studio, owner="local", job_ids=[other.id, image.id])
    assert len(by_jobs) == 3
    by_filter = zips.assets_to_zip(studio, owner="local", filters=JobFilters(text="zip"))
    assert [(asset.id, job.id) for asset, job in by_filter] == [(a.id, image.id) for a in image.assets]
    with pytest.raises(NotFound):
        zips.assets_to_zip(studio, owner="someone else", collection_id=picks.id)
    with pytest.raises(InvalidInput, match="choose a collection or some jobs"):
        zips.assets_to_zip(studio, owner="local")


def test_a_zip_holds_at_most_so_many_files(studio, monkeypatch) -> None:
    monkeypatch.setattr(zips, "MAX_ZIP_FILES", 2)
    job = actions.generate_image(studio, "three", params={**SMALL, "n": 3})
    with pytest.raises(InvalidInput) as refused:
        zips.assets_to_zip(studio, owner="local", job_ids=[job.id])
    assert refused.value.field == "selection" and "more than 2 files" in str(refused.value)
    assert "at most 2 per zip" in str(refused.value)


def test_a_zip_whose_stored_files_are_lost_or_changed_is_refused_before_sending(any_studio, served) -> None:
    """Today's answer was a 200 with a Content-Length it never reached: a zip cut mid-stream. The
    files are checked first, and the answer names each one that is missing or not as recorded."""
    studio = any_studio
    damaged = actions.generate_image(studio, "lost one", params={**SMALL, "n": 2})
    changed = actions.generate_image(studio, "changed one", params=SMALL)
    intact = actions.generate_image(studio, "intact", params=SMALL)
    lost_key, changed_key = damaged.assets[1].key, changed.assets[0].key
    studio.storage.delete(lost_key)
    studio.storage.put(changed_key, io.BytesIO(b"short"), "image/png")
    picks = collections.create_collection(studio, "local", "picks")
    every_asset = [a.id for job in (damaged, changed, intact) for a in job.assets]
    collections.add_to_collection(studio, "local", picks.id, every_asset)

    with pytest.raises(Conflict) as refused:
        zips.zip_stream(studio, zips.assets_to_zip(studio, owner="local", collection_id=picks.id))
    assert refused.value.code == "files_missing"

    answer = httpx.get(served + links.zip_link(studio.settings, "local", collection_id=picks.id, name="picks"))
    assert answer.status_code == 409, answer.headers
    assert answer.headers["content-type"].startswith("text/plain")
    assert int(answer.headers["content-length"]) == len(answer.content)
    text = answer.text
    assert text.startswith("2 of the 4 files of this download are not in storage as recorded, so no zip was sent")
    assert f"job {damaged.id} file 1 ({lost_key}): missing" in text
    assert f"job {changed.id} file 0 ({changed_key}): 5 bytes stored, {changed.assets[0].bytes} recorded" in text
    assert str(damaged.assets[0].key) not in text and intact.id not in text  # only what is wrong is named
    assert "leave those jobs out of the download" in text

    whole = httpx.get(served + links.zip_link(studio.settings, "local", job_ids=(intact.id,), name="ok"))
    assert whole.status_code == 200 and int(whole.headers["content-length"]) == len(whole.content)
    assert zipfile.ZipFile(io.BytesIO(whole.content)).namelist() == [zips.zip_name(intact.assets[0], intact)]


@pytest.mark.parametrize(
    ("asked", "saved_as"),
    [
        ("trips/2024", "trips-2024.zip"),
        ('a\\b:c*d?e"f<g>h|i', "a-b-c-d-e-f-g-h-i.zip"),
        ("../../etc/passwd", "etc-passwd.zip"),
        ("line\nbreak\ttab", "line-break-tab.zip"),
        ("CON", "CON_.zip"),
        ("été 🌞", "été 🌞.zip"),
        ("../..", "mediagen.zip"),
        ("", "mediagen.zip"),
    ],
)
def test_the_zip_is_saved_under_a_safe_file_name(asked: str, saved_as: str) -> None:
    assert zips.download_name(asked) == saved_as


def test_the_zip_route_names_the_download_and_its_entries_safely(any_studio, served) -> None:
    """A collection named with `/` (the gallery offers its name) must not become a path, on disk
    or inside the zip; an asset key without a usable extension takes one from the content type."""
    studio = any_studio
    job = actions.generate_image(studio, "odd key", params=SMALL)
    asset = job.assets[0]
    odd_key = "image/odd/no extension"
    with studio.storage.open(asset.key) as stored:
        studio.storage.put(odd_key, io.BytesIO(stored.read()), asset.content_type)
    with studio.db.write() as session:
        session.execute(update(Asset).where(Asset.id == asset.id).values(key=odd_key))

    answer = httpx.get(served + links.zip_link(studio.settings, "local", job_ids=(job.id,), name="trips/2024"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == "attachment; filename*=UTF-8''trips-2024.zip"
    [entry] = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert entry == f"{job.created_at:%Y-%m-%d}-image-{job.id}-0.png"


def test_the_signed_link_carries_a_safe_name_too(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:9/cdn")
    link = links.zip_link(settings, "local", job_ids=("j",), name="trips/2024")
    assert link.startswith("/library/zip?name=trips-2024&t=")


@pytest.mark.e2e
def test_the_zip_route_streams_what_a_signed_link_names(tmp_path) -> None:
    from ..support.servers import app_server

    key = "k" * 40
    with app_server(tmp_path, link_secret=key) as server:
        settings = Settings(data_dir=server.data_dir, public_base_url=server.base + "/cdn", link_secret=key)
        studio = Studio.open(settings)
        try:
            job = actions.generate_image(studio, "over http", params={**SMALL, "n": 2})
            picks = collections.create_collection(studio, "local", "picks")
            collections.add_to_collection(studio, "local", picks.id, [a.id for a in job.assets])

            def fetch(link: str) -> httpx.Response:
                return httpx.get(server.base + link, timeout=30)

            answer = fetch(links.zip_link(settings, "local", collection_id=picks.id, name="picks"))
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/zip"
            assert answer.headers["content-disposition"] == "attachment; filename*=UTF-8''picks.zip"
            assert int(answer.headers["content-length"]) == len(answer.content)
            archive = zipfile.ZipFile(io.BytesIO(answer.content))
            assert sorted(archive.namelist()) == sorted(zips.zip_name(a, job) for a in job.assets)
            by_jobs = fetch(links.zip_link(settings, "local", job_ids=(job.id,), name="sel"))
            assert len(zipfile.ZipFile(io.BytesIO(by_jobs.content)).namelist()) == 2
            by_filter = fetch(links.zip_link(settings, "local", filters=JobFilters(text="http"), name="all"))
            for asset in job.assets:
                with studio.storage.open(asset.key) as stored:
                    assert (
                        zipfile.ZipFile(io.BytesIO(by_filter.content)).read(zips.zip_name(asset, job)) == stored.read()
                    )
            nothing = fetch(links.zip_link(settings, "local", filters=JobFilters(text="nowhere"), name="none"))
            assert nothing.status_code == 404 and "holds no files" in nothing.text

            # Someone else's collection, a link not signed with this key, a tampered one, none.
            theirs = fetch(links.zip_link(settings, "bo@example.com", collection_id=picks.id, name="x"))
            assert theirs.status_code == 404 and f"no collection with id {picks.id}" in theirs.text
            forged = links.zip_link(
                settings.model_copy(update={"link_secret": None}), "local", job_ids=(job.id,), name="x"
            )
            assert fetch(forged).status_code == 403
            tampered = fetch(links.zip_link(settings, "local", job_ids=(job.id,), name="x")[:-2] + "xx")
            assert tampered.status_code == 403 and "not valid" in tampered.text
            assert httpx.get(f"{server.base}/library/zip", params={"collection": picks.id}).status_code == 403
        finally:
            studio.close()
