"""The gallery page under AppTest: what its cards, its empty state, its delete question and its
link notes say (real database, real local storage)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.providers import PROVIDERS, configured_catalog, read_provider_settings
from mediagen.providers.base import PollResult, TaskState
from mediagen.worker.sweep import tick

from ..conftest import ROOT
from ..support.fakes import ScriptedProvider, scripted_entry
from ..support.markdown import assert_shows_literally, shown

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

# Everything a Markdown-rendering element shows (badges are Markdown too).
MARKDOWN_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "success", "toast")


def markdown_bodies(app: Any) -> list[str]:
    return [element.value for kind in MARKDOWN_ELEMENTS for element in getattr(app, kind)]


def _texts(app: Any) -> list[str]:
    return [t.value for t in app.get("text")]


@pytest.fixture
def running_video(monkeypatch: pytest.MonkeyPatch, studio):
    """A video job a (scripted) provider reports running at 40%, moved there by a real worker tick."""
    provider = ScriptedProvider()
    provider.script.append(PollResult(TaskState.RUNNING, progress=40))
    monkeypatch.setitem(PROVIDERS, "scripted", scripted_entry(provider))
    studio.provider_settings = read_provider_settings()
    studio.catalog = configured_catalog(studio.provider_settings)
    job = actions.submit_video(studio, "a clip still rendering", model="scripted-video")
    deadline = time.monotonic() + 30
    while job.status != JobStatus.RUNNING:
        assert time.monotonic() < deadline, f"the job stayed {job.status}"
        tick(studio)
        time.sleep(studio.settings.poll_interval_s)
        job = queries.get_job(studio, job.id)
    return job


def test_a_running_card_names_its_status_once_and_shows_its_progress(app, running_video) -> None:
    app.switch_page("pages/gallery.py").run()
    progress = [p.proto.text for p in app.get("progress")]
    assert progress == ["40%"]
    said = progress + markdown_bodies(app)
    assert sum(body.count("Running") for body in said) == 1, said


def test_a_search_that_matches_nothing_offers_to_clear_the_filters(app, studio) -> None:
    actions.generate_image(studio, "a red fox", params={"size": "256x256"})
    app.switch_page("pages/gallery.py").run()
    app.multiselect(key="g-kind").select("image").run()
    app.text_input(key="g-text").input("zebra").run()
    [empty] = [i.value for i in app.info]
    assert "No job matches these filters" in empty and "Generate" not in empty
    app.button(key="g-clear-filters").click().run()
    assert "a red fox" in _texts(app)
    assert app.text_input(key="g-text").value == "" and app.multiselect(key="g-kind").value == []
    assert not app.info


def test_an_empty_gallery_points_to_the_studios(app) -> None:
    app.switch_page("pages/gallery.py").run()
    [empty] = [i.value for i in app.info]
    assert "Image or Video studio" in empty
    assert not [b for b in app.button if b.key == "g-clear-filters"]


def test_delete_asks_in_a_popover_of_its_own(app, studio) -> None:
    """The question and its two answers sit together in their own panel, wherever the Delete
    button is (in the selection row or in the details dialog): nothing is laid out beside them."""
    job = actions.generate_image(studio, "to delete", params={"size": "256x256"})
    app.switch_page("pages/gallery.py").run()
    app.toggle(key="g-selecting").set_value(True).run()
    app.checkbox(key=f"sel-{job.id}").check().run()
    [popover] = [b for b in app.get("popover") if b.proto.popover.label == "Delete"]
    assert [w.value for w in popover.get("warning") if "cannot be undone" in w.value]
    [row] = [b for b in popover.get("flex_container") if b.proto.flex_container.direction == 2]  # horizontal
    assert [b.label for b in row.get("button")] == ["Delete for good", "Keep"]
    assert queries.get_job(studio, job.id)  # asked, nothing deleted
    app.button(key="bulk-delete-yes").click().run()
    assert not app.exception, app.exception
    assert queries.list_jobs(studio) == []


HOSTILE_LINK = {
    "size": "[text](http://elsewhere.example/x)",
    "collection": "![t](http://elsewhere.example/x.png)",
    "kind": "www.elsewhere.example",
    "status": "someone@elsewhere.example",
    "model": ":material/home: :red[red] <img src=x>",
    "order": "a\n===",
}


def test_refused_values_of_a_shared_link_are_shown_as_text(studio) -> None:
    """Each value a link got wrong is named in a note, as the characters it holds: no link, no
    image the viewer's browser would fetch, no markup or icon."""
    from streamlit.testing.v1 import AppTest

    from mediagen import server

    server.use(studio)
    try:
        shared = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        shared.query_params.update(HOSTILE_LINK)
        shared.run()
        shared.switch_page("pages/gallery.py").run()
        assert not shared.exception, shared.exception
        bodies = markdown_bodies(shared)
        for name, value in HOSTILE_LINK.items():
            [note] = [body for body in bodies if f"ignored {name}" in body.replace("\\", "")]
            assert_shows_literally(note, repr(value).strip("'"))
        for body in bodies:  # nothing else on the page links or loads anything either
            assert not {"a", "img"} & shown(body)[1], body
    finally:
        server.use(None)
