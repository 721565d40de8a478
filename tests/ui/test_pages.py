"""Every page under Streamlit's AppTest, against a real database and real local storage."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from mediagen.admin import history
from mediagen.api import links
from mediagen.config import ModelPrice
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.library import collections, stars
from mediagen.worker.sweep import tick

from ..conftest import stored_files

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

XSS = "<img src=x onerror=alert(1)> **bold**"


def _texts(app) -> list[str]:
    return [t.value for t in app.get("text")]


def _as_list(value) -> list[str]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _errors(app) -> list[str]:
    return [e.value for e in app.error]


def test_navigation_has_the_sections_and_pages(app) -> None:
    assert app.title[0].value == "Image studio"  # the default page
    for page, title in [
        ("pages/video_studio.py", "Video studio"),
        ("pages/gallery.py", "Gallery"),
        ("pages/task_history.py", "Task history"),
        ("pages/system.py", "System"),
    ]:
        app.switch_page(page).run()
        assert not app.exception, app.exception
        assert app.title[0].value == title


def test_image_studio_generates_and_keeps_results(app, studio) -> None:
    app.text_area(key="image-prompt").input("a lighthouse at dusk")
    app.selectbox(key="image-local-image-size").set_value("512x512")
    app.slider(key="image-local-image-n").set_value(2)
    app.button(key="image-generate").click().run()
    assert not app.exception and _errors(app) == []
    [job] = queries.list_jobs(studio)
    assert job.status == JobStatus.SUCCEEDED and len(job.assets) == 2
    urls = [url for image in app.get("image") for url in image.value]
    assert urls == [studio.storage.url(a.key) for a in job.assets]
    assert next(c.value for c in app.caption if "×" in c.value).startswith("512×512")
    assert [c.value for c in app.code] == urls
    assert len(app.get("download_button")) == 2
    # The form keeps its values, and the results stay on screen after another rerun.
    app.run()
    assert app.text_area(key="image-prompt").value == "a lighthouse at dusk"
    assert app.slider(key="image-local-image-n").value == 2
    assert [url for image in app.get("image") for url in image.value] == urls


def test_image_studio_names_the_field_on_bad_input(app, studio) -> None:
    app.button(key="image-generate").click().run()
    assert any("prompt" in e and "must not be empty" in e for e in _errors(app))
    app.text_area(key="image-prompt").input("ok")
    app.selectbox(key="image-local-image-size").set_value("Custom…").run()
    app.text_input(key="image-local-image-size-custom").input("100x100")
    app.button(key="image-generate").click().run()
    [message] = _errors(app)
    assert "size" in message and "100x100" in message and "256" in message
    assert not app.exception and queries.list_jobs(studio) == []


def test_video_studio_queues_shows_progress_and_plays(app, studio) -> None:
    app.switch_page("pages/video_studio.py").run()
    app.text_area(key="video-prompt").input("slow waves")
    app.slider(key="video-local-video-duration").set_value(1)
    app.selectbox(key="video-local-video-size").set_value("Custom…").run()
    app.text_input(key="video-local-video-size-custom").input("160x96")
    app.button(key="video-generate").click().run()
    [job] = queries.list_jobs(studio)
    assert job.status == JobStatus.QUEUED
    assert "slow waves" in _texts(app) and app.button(key=f"cancel-{job.id}")

    deadline = time.monotonic() + 60
    while not JobStatus(queries.get_job(studio, job.id).status).is_final and time.monotonic() < deadline:
        tick(studio)
        time.sleep(0.05)
    app.run()
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.SUCCEEDED
    players = [h.proto.body for h in app.get("html")]
    assert any(studio.storage.url(job.assets[0].key) in body and "poster=" in body for body in players)


def test_video_panel_cancel_and_retry(app, studio) -> None:
    job = actions.submit_video(studio, "to be canceled", params={"duration": 1})
    app.switch_page("pages/video_studio.py").run()
    app.button(key=f"cancel-{job.id}").click().run()
    assert queries.get_job(studio, job.id).status == JobStatus.CANCELED
    app.button(key=f"retry-{job.id}").click().run()
    retried = [j for j in queries.list_jobs(studio) if j.retried_from == job.id]
    assert len(retried) == 1 and retried[0].status == JobStatus.QUEUED


def test_gallery_filters_search_and_failures(app, studio, scripted_failure) -> None:
    actions.generate_image(studio, "red fox", params={"size": "256x256"})
    actions.generate_image(studio, "blue whale", params={"size": "256x256"})
    failed = scripted_failure("the provider refused: content policy")
    app.switch_page("pages/gallery.py").run()
    assert {"red fox", "blue whale", "broken"} <= set(_texts(app))
    # Thumbnails only in the grid.
    urls = [url for image in app.get("image") for url in image.value]
    assert len(urls) == 2 and all(url.endswith(".thumb.webp") for url in urls)

    app.text_input(key="g-text").input("fox").run()
    assert "red fox" in _texts(app) and "blue whale" not in _texts(app)
    app.text_input(key="g-text").input("").run()
    app.multiselect(key="g-status").select("failed").run()
    assert _texts(app).count("broken") == 1 and "red fox" not in _texts(app)
    assert any("content policy" in e for e in _errors(app))
    assert failed.status == JobStatus.FAILED


def test_gallery_pages_forward_and_back(app, studio) -> None:
    for i in range(14):
        actions.submit_video(studio, f"clip {i:02d}")
    app.switch_page("pages/gallery.py").run()
    app.selectbox(key="g-size").set_value(12).run()
    first = [t for t in _texts(app) if t.startswith("clip")]
    assert first[0] == "clip 13" and len(first) == 12
    app.button(key="g-next").click().run()
    second = [t for t in _texts(app) if t.startswith("clip")]
    assert second == ["clip 01", "clip 00"]
    assert app.button(key="g-next").disabled
    app.button(key="g-prev").click().run()
    assert [t for t in _texts(app) if t.startswith("clip")] == first


def test_prompts_render_as_text_not_html(app, studio) -> None:
    actions.submit_video(studio, XSS)
    app.switch_page("pages/gallery.py").run()
    assert XSS in _texts(app)
    assert all("<img" not in m.value for m in app.markdown)
    app.switch_page("pages/video_studio.py").run()
    assert XSS in _texts(app)


def _frame_with(app, column: str):
    [frame] = [d.value for d in app.dataframe if column in d.value.columns]
    return frame


def test_task_history_metrics_usage_and_jobs(app, studio, scripted_failure) -> None:
    studio.settings = studio.settings.model_copy(
        update={"prices": {"local-image": ModelPrice(per_image={"256x256": 0.04})}}
    )
    image = actions.generate_image(studio, "one", params={"size": "256x256", "n": 2})
    video = actions.cancel_job(studio, actions.submit_video(studio, "two").id)
    failed = scripted_failure("refused: not allowed")
    app.switch_page("pages/task_history.py").run()
    assert not app.exception, app.exception
    assert [t.label for t in app.tabs] == ["Overview", "Usage & cost", "Jobs"]
    shown = {m.label: m.value for m in app.metric}
    assert (shown["Jobs"], shown["Canceled"], shown["Failed"], shown["Succeeded"]) == ("3", "1", "1", "1")
    assert shown["Success rate"] == "50.0%" and shown["Estimated cost"] == "$0.08"

    per_model = _frame_with(app, "p95_s").set_index("model")
    assert per_model.loc["local-image", "succeeded"] == 1 and per_model.loc["scripted-image", "failed"] == 1
    reasons = _frame_with(app, "latest_message")
    assert reasons.iloc[0][["reason", "latest_message"]].tolist() == ["content_policy", "refused: not allowed"]
    per_user = _frame_with(app, "owner")
    assert per_user.iloc[0][["owner", "images", "cost_usd"]].tolist() == ["local", 2, "$0.08"]
    assert not [c.value for c in app.caption if "No price set" in c.value]  # nothing unpriced was made

    table = _frame_with(app, "prompt")
    assert list(table["id"]) == [failed.id, video.id, image.id]
    app.multiselect(key="h-status").select("canceled").run()
    table = _frame_with(app, "prompt")
    assert list(table["id"]) == [video.id] and table.iloc[0]["error"] == "canceled by the user"
    per_model = _frame_with(app, "p95_s")
    assert per_model[["model", "jobs", "canceled"]].values.tolist() == [["local-video", 1, 1]]


def test_task_history_pages_through_jobs(app, studio, monkeypatch) -> None:
    monkeypatch.setattr(history, "PAGE_ROWS", 2)
    made = [actions.submit_video(studio, f"clip {i}").id for i in range(5)]
    app.switch_page("pages/task_history.py").run()
    seen = []
    while True:
        seen += list(_frame_with(app, "prompt")["id"])
        if app.button(key="h-next").disabled:
            break
        app.button(key="h-next").click().run()
    assert seen == made[::-1]
    app.button(key="h-prev").click().run()
    assert list(_frame_with(app, "prompt")["id"]) == made[::-1][2:4]


def test_system_page_reports_and_self_checks(app, studio) -> None:
    app.switch_page("pages/system.py").run()
    assert studio.db.engine.dialect.name in app.code[0].value  # sqlite:///… or postgresql+psycopg://…
    assert any("No worker has ticked yet" in w.value for w in app.warning)
    app.button(key="sys-selfcheck").click().run()
    successes = [s.value for s in app.success]
    assert any(s.startswith("write") for s in successes) and any(s.startswith("read back") for s in successes)
    # Nothing serves the test's public base URL, and the page says so rather than pretending.
    assert any("URL answers" in e for e in _errors(app))
    assert any("set MEDIAGEN_WEBHOOK_SECRET" in c.value for c in app.caption)
    webhook_metrics = {m.label: m.value for m in app.metric if m.label.startswith("Deliveries")}
    assert webhook_metrics == {f"Deliveries {s}": "0" for s in ("pending", "delivered", "failed", "gone")}


def test_admins_make_list_and_revoke_api_keys_on_the_system_page(app, studio) -> None:
    from mediagen.auth import keys

    app.switch_page("pages/system.py").run()
    assert any("No API keys yet" in c.value for c in app.caption)
    app.text_input(key="api-key-user").input("ana@example.com")
    app.text_input(key="api-key-name").input("nightly renders")
    app.button[[b.label for b in app.button].index("Create key")].click().run()
    [shown] = [c.value for c in app.code if c.value.startswith("mg_")]
    [made] = keys.list_keys(studio)
    assert keys.authenticate(studio, shown).id == made.id and made.name == "nightly renders"
    [table] = [d.value for d in app.dataframe if "last used" in d.value.columns]
    assert list(table["user"]) == ["ana@example.com"] and "mg_" not in table.to_string()
    app.selectbox(key="api-key-revoke-id").select(made.id)
    app.button(key="api-key-revoke").click().run()
    assert keys.list_keys(studio)[0].revoked_at is not None
    assert shown not in {c.value for c in app.code}  # shown once, at creation only


def test_gallery_view_lives_in_its_link(app, studio) -> None:
    """Filters and page go into the URL; a session opened with that URL shows the same view, and
    values a link got wrong are dropped with a note naming the parameter."""
    for i in range(14):
        actions.submit_video(studio, f"harbour clip {i:02d}")
    actions.generate_image(studio, "harbour still", params={"size": "256x256"})
    app.switch_page("pages/gallery.py").run()
    app.multiselect(key="g-kind").select("video").run()
    app.text_input(key="g-text").input("harbour").run()
    app.selectbox(key="g-size").set_value(12).run()
    app.button(key="g-next").click().run()
    link = {name: _as_list(app.query_params[name]) for name in app.query_params}
    assert link["kind"] == ["video"] and link["q"] == ["harbour"] and link["size"] == ["12"]
    assert link["after"]
    second_page = [t for t in _texts(app) if t.startswith("harbour")]
    assert second_page == ["harbour clip 01", "harbour clip 00"]

    from streamlit.testing.v1 import AppTest

    from ..conftest import ROOT

    shared = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    shared.query_params.update({**link, "status": ["done"]})
    shared.run()
    shared.switch_page("pages/gallery.py").run()
    assert not shared.exception, shared.exception
    assert shared.multiselect(key="g-kind").value == ["video"]
    assert shared.text_input(key="g-text").value == "harbour"
    assert [t for t in _texts(shared) if t.startswith("harbour")] == second_page
    notes = [c.value.replace("\\", "") for c in shared.caption]  # escaped: a note shows the link's text as text
    assert any("ignored status='done'" in note and "allowed:" in note for note in notes)


def test_details_dialog_stars_collects_and_deletes_after_asking(app, studio) -> None:
    job = actions.generate_image(studio, "a keeper", params={"size": "256x256"})
    [asset] = job.assets
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{job.id}").click().run()
    app.button(key=f"star-{asset.id}").click().run()
    assert stars.starred(studio, "local", [asset.id]) == {asset.id}
    assert app.button(key=f"star-{asset.id}").label == "Starred"
    app.text_input(key=f"collect-{asset.id}-new").input("Launch").run()
    app.button(key=f"collect-{asset.id}-add").click().run()
    [(collection_id, name)] = collections.collections_of(studio, "local")
    assert name == "Launch" and collections.collections_holding(studio, "local", asset.id) == [collection_id]

    [ask] = [b for b in app.get("popover") if b.proto.popover.label == "Delete"]  # Delete opens a question
    assert any("cannot be undone" in w.value for w in ask.get("warning"))
    assert queries.get_job(studio, job.id)  # asked, not deleted yet
    app.button(key=f"dialog-delete-{job.id}-yes").click().run()
    assert not app.exception, app.exception
    assert queries.list_jobs(studio) == [] and stored_files(studio) == []
    assert "a keeper" not in _texts(app)


def _signed(studio, link: str) -> dict:
    """What a zip link asks for, as the route will read it."""
    token = parse_qs(urlsplit(link).query)["t"][0]
    return links.read_zip_link(studio.settings, token)


def test_gallery_selection_collects_zips_and_deletes(app, studio) -> None:
    made = [actions.generate_image(studio, f"pick {i}", params={"size": "256x256"}) for i in range(3)]
    app.switch_page("pages/gallery.py").run()
    app.toggle(key="g-selecting").set_value(True).run()
    for job in made[:2]:
        app.checkbox(key=f"sel-{job.id}").check().run()
    assert any(c.value == "2 selected" for c in app.caption)
    [zip_link] = [b for b in app.get("link_button") if b.proto.label == "Download zip"]
    assert _signed(studio, zip_link.proto.url) == {
        "owner": "local",
        "collection": None,
        "jobs": sorted(j.id for j in made[:2]),
    }
    app.text_input(key="bulk-collect-new").input("Shortlist").run()
    app.button(key="bulk-collect-add").click().run()
    [(collection_id, _)] = collections.collections_of(studio, "local")
    picked = {a.id for j in made[:2] for a in j.assets}
    assert {collections.collections_holding(studio, "local", i)[0] for i in picked} == {collection_id}

    app.run()  # the collection filter lists it from the next run on
    app.selectbox(key="g-collection").set_value(collection_id).run()
    [collection_zip] = [b for b in app.get("link_button") if b.proto.label == "Download collection as zip"]
    assert collection_zip.proto.url.startswith("/library/zip?name=Shortlist&t=")
    assert _signed(studio, collection_zip.proto.url) == {"owner": "local", "collection": collection_id, "jobs": []}
    app.selectbox(key="g-collection").set_value(None).run()

    app.button(key="bulk-delete-yes").click().run()  # in the popover Delete opens
    assert not app.exception, app.exception
    assert [j.id for j in queries.list_jobs(studio)] == [made[2].id]
    assert all(made[2].id in f for f in stored_files(studio))
    assert any(c.value == "0 selected" for c in app.caption)


def test_gallery_selection_spans_pages_and_the_view_downloads_as_zip(app, studio) -> None:
    older = actions.generate_image(studio, "pick older", params={"size": "256x256"})
    for i in range(12):
        actions.submit_video(studio, f"filler {i}")
    newer = actions.generate_image(studio, "pick newer", params={"size": "256x256"})
    app.switch_page("pages/gallery.py").run()
    app.selectbox(key="g-size").set_value(12).run()
    [everything] = [b for b in app.get("link_button") if b.proto.label == "Download all as zip"]
    assert _signed(studio, everything.proto.url)["filters"]["kinds"] == []
    app.text_input(key="g-text").input("pick").run()
    [picks] = [b for b in app.get("link_button") if b.proto.label == "Download all as zip"]
    assert _signed(studio, picks.proto.url)["filters"]["text"] == "pick"
    app.text_input(key="g-text").input("").run()

    app.toggle(key="g-selecting").set_value(True).run()
    app.checkbox(key=f"sel-{newer.id}").check().run()
    app.button(key="g-next").click().run()
    app.checkbox(key=f"sel-{older.id}").check().run()
    assert any(c.value == "2 selected" for c in app.caption)
    app.text_input(key="bulk-collect-new").input("Both pages").run()
    app.button(key="bulk-collect-add").click().run()
    [(collection_id, _)] = collections.collections_of(studio, "local")
    for job in (older, newer):  # the one selected on the page before too
        assert collections.collections_holding(studio, "local", job.assets[0].id) == [collection_id]
    app.button(key="bulk-delete-yes").click().run()  # in the popover Delete opens
    assert not app.exception, app.exception
    assert {older.id, newer.id}.isdisjoint(j.id for j in queries.list_jobs(studio))
    assert not [f for f in stored_files(studio) if older.id in f or newer.id in f]


def test_an_explained_error_a_page_did_not_catch_is_shown_as_its_message() -> None:
    from streamlit.testing.v1 import AppTest

    def script() -> None:
        from mediagen.errors import NotFound
        from mediagen.ui.navigation import run_page

        class Broken:
            def run(self) -> None:
                raise NotFound("no job with id 'x'")

        run_page(Broken())

    app = AppTest.from_function(script).run()
    assert not app.exception and [e.value for e in app.error] == ["no job with id 'x'"]


def test_a_second_press_right_after_the_first_makes_no_second_job(app, studio) -> None:
    """The second press of a double click can arrive after a quick submission (a video is queued in
    milliseconds) has ended; it makes nothing and says so. A press a while later is a new request."""
    app.switch_page("pages/video_studio.py").run()
    app.text_area(key="video-prompt").input("pressed twice")
    app.button(key="video-generate").click().run()
    app.button(key="video-generate").click().run()
    [job] = queries.list_jobs(studio)
    assert any("Pressed twice" in i.value and job.id in i.value for i in app.info)
    time.sleep(1)  # submissions.REPEAT_WINDOW_S
    app.button(key="video-generate").click().run()
    assert len(queries.list_jobs(studio)) == 2


def test_a_prompt_over_the_limit_is_measured_kept_and_refused_by_name(app, studio, monkeypatch) -> None:
    """No silent cut or refusal in the field: the prompt stays as typed, its length is shown against
    the chosen model's own limit, and Generate names the field, the length and the limit."""
    from mediagen.providers import configured_catalog, read_provider_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-called")  # puts dall-e-2 (1,000 characters) in the catalogue
    studio.provider_settings = read_provider_settings()
    studio.catalog = configured_catalog(studio.provider_settings)
    app.run()
    long_prompt = ", ".join(["a lighthouse on a cliff at dusk"] * 40)  # 1,318 characters
    app.text_area(key="image-prompt").input(long_prompt).run()
    assert any(c.value == "1,318 of 4,000 characters" for c in app.caption)  # the local model's limit
    app.selectbox(key="image-model").set_value("dall-e-2").run()
    [warning] = [w.value for w in app.warning if "characters" in w.value]
    assert "1,318 characters" in warning and "at most 1,000" in warning
    app.button(key="image-generate").click().run()
    [error] = _errors(app)
    assert "Nothing was generated" in error and "**prompt**" in error
    assert "1,318 characters long" in error and "at most 1,000" in error
    assert app.text_area(key="image-prompt").value == long_prompt
    assert app.text_area(key="image-prompt").proto.max_chars == 0  # else the browser refuses the paste
    assert queries.list_jobs(studio) == []


