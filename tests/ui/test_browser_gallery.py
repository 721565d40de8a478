"""What a person sees in the gallery, in Debian's Chromium against `streamlit run app.py`: cards
that line up, a date placeholder that fits, a delete question whose answers sit together, and a
shared link whose refused values show as text (no link, no third-party image fetched)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from mediagen.config import Settings
from mediagen.jobs import actions
from mediagen.studio import Studio

from ..support.servers import AppServer, app_server
from .test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e
THUMBS_LOADED = """() => { const t = [...document.querySelectorAll("img[src*='.thumb.']")];
    return t.length >= 2 && t.every(i => i.complete && i.naturalWidth > 0) }"""
# The date range's fields ("yyyy-mm-dd – yyyy-mm-dd") sit in a scroller: what it needs, what it has.
FIELDS_WIDTH = "(fields) => [fields.scrollWidth, fields.clientWidth]"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """A server (its worker off, so a queued job stays queued) with cards of every look: images of
    two shapes, a queued video with its progress bar, a canceled one with its reason."""
    with app_server(tmp_path_factory.mktemp("gallery"), worker_in_app="false") as server:
        studio = Studio.open(Settings(data_dir=server.data_dir))
        try:
            made = {
                "wide": actions.generate_image(studio, "a wide harbour", params={"size": "512x256"}).id,
                "square": actions.generate_image(
                    studio, "a square lighthouse with a much longer prompt " * 2, params={"size": "256x256"}
                ).id,
                "queued": actions.submit_video(studio, "a clip still waiting").id,
                "canceled": actions.cancel_job(studio, actions.submit_video(studio, "a stopped clip").id).id,
            }
        finally:
            studio.close()
        yield server, made


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    tab.set_default_timeout(60_000)
    yield tab
    tab.close()


def _box(locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _settled_boxes(page, *locators) -> list[dict[str, float]]:
    """The locators' boxes once two readings 200 ms apart agree (within 10 s)."""
    boxes = [_box(locator) for locator in locators]
    for _ in range(50):
        page.wait_for_timeout(200)
        again = [_box(locator) for locator in locators]
        if again == boxes:
            break
        boxes = again
    return boxes


def test_cards_line_up_and_the_date_placeholder_fits(gallery, page) -> None:
    server, made = gallery
    page.goto(server.base + "/gallery")
    page.wait_for_function(THUMBS_LOADED)
    cards = [_box(page.locator(f".st-key-card-{job_id}")) for job_id in made.values()]
    assert len({round(c["y"]) for c in cards}) == 1, cards  # one row of four
    assert max(c["height"] for c in cards) - min(c["height"] for c in cards) <= 1, cards
    details = [_box(page.locator(f".st-key-open-{job_id}")) for job_id in made.values()]
    assert max(d["y"] for d in details) - min(d["y"] for d in details) <= 1, details
    needed, room = page.locator(".st-key-g-dates [data-testid='stDateInputFieldsScroller']").evaluate(FIELDS_WIDTH)
    assert needed <= room, f"the empty date range needs {needed}px, its box has {room}px"


def _asks_then_keeps(page, key: str) -> None:
    """Delete (the button keyed ``key``) asks; the question stands above its two answers, side by
    side under it; Keep closes it."""
    page.locator(f".st-key-{key} button").click()
    question = page.get_by_text("This cannot be undone")
    question.wait_for()
    confirm, keep = page.locator(f".st-key-{key}-yes button"), page.locator(f".st-key-{key}-no button")
    # Measured, and answered, as a person sees it: once the run that opened the question has ended
    # and the popover stopped moving (a click or a measurement during that run, seconds long on a
    # loaded machine, can be overtaken by it).
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for()
    yes_box, keep_box, asked = _settled_boxes(page, confirm, keep, question)
    assert abs(yes_box["y"] - keep_box["y"]) <= 1 and yes_box["height"] == keep_box["height"]
    assert keep_box["x"] > yes_box["x"] + yes_box["width"]  # side by side
    assert asked["y"] + asked["height"] <= yes_box["y"]  # the question above its answers
    assert yes_box["x"] >= asked["x"] - 40  # under it, not out in the row
    keep.click()
    question.wait_for(state="hidden")


def test_the_delete_question_and_its_answers_sit_together(gallery, page) -> None:
    """In the selection's row of buttons and in the details dialog alike."""
    server, made = gallery
    page.goto(server.base + "/gallery")
    page.get_by_text("job(s) match").wait_for()
    page.locator(".st-key-g-selecting label").click()
    page.locator(f".st-key-sel-{made['wide']} label").click()
    page.get_by_text("1 selected").wait_for()
    _asks_then_keeps(page, "bulk-delete")
    page.locator(f".st-key-open-{made['canceled']} button").click()
    page.get_by_role("dialog").get_by_text("Job details").wait_for()
    _asks_then_keeps(page, f"dialog-delete-{made['canceled']}")
    assert page.get_by_role("dialog").count() == 1  # still open, the job kept
    assert page.get_by_text("a wide harbour").count()


HOSTILE_LINK = {
    "size": "[text](http://elsewhere.example/x)",
    "collection": "![t](http://elsewhere.example/x.png)",
    "kind": "www.elsewhere.example",
    "status": "someone@elsewhere.example",
    "model": ":material/home: :streamlit: :red[red] <img src=http://elsewhere.example/y.png>",
}


def test_a_shared_links_refused_values_show_as_text(gallery, page) -> None:
    """A fresh tab opens a crafted gallery link: every refused value is named as the text it is,
    nothing links anywhere or loads from elsewhere."""
    server, _ = gallery
    asked_elsewhere: list[str] = []
    page.on("request", lambda r: "elsewhere" in (urlsplit(r.url).hostname or "") and asked_elsewhere.append(r.url))
    page.goto(f"{server.base}/gallery?{urlencode(HOSTILE_LINK)}")
    page.get_by_text("job(s) match").wait_for()
    main = page.get_by_test_id("stMain")
    for name, value in HOSTILE_LINK.items():
        note = main.get_by_text(f"ignored {name}=", exact=False)
        note.wait_for()
        shown = note.inner_text().replace("\u2060", "")
        assert repr(value).strip("'") in shown, (name, shown)
    assert main.locator("a[href*='elsewhere']:not([href^='mailto:'])").count() == 0  # an address may mail
    assert main.locator("img[src*='elsewhere'], img[alt='Streamlit logo']").count() == 0
    notes = main.locator("[data-testid='stCaptionContainer']")
    assert notes.locator("span[role='img'], [data-testid='stIconMaterial']").count() == 0  # no icons
    assert asked_elsewhere == []
