"""What a person sees comparing models, in Debian's Chromium against `streamlit run app.py`: three
columns on three providers (the local one, OpenAI and Replicate, both spoken by the loopback
fake), Replicate's refusing the request; the two others show their images, the third its error in
place; the winner is starred; the gallery shows the group as one card, which opens it again with
its columns side by side.

Screenshots (compare.png, comparison-in-gallery.png) go to MEDIAGEN_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from mediagen.config import Settings
from mediagen.jobs import actions, compare
from mediagen.studio import Studio

from ..support.fake_providers import FakeProviders, Reply
from ..support.servers import AppServer, app_server
from .test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e
REFUSAL = "The prompt was flagged by this model's safety checker"
PRICES = {"dall-e-2": {"per_image": {"256x256": 0.016, "*": 0.02}}}
COLUMN_MODELS = ("Local procedural image (offline)", "OpenAI dall-e-2", "fake/image-model on Replicate")
THUMBS_LOADED = """() => { const t = [...document.querySelectorAll("img[src*='.thumb.']")];
    return t.length >= 4 && t.every(i => i.complete && i.naturalWidth > 0) }"""
RESULTS_LOADED = """(id) => [0, 1].every(n => {
    const img = document.querySelector(`.st-key-cmp-result-${id}-${n} img`);
    return img && img.complete && img.naturalWidth > 0 })"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake: FakeProviders) -> Iterator[AppServer]:
    providers = {
        "OPENAI_API_KEY": fake.OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base,
        "REPLICATE_API_TOKEN": fake.REPLICATE_TOKEN,
        "REPLICATE_BASE_URL": fake.replicate_base,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in providers.items():
            patch.setenv(name, value)
        with app_server(
            tmp_path_factory.mktemp("compare"),
            replicate_image_models='["fake/image-model"]',
            outbound_allow='["127.0.0.1/32"]',  # the fake stands in for the providers' public hosts
            prices=json.dumps(PRICES),
        ) as running:
            _earlier_work(running)
            yield running


def _earlier_work(server: AppServer) -> None:
    """What the gallery holds besides: a lone image, and a comparison without a winner yet."""
    studio = Studio.open(Settings(data_dir=server.data_dir))
    try:
        actions.generate_image(studio, "a lighthouse on a cliff at dusk", params={"size": "256x256"})
        seeds = [compare.Column("local-image", {"seed": seed}) for seed in (3, 11)]
        earlier = compare.start(studio, "a harbour at night, two seeds", seeds, shared_params={"size": "256x256"})
        assert compare.wait(studio, earlier.id, 60).all_succeeded
        actions.generate_image(studio, "a paper boat on a pond", params={"size": "512x256"})
    finally:
        studio.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1440, "height": 1100})
    tab.set_default_timeout(60_000)
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("MEDIAGEN_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _choose_model(page, column: int, label: str) -> None:
    picker = page.locator(f".st-key-cmp-image-{column}-model")
    picker.click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(picker.get_by_role("combobox")).to_have_value(label)


def _box(locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _side_by_side(page, comparison_id: str) -> None:
    boxes = [_box(page.locator(f".st-key-cmp-result-{comparison_id}-{n}")) for n in range(3)]
    assert max(b["y"] for b in boxes) - min(b["y"] for b in boxes) <= 1, boxes  # one row
    for left, right in itertools.pairwise(boxes):
        assert right["x"] >= left["x"] + left["width"], boxes  # left to right, none overlapping


def test_three_models_one_failing_then_the_group_in_the_gallery(server, fake, page, shots) -> None:
    fake.script(
        "replicate.create",
        Reply(422, json={"title": "Invalid input", "detail": REFUSAL, "status": 422}),
    )
    page.goto(server.base + "/compare")
    page.get_by_role("heading", name="Compare").wait_for()
    page.get_by_label("Prompt").fill("a red fox in fresh snow, morning light")
    page.get_by_label("Size (all columns)", exact=True).fill("256x256")
    page.get_by_label("Seed (all columns)", exact=True).fill("7")
    for column, label in enumerate(COLUMN_MODELS):
        _choose_model(page, column, label)
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare?comparison=*")
    comparison_id = parse_qs(urlsplit(page.url).query)["comparison"][0]

    page.wait_for_function(RESULTS_LOADED, arg=comparison_id, timeout=120_000)
    failing = page.locator(f".st-key-cmp-result-{comparison_id}-2")
    failing.get_by_text(REFUSAL).wait_for()
    failing.get_by_text("Failed").wait_for()
    assert failing.locator("img").count() == 0
    openai = page.locator(f".st-key-cmp-result-{comparison_id}-1")
    openai.get_by_text("est. $0.016").wait_for()
    openai.get_by_text("skipped (this model does not take them): seed").wait_for()
    page.locator(f".st-key-cmp-result-{comparison_id}-0").get_by_text("no price set").wait_for()
    _side_by_side(page, comparison_id)

    # A button with help is drawn twice by Streamlit (with and without its tooltip): the one shown.
    star = page.locator(f".st-key-cmp-{comparison_id}-1-star button:visible")
    expect(star).to_have_count(1)
    star.click()
    openai.get_by_role("button", name="Unstar").wait_for()
    openai.get_by_text("Winner").wait_for()  # its badge (beside its icon)
    page.screenshot(path=shots / "compare.png", full_page=True)

    studio = Studio.open(Settings(data_dir=server.data_dir))
    try:
        view = compare.get(studio, comparison_id)
    finally:
        studio.close()
    assert [c.status for c in view.columns] == ["succeeded", "succeeded", "failed"]
    assert view.winner_job_id == view.columns[1].job.id

    page.goto(server.base + "/gallery")
    card = page.locator(f".st-key-comparison-card-{comparison_id}")
    card.wait_for()
    card.get_by_text("winner starred").wait_for()
    card.locator("img").first.wait_for()
    page.wait_for_function(THUMBS_LOADED)
    for column in view.columns:  # one card for the group, none for its columns
        assert page.locator(f".st-key-card-{column.job.id}").count() == 0
    page.screenshot(path=shots / "comparison-in-gallery.png")

    card.get_by_role("link", name="Open comparison").click()
    page.wait_for_url(f"**/compare?comparison={comparison_id}")
    page.wait_for_function(RESULTS_LOADED, arg=comparison_id)
    page.locator(f".st-key-cmp-result-{comparison_id}-2").get_by_text(REFUSAL).wait_for()
    _side_by_side(page, comparison_id)