def test_a_collection_name_over_the_limit_is_refused_by_name_not_cut(app, studio) -> None:
    job = actions.generate_image(studio, "a keeper", params={"size": "256x256"})
    [asset] = job.assets
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{job.id}").click().run()
    name = app.text_input(key=f"collect-{asset.id}-new")
    assert name.proto.max_chars == 0  # else the browser cuts a longer paste without a word
    name.input("launch " * 20).run()
    app.button(key=f"collect-{asset.id}-add").click().run()
    assert any("collection name" in e and "139 characters long" in e and "at most 120" in e for e in _errors(app))
    assert app.text_input(key=f"collect-{asset.id}-new").value == "launch " * 20
    assert collections.collections_of(studio, "local") == []


def test_each_image_result_is_headed_by_its_own_request(app, studio) -> None:
    """After a refused request the earlier result is still listed, headed by its own prompt, model
    and job, and the refusal says nothing was generated."""
    app.text_area(key="image-prompt").input("a lighthouse at dusk")
    app.selectbox(key="image-local-image-size").set_value("256x256")
    app.button(key="image-generate").click().run()
    [job] = queries.list_jobs(studio)
    app.text_area(key="image-prompt").input("   ")
    app.button(key="image-generate").click().run()
    [error] = _errors(app)
    assert "Nothing was generated" in error and "must not be empty" in error
    assert "a lighthouse at dusk" in _texts(app)
    assert any(job.id in c.value and "local-image" in c.value for c in app.caption)


