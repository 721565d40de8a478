"""The studio as served by `streamlit run app.py`, seen from Chromium and from the operator's seat:
every page answers at its own URL, nothing is fetched from another host (the studio works
offline, icons and favicon included), users get no developer toolbar, and the server log holds
what an operator needs: no tracebacks, no file-watcher noise."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mediagen.ui.access import PAGE_TITLES, StudioPage

from ..support.servers import ROOT, AppServer, app_server
from .test_browser import IMAGE_LOADED, browser  # noqa: F401  (the module's Chromium, shared)

pytestmark = pytest.mark.e2e

# Everything the page itself loads (links such as <a href> are not loads), as the page names it
# and as the browser's resource timing saw it.
LOADED_URLS = """() => [
    ...[...document.querySelectorAll('img, script, link, source, video, audio, iframe, embed, object')]
        .map(e => e.currentSrc || e.src || e.href || e.data),
    ...performance.getEntriesByType('resource').map(e => e.name),
].filter(u => typeof u === 'string' && /^(https?|wss?):/.test(u))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("served")) as running:
        yield running


class OfflineBrowser:
    """A browser context that lets requests reach the studio only: whatever is asked of another
    host is refused, as it would be on a machine without a network, and noted."""

    def __init__(self, server: AppServer, browser) -> None:  # noqa: F811
        self.base = server.base
        self.studio_host = urlsplit(server.base).netloc
        self.elsewhere: list[str] = []
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000})
        self.context.route("**/*", self._only_the_studio)

    def _only_the_studio(self, route) -> None:
        if urlsplit(route.request.url).netloc == self.studio_host:
            route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    def open(self, path: str):
        """A fresh tab on ``path``, as a typed or bookmarked URL is opened."""
        tab = self.context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(self.base + path)
        return tab


@pytest.fixture(scope="module")
def offline(server: AppServer, browser) -> Iterator[OfflineBrowser]:  # noqa: F811
    visitor = OfflineBrowser(server, browser)
    yield visitor
    visitor.context.close()


def _page_not_found_shown(tab) -> bool:
    return tab.get_by_text("Page not found").count() > 0


@pytest.mark.parametrize("page", list(StudioPage))
def test_every_page_opens_at_its_own_url(offline: OfflineBrowser, page: StudioPage) -> None:
    tab = offline.open(f"/{page}")
    try:
        tab.get_by_role("heading", name=PAGE_TITLES[page]).wait_for()
        tab.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink").first.wait_for()
        assert not _page_not_found_shown(tab)
        assert urlsplit(tab.url).path == f"/{page}"
    finally:
        tab.close()


def test_the_root_url_opens_the_home_page_and_a_shared_view_keeps_its_query(offline: OfflineBrowser) -> None:
    from playwright.sync_api import expect

    home = offline.open("/")
    try:
        home.get_by_role("heading", name=PAGE_TITLES[StudioPage.IMAGE_STUDIO]).wait_for()
        assert not _page_not_found_shown(home)
    finally:
        home.close()
    shared = offline.open(f"/{StudioPage.GALLERY}?kind=video&q=harbour")
    try:
        shared.get_by_text("job(s) match").wait_for()
        expect(shared.get_by_label("Search prompts")).to_have_value("harbour")
        assert urlsplit(shared.url).path == f"/{StudioPage.GALLERY}"
        assert parse_qs(urlsplit(shared.url).query) == {"kind": ["video"], "q": ["harbour"]}
    finally:
        shared.close()


def test_the_studio_loads_nothing_from_another_host(offline: OfflineBrowser) -> None:
    """An image made and every page visited with the network cut off beyond the studio: no
    request went elsewhere, and nothing the pages load (favicon, icons, fonts, media) names
    another host."""
    tab = offline.open("/")
    try:
        tab.get_by_role("heading", name="Image studio").wait_for()
        tab.get_by_label("Prompt").fill("a lighthouse, drawn offline")
        tab.get_by_role("button", name="Generate").click()
        tab.wait_for_function(IMAGE_LOADED)
        loaded = set(tab.evaluate(LOADED_URLS))
        for page in StudioPage:
            tab.get_by_test_id("stSidebar").get_by_role("link", name=PAGE_TITLES[page]).click()
            tab.get_by_role("heading", name=PAGE_TITLES[page]).wait_for()
            tab.wait_for_load_state("networkidle")
            loaded |= set(tab.evaluate(LOADED_URLS))
        assert any("/cdn/image/" in url for url in loaded)  # the recording saw the media
        assert offline.elsewhere == []
        assert {url for url in loaded if urlsplit(url).netloc != offline.studio_host} == set()
    finally:
        tab.close()


