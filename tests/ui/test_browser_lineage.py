"""A lineage as a person makes and follows it, in Debian's Chromium against `streamlit run app.py`:
an image on the local provider, "Make a video from this", and the two jobs' details linking to
each other. The screenshot goes to MEDIAGEN_SCREENSHOT_DIR (`make screenshots`) as lineage.png.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest

from ..support.servers import app_server
from .test_browser import IMAGE_LOADED, VIDEO_READY, browser, shots  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e


def _job_ids(data_dir, kind: str) -> list[str]:
    with closing(sqlite3.connect(data_dir / "mediagen.db")) as db:
        return [row[0] for row in db.execute("SELECT id FROM jobs WHERE kind = ? ORDER BY created_at", (kind,))]


def test_a_video_made_from_an_image_links_back_and_the_image_leads_to_it(tmp_path, browser, shots) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with app_server(tmp_path) as server:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(server.base + "/")
            page.get_by_role("heading", name="Image studio").wait_for()
            page.get_by_label("Prompt").fill("a red lighthouse on a cliff at dusk")
            page.get_by_role("button", name="Generate").click()
            page.wait_for_function(IMAGE_LOADED)
            [image_id] = _job_ids(server.data_dir, "image")

            page.get_by_role("link", name="Make a video from this").first.click()
            page.get_by_role("heading", name="Video studio").wait_for()
            page.get_by_text(f"A video that starts on this image, from job {image_id}").wait_for()
            expect(page.get_by_label("Prompt")).to_have_value("a red lighthouse on a cliff at dusk")
            assert f"from={image_id}" in page.url and "as=video" in page.url  # shareable, survives a reload
            page.screenshot(path=shots / "image-to-video.png")
            page.get_by_role("button", name="Generate").click()
            page.wait_for_function(VIDEO_READY, timeout=120_000)
            [video_id] = _job_ids(server.data_dir, "video")

            page.get_by_test_id("stSidebar").get_by_role("link", name="Gallery").click()
            page.get_by_role("heading", name="Gallery").wait_for()
            page.locator(f".st-key-open-{video_id} button").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Started from").wait_for()
            made_from = dialog.get_by_role("link", name=re.compile(f"A video made from image job {image_id}"))
            made_from.wait_for()
            expect(page).to_have_url(re.compile(f"job={video_id}"))  # the open details, in a URL to share
            made_from.scroll_into_view_if_needed()
            page.screenshot(path=shots / "lineage.png")

            made_from.click()
            led_to = page.get_by_role("dialog").get_by_role("link", name=re.compile(f"Video: video job {video_id}"))
            led_to.wait_for()
            expect(page).to_have_url(re.compile(f"job={image_id}"))
        finally:
            page.close()