def test_the_image_studio_lists_the_users_recent_images_after_a_reload(app, studio) -> None:
    mine = actions.generate_image(studio, "made before the reload", params={"size": "256x256"})
    actions.generate_image(studio, "someone else's", params={"size": "256x256"}, owner="bo@example.com")
    app.run()  # what a reload shows: a session that never generated anything itself
    assert "made before the reload" in _texts(app) and "someone else's" not in _texts(app)
    urls = [url for image in app.get("image") for url in image.value]
    assert urls == [studio.storage.url(mine.assets[0].key)]


def test_details_of_a_queued_job_show_progress_cancel_and_its_id(app, studio) -> None:
    job = actions.submit_video(studio, "still waiting", params={"duration": 1})
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{job.id}").click().run()
    assert job.id in [c.value for c in app.code]  # copyable, for `python -m mediagen job ID`
    assert "Waiting for the provider" in [p.proto.text for p in app.get("progress")]
    app.button(key=f"dialog-cancel-{job.id}").click().run()
    assert not app.exception, app.exception
    assert queries.get_job(studio, job.id).status == JobStatus.CANCELED
    assert any("Canceled" in m.value for m in app.markdown)  # the status badge, redrawn
    assert f"dialog-cancel-{job.id}" not in [b.key for b in app.button]


