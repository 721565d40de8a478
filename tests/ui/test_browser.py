"""What a person sees: Debian's Chromium, driven by Playwright, against `streamlit run app.py`.

Screenshots go to a temp dir, or to MEDIAGEN_SCREENSHOT_DIR (`make screenshots` sets it to
docs/screenshots).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from ..support.servers import AppServer, app_server

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"
IMAGE_LOADED = """() => [...document.querySelectorAll("img[src*='/cdn/image/']")]
    .some(i => i.complete && i.naturalWidth > 0 && !i.src.endsWith('.thumb.webp'))"""
VIDEO_READY = "() => [...document.querySelectorAll('video')].some(v => v.readyState >= 2)"
THUMBS_LOADED = """() => { const t = [...document.querySelectorAll("img[src$='.thumb.webp']")];
    return t.length >= 2 && t.every(i => i.complete && i.naturalWidth > 0) }"""

# Charts and tables draw into canvases after the page's text is there.
DRAWN = """(tables) => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .filter(t => t.offsetParent !== null && t.querySelector("canvas")).length >= tables
    && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter(c => c.offsetParent !== null).every(c => c.querySelector("canvas, svg"))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    """One Playwright driver per module: the sync API refuses a second one while the first runs."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(server: AppServer, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.goto(server.base + "/")
    yield tab
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("MEDIAGEN_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open(page, name: str) -> None:
    page.get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name).wait_for()


def test_image_studio_shows_the_stored_image(page, shots) -> None:
    page.get_by_role("heading", name="Image studio").wait_for()
    page.get_by_label("Prompt").fill("a lighthouse on a cliff at dusk")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(IMAGE_LOADED)
    page.get_by_text("Succeeded").first.wait_for()
    page.screenshot(path=shots / "image-studio.png")


def test_video_studio_runs_a_job_to_a_playable_video(page, shots) -> None:
    _open(page, "Video studio")
    page.get_by_label("Prompt").fill("slow waves rolling onto a beach at sunset")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("slow waves rolling onto a beach at sunset").first.wait_for()
    page.wait_for_function(VIDEO_READY, timeout=120_000)
    page.screenshot(path=shots / "video-studio.png")


def test_prompts_show_literally(page) -> None:
    _open(page, "Video studio")
    page.get_by_label("Prompt").fill(XSS)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(XSS).first.wait_for()
    assert page.locator("img[src='x']").count() == 0
    page.get_by_role("button", name="Cancel").first.click()
    page.get_by_text("Canceled").first.wait_for()


def test_gallery_shows_thumbnails_and_opens_details(page, shots) -> None:
    _open(page, "Gallery")
    page.wait_for_function(THUMBS_LOADED)
    for label in ("Kind", "Created between", "Starred only"):  # every filter drawn, not its placeholder
        page.get_by_text(label, exact=True).wait_for()
    page.screenshot(path=shots / "gallery.png")
    page.get_by_role("button", name="Details", exact=True).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Job details").wait_for()
    dialog.get_by_text("Prompt").first.wait_for()
    page.screenshot(path=shots / "gallery-details.png")
    page.keyboard.press("Escape")


def test_task_history_downloads_the_rows_as_csv(page, shots) -> None:
    _open(page, "Task history")
    page.get_by_text("Jobs per day").wait_for()
    page.wait_for_function(DRAWN, arg=1)
    page.screenshot(path=shots / "task-history.png", full_page=True)
    page.get_by_role("tab", name="Usage & cost").click()
    page.get_by_text("Per user").wait_for()
    page.wait_for_function(DRAWN, arg=2)
    page.screenshot(path=shots / "task-history-usage.png")
    page.get_by_role("tab", name="Jobs").click()
    page.get_by_role("button", name="Download CSV").wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert len(rows) == 3
    assert {r["kind"] for r in rows} == {"image", "video"}
    assert {r["status"] for r in rows} == {"succeeded", "canceled"}


def test_system_self_check_passes_against_the_running_server(page, shots) -> None:
    _open(page, "System")
    page.get_by_role("button", name="Run storage self-check").click()
    page.get_by_text("URL answers: HTTP 200").wait_for()
    page.get_by_text("delete: probe removed").wait_for()
    page.screenshot(path=shots / "system.png", full_page=True)


def test_studio_on_s3_shows_images_from_the_bucket(tmp_path, monkeypatch, browser) -> None:
    """MEDIAGEN_STORAGE=s3 against moto's server: the page's <img> loads a presigned bucket URL, and
    startup put our CORS rule on the bucket."""
    from ..support.s3_server import AWS_ENV, client, moto_server, new_bucket

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with moto_server() as endpoint:
        bucket = new_bucket(endpoint)
        with app_server(tmp_path, storage="s3", s3_bucket=bucket, s3_endpoint_url=endpoint) as server:
            rules = client(endpoint).get_bucket_cors(Bucket=bucket)["CORSRules"]
            assert any(rule.get("ID") == "mediagen-media-get" for rule in rules)
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(server.base + "/")
            page.get_by_label("Prompt").fill("a lighthouse, stored in S3")
            page.get_by_role("button", name="Generate").click()
            loaded = f"""() => [...document.querySelectorAll("img")].some(i => i.src.startsWith("{endpoint}/{bucket}/")
                && i.src.includes("X-Amz-Signature") && i.complete && i.naturalWidth > 0)"""
            page.wait_for_function(loaded)
            context.close()


def test_a_shared_link_opened_first_on_a_fresh_server_gets_the_whole_studio(tmp_path, browser) -> None:
    """The first visitor of a new server process arriving by a gallery link (not the home page)
    gets the navigation and the linked view, not the page file run on its own."""
    from playwright.sync_api import expect

    with app_server(tmp_path) as fresh:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            page.goto(f"{fresh.base}/gallery?q=harbour&kind=video")
            page.get_by_text("job(s) match").wait_for()
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_text("Task history").wait_for()
            # The widget can be drawn a moment before its seeded value arrives: wait for the value.
            expect(page.get_by_label("Search prompts")).to_have_value("harbour")
            assert not sidebar.get_by_text("task history", exact=True).count()  # no pages-directory names
        finally:
            page.close()


def _jobs_once_settled(data_dir: Path, kind: str, at_least: int) -> int:
    """How many ``kind`` jobs exist once the gesture's runs are over: at least ``at_least``,
    images finished (a second run would have made its job meanwhile), and a quiet moment after."""
    deadline = time.monotonic() + 60
    while True:
        with closing(sqlite3.connect(data_dir / "mediagen.db")) as db:
            rows = db.execute("SELECT status FROM jobs WHERE kind = ?", (kind,)).fetchall()
        busy = kind == "image" and any(status in ("queued", "running") for (status,) in rows)
        if len(rows) >= at_least and not busy:
            break
        assert time.monotonic() < deadline, f"{len(rows)} {kind} job(s), still waiting for {at_least}"
        time.sleep(0.2)
    time.sleep(2.5)
    with closing(sqlite3.connect(data_dir / "mediagen.db")) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE kind = ?", (kind,)).fetchone()[0]


def _press_twice(page, button, *, gap_ms: int) -> None:
    """What a person's hand does: two presses on the spot where the button is, ``gap_ms`` apart
    (0: one double click). The second lands whatever the button shows by then."""
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if gap_ms == 0:
        page.mouse.dblclick(x, y)
    else:
        page.mouse.click(x, y)
        page.wait_for_timeout(gap_ms)
        page.mouse.click(x, y)


@pytest.fixture(scope="module")
def fresh_page(tmp_path_factory, browser):
    """A tab on a server of its own: these tests count the jobs in its database."""
    with app_server(tmp_path_factory.mktemp("fresh")) as fresh:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(fresh.base + "/")
        page.get_by_role("heading", name="Image studio").wait_for()
        yield page, fresh
        page.close()


def test_a_pasted_prompt_over_the_limit_is_kept_and_measured(fresh_page) -> None:
    """Pasting more than the model takes keeps every character in the field, and Generate says
    how long the prompt is and what the limit is (the browser used to refuse the paste silently)."""
    from playwright.sync_api import expect

    page, fresh = fresh_page
    long_prompt = ", ".join(["a lighthouse on a cliff at dusk"] * 150)  # 4,948 characters; the model takes 4,000
    prompt = page.get_by_label("Prompt")
    prompt.click()
    page.keyboard.insert_text(long_prompt)  # what a paste delivers
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("4,948 characters long").wait_for(timeout=20_000)
    expect(page.get_by_text("at most 4,000").first).to_be_visible()
    expect(prompt).to_have_value(long_prompt)
    assert _jobs_once_settled(fresh.data_dir, "image", 0) == 0


def test_a_double_click_on_generate_makes_one_job(fresh_page) -> None:
    """A double click, or two quick clicks, on Generate makes one job in each studio (a paid
    provider would bill twice otherwise), however fast the first run finished."""
    from playwright.sync_api import expect

    page, fresh = fresh_page
    made = {"image": 0, "video": 0}
    for kind, gap_ms in [("image", 400), ("image", 0), ("video", 400), ("video", 0)]:
        if kind == "video" and not made["video"]:
            _open(page, "Video studio")
        text = f"{kind} pressed twice, {gap_ms} ms apart"
        prompt = page.get_by_label("Prompt")
        prompt.fill(text)
        prompt.press("Control+Enter")  # commit the text, as leaving the field does
        page.wait_for_timeout(500)
        generate = page.get_by_role("button", name="Generate")
        _press_twice(page, generate, gap_ms=gap_ms)
        made[kind] += 1
        assert _jobs_once_settled(fresh.data_dir, kind, made[kind]) == made[kind], (kind, gap_ms)
        page.get_by_test_id("stText").get_by_text(text, exact=True).wait_for()  # the result, headed by its request
        expect(generate).to_be_enabled()  # and the form is ready for the next one
