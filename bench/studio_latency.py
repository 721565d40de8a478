"""Time from clicking Generate to the image on screen, in Debian's Chromium, local provider.

Starts `streamlit run app.py` on a free port with a temp data dir, then for each size clicks
Generate RUNS times and waits until the new <img> from /cdn/ has loaded. Prints a table.

    .venv/bin/python bench/studio_latency.py [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

from tests.support.servers import app_server

NEW_IMAGE_LOADED = """(before) => [...document.querySelectorAll("img[src*='/cdn/image/']")]
    .some(i => !before.includes(i.src) && i.complete && i.naturalWidth > 0)"""
SIZES = ("512x512", "1024x1024", "2048x2048")


def main(runs: int) -> None:
    rows = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        app_server(Path(workdir)) as server,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(server.base + "/")
        page.get_by_label("Prompt").wait_for()
        for size in SIZES:
            page.get_by_role("combobox", name="Size").click()
            page.keyboard.type(size)
            page.keyboard.press("Enter")
            timings = []
            for run in range(runs + 1):  # the first run warms up and is not counted
                page.get_by_label("Prompt").fill(f"benchmark {size} run {run}")
                before = page.eval_on_selector_all("img[src*='/cdn/image/']", "els => els.map(e => e.src)")
                start = time.perf_counter()
                page.get_by_role("button", name="Generate").click()
                page.wait_for_function(NEW_IMAGE_LOADED, arg=before)
                if run:
                    timings.append(time.perf_counter() - start)
            rows.append((size, min(timings), statistics.median(timings), max(timings)))
        browser.close()
    print(f"Click Generate -> image loaded on screen (local provider, {runs} runs each, seconds)")
    print(f"| {'size':<10} | {'min':>6} | {'median':>6} | {'max':>6} |")
    print(f"|{'-' * 12}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for size, low, mid, high in rows:
        print(f"| {size:<10} | {low:6.2f} | {mid:6.2f} | {high:6.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