def test_details_offer_cancel_only_to_whoever_may_change_the_job(app, studio) -> None:
    """Signed in as a creator: their own queued job can be canceled from its details, another
    creator's shows its progress and id but no Cancel (the rule of mediagen.auth)."""
    studio.settings = studio.settings.model_copy(update={"roles": {"example.com": "creator"}})
    app.secrets["auth"] = {"client_id": "mediagen"}  # sign-in configured
    app.user = {"is_logged_in": True, "email": "bo@example.com", "name": "Bo"}
    theirs = actions.submit_video(studio, "dee's clip", params={"duration": 1}, owner="dee@example.com")
    mine = actions.submit_video(studio, "bo's clip", params={"duration": 1}, owner="bo@example.com")
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{theirs.id}").click().run()
    assert theirs.id in [c.value for c in app.code]
    assert "Waiting for the provider" in [p.proto.text for p in app.get("progress")]
    assert f"dialog-cancel-{theirs.id}" not in [b.key for b in app.button]
    app.button(key=f"open-{mine.id}").click().run()
    app.button(key=f"dialog-cancel-{mine.id}").click().run()
    assert queries.get_job(studio, mine.id).status == JobStatus.CANCELED
    assert queries.get_job(studio, theirs.id).status == JobStatus.QUEUED