def test_users_get_no_deploy_button(offline: OfflineBrowser) -> None:
    tab = offline.open("/")
    try:
        tab.get_by_role("heading", name="Image studio").wait_for()
        tab.get_by_test_id("stToolbar").wait_for()
        tab.get_by_test_id("stMainMenu").wait_for()  # the user's menu (settings, print) stays
        assert tab.get_by_test_id("stAppDeployButton").count() == 0
        assert tab.get_by_role("button", name="Deploy").count() == 0
    finally:
        tab.close()


def _inotify_watches(pid: int) -> int:
    """Watches the process holds on files (Linux lists them per inotify descriptor)."""
    count = 0
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            count += sum(line.startswith("inotify wd:") for line in info.read_text().splitlines())
        except FileNotFoundError:  # the descriptor closed while we looked
            continue
    return count


def _running_video(api: httpx.Client, tasks: Path, prompt: str) -> tuple[str, str]:
    """A long local video once its render is under way: its job id and its render's id (the
    local provider's task folder; the only one, as each video here ends before the next)."""
    task = api.post("/api/videos/generate", json={"prompt": prompt, "model": "local-video", "duration": 10})
    assert task.status_code == 202, task.text
    job_id = task.json()["task_id"]
    deadline = time.monotonic() + 60
    while (status := api.get(f"/api/videos/tasks/{job_id}").json())["progress"] < 5:
        assert status["status"] in ("queued", "processing"), status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["status"] == "processing", status
    [render] = [path.name for path in tasks.iterdir()]
    return job_id, render


def _when_logged(server: AppServer, words: str) -> list[str]:
    """The log's lines naming ``words``, once there is one (a render reports how it ended)."""
    deadline = time.monotonic() + 30
    while not (lines := [line for line in server.log_path.read_text().splitlines() if words in line]):
        assert time.monotonic() < deadline, f"nothing logged about {words}:\n{server.log_path.read_text()}"
        time.sleep(0.2)
    return lines


def test_the_server_log_holds_what_an_operator_needs(server: AppServer, offline: OfflineBrowser) -> None:
    """With the studio open in a browser, an image made and videos canceled mid-render from the
    studio's own process (the API) and from another process (the CLI, as an operator would): the
    log has no traceback, no file-watcher noise, one line per canceled render and none per poll
    of a running one; the canceled renders leave no files; the server watches no files (a
    watcher takes thousands of inotify watches per session, and floods the log once a busy
    machine runs out of them)."""
    tasks = server.data_dir / "local-provider"
    viewer = offline.open("/")
    try:
        viewer.get_by_role("heading", name="Image studio").wait_for()
        with httpx.Client(base_url=server.base, timeout=60) as api:
            image = api.post("/api/images/generate", json={"prompt": "a lighthouse", "model": "local-image"})
            assert image.status_code == 200, image.text

            in_process, first_render = _running_video(api, tasks, "a storm canceled from the studio")
            assert api.delete(f"/api/videos/tasks/{in_process}").status_code == 204
            [first_ended] = _when_logged(server, first_render)
            assert list(tasks.iterdir()) == []

            from_cli, second_render = _running_video(api, tasks, "a storm canceled from the command line")
            canceled = subprocess.run(
                [sys.executable, "-m", "mediagen", "cancel", from_cli],
                cwd=ROOT,
                env=server.env,
                capture_output=True,
                text=True,
            )
            assert canceled.returncode == 0, canceled.stderr
            [second_ended] = _when_logged(server, second_render)
            assert list(tasks.iterdir()) == []
            for job_id in (in_process, from_cli):
                assert api.get(f"/api/videos/tasks/{job_id}").json()["status"] == "cancelled"
        assert _inotify_watches(server.pid) == 0
    finally:
        viewer.close()

    log = server.log_path.read_text()
    assert " INFO " in first_ended and " INFO " in second_ended, log
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "inotify" not in log.lower(), log
    # Polls that found a render still running are no news: the job's own progress shows them.
    ticks = [
        ast.literal_eval(line.split("worker tick: ", 1)[1]) for line in log.splitlines() if "worker tick: " in line
    ]
    assert all(set(counts) - {"running", "queued"} for counts in ticks), log
