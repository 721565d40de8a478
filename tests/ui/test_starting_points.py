"""Starting a job from another (links ``?from=JOB&as=…``), uploads in the studios, lineage in the
details, "Run again with changes" and the prompt history, under Streamlit's AppTest against a
real database and real local storage."""

from __future__ import annotations

import dataclasses
import io
from urllib.parse import parse_qs

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mediagen.catalog import Catalog
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus

from ..conftest import ROOT

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database


def _opened_at(page: str, **params: str) -> AppTest:
    """A new browser session opening ``page`` at a URL with ``params`` (a followed link)."""
    test = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    test.query_params.update(params)
    test.switch_page(page).run()
    assert not test.exception, test.exception
    return test


def _errors(app) -> list[str]:
    return [e.value for e in app.error]


def _image_urls(app) -> list[str]:
    return [url for image in app.get("image") for url in image.value]


def _links(app) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Every page link: its label → (page, query parameters)."""
    return {
        link.proto.label.replace("\\", ""): (link.proto.page, parse_qs(link.proto.query_string))
        for link in app.get("page_link")
    }


def _as_list(value) -> list[str]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _png(width: int, height: int, colour: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def test_make_a_video_from_this_prefills_the_video_studio_from_its_link(app, studio) -> None:
    image = actions.generate_image(studio, "a red lighthouse", params={"size": "256x256", "seed": 7})
    video_studio = _opened_at("pages/video_studio.py", **{"from": image.id, "as": "video"})
    assert video_studio.text_area(key="video-prompt").value == "a red lighthouse"
    assert video_studio.selectbox(key="video-model").value == "local-video"
    assert any("starts on this image" in m.value and image.id in m.value for m in video_studio.markdown)
    assert studio.storage.url(image.assets[0].thumbnail_key) in _image_urls(video_studio)
    assert not video_studio.get("file_uploader")  # the image is the job's: nothing to upload

    video_studio.slider(key="video-local-video-duration").set_value(1)
    video_studio.selectbox(key="video-local-video-size").set_value("Custom…").run()
    video_studio.text_input(key="video-local-video-size-custom").input("160x96")
    video_studio.button(key="video-generate").click().run()
    assert _errors(video_studio) == []
    [video] = queries.list_jobs(studio, kind="video")
    video = queries.get_job(studio, video.id)
    assert (video.derived_from, video.derivation) == (image.id, "video")
    [first_frame] = video.inputs
    assert (first_frame.role, first_frame.source_job_id) == ("image", image.id)
    # The link stays in the URL and the form as it was: a reload or a rerun starts from it again.
    video_studio.run()
    assert [_as_list(video_studio.query_params[name]) for name in ("from", "as")] == [[image.id], ["video"]]
    assert any("starts on this image" in m.value for m in video_studio.markdown)

    # Run again with changes, on the video: its options as given (a size typed in), its first frame.
    rerun = _opened_at("pages/video_studio.py", **{"from": video.id, "as": "rerun"})
    assert rerun.selectbox(key="video-local-video-size").value == "Custom…"
    assert rerun.text_input(key="video-local-video-size-custom").value == "160x96"
    assert rerun.slider(key="video-local-video-duration").value == 1
    assert studio.storage.url(first_frame.key) in _image_urls(rerun)
    rerun.button(key="video-generate").click().run()
    [again, _] = queries.list_jobs(studio, kind="video")
    again = queries.get_job(studio, again.id)
    assert (again.derived_from, again.derivation, again.params["size"]) == (video.id, "rerun", "160x96")
    assert [(i.role, i.source_job_id, i.sha256) for i in again.inputs] == [("image", image.id, first_frame.sha256)]

    rerun.button(key="video-start-over").click().run()  # back to a plain form, the link gone from the URL
    assert "from" not in rerun.query_params and not [m for m in rerun.markdown if "again with changes" in m.value]
    assert [u.key for u in rerun.get("file_uploader")] == ["video-upload-image"]


def test_edit_and_variations_links_prefill_the_image_studio(app, studio) -> None:
    image = actions.generate_image(studio, "a red lighthouse", params={"size": "256x256", "seed": 7})
    edit = _opened_at("pages/image_studio.py", **{"from": image.id, "as": "edit"})
    assert edit.text_area(key="image-prompt").value == ""  # what to change
    assert edit.selectbox(key="image-local-image-size").value == "256x256"
    assert [u.key for u in edit.get("file_uploader")] == ["image-upload-mask"]  # the image is the job's
    edit.text_area(key="image-prompt").input("in deep snow")
    mask = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(mask, format="PNG")  # transparent: paint anywhere
    edit.file_uploader(key="image-upload-mask").set_value(("mask.png", mask.getvalue(), "image/png")).run()
    edit.button(key="image-generate").click().run()
    assert _errors(edit) == []
    edited = queries.get_job(studio, queries.list_jobs(studio, limit=1)[0].id)
    assert edited.status == JobStatus.SUCCEEDED and edited.prompt == "in deep snow"
    assert (edited.derived_from, edited.derivation) == (image.id, "edit")
    assert [(i.role, i.source_job_id, i.origin) for i in edited.inputs] == [
        ("image", image.id, f"job {image.id}"),
        ("mask", None, "upload mask.png"),
    ]

    variations = _opened_at("pages/image_studio.py", **{"from": image.id, "as": "variation"})
    assert variations.text_area(key="image-prompt").value == "a red lighthouse"
    new_seed = variations.number_input(key="image-local-image-seed").value
    assert new_seed is not None and new_seed != 7
    variations.button(key="image-generate").click().run()
    varied = queries.get_job(studio, queries.list_jobs(studio, limit=1)[0].id)
    assert (varied.derivation, varied.params["seed"]) == ("variation", new_seed)


def test_a_link_that_cannot_be_followed_is_named_and_the_studio_still_works(app, studio) -> None:
    video = actions.submit_video(studio, "waves")
    wrong_kind = _opened_at("pages/image_studio.py", **{"from": video.id, "as": "edit"})
    [error] = _errors(wrong_kind)
    assert "**from**" in error and "no finished image" in error
    unknown = _opened_at("pages/video_studio.py", **{"from": video.id, "as": "sideways"})
    [error] = _errors(unknown)
    assert "**as**" in error and "video, rerun" in error
    assert unknown.text_area(key="video-prompt").value == ""


def test_a_bad_upload_is_refused_by_field_and_keeps_the_prompt(app, studio) -> None:
    app.text_area(key="image-prompt").input("the cat, as a watercolour")
    upload = app.file_uploader(key="image-upload-image")
    assert "PNG, JPEG, WEBP" in upload.proto.help  # the model's limits as help
    upload.set_value(("cat.png", b"not a picture at all", "image/png")).run()
    app.button(key="image-generate").click().run()
    [error] = _errors(app)
    assert "Nothing was generated" in error and "**image**" in error and "not an image" in error
    assert app.text_area(key="image-prompt").value == "the cat, as a watercolour"

    app.file_uploader(key="image-upload-image").set_value(("tiny.png", _png(8, 8), "image/png")).run()
    app.button(key="image-generate").click().run()
    [error] = _errors(app)
    assert "**image**" in error and "8x8 px" in error and "16–4096" in error
    assert queries.list_jobs(studio) == []

    app.file_uploader(key="image-upload-image").set_value(("cat.png", _png(300, 200), "image/png")).run()
    app.button(key="image-generate").click().run()
    assert _errors(app) == []
    [job] = queries.list_jobs(studio)
    job = queries.get_job(studio, job.id)
    assert job.status == JobStatus.SUCCEEDED and job.derived_from is None
    [given] = job.inputs
    assert (given.origin, given.width, given.height) == ("upload cat.png", 300, 200)


def test_run_again_with_changes_prefills_everything_and_links_both_ways(app, studio) -> None:
    original = actions.generate_image(studio, "a lighthouse", params={"size": "256x256", "seed": 11, "n": 2})
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{original.id}").click().run()
    links = _links(app)
    assert links["Run again with changes"] == ("image_studio", {"from": [original.id], "as": ["rerun"]})
    assert links["Make a video from this"][1] == {"from": [original.id], "as": ["video"]}
    assert {"Edit", "Variations"} <= set(links)
    [use] = [p for p in app.get("popover") if p.proto.popover.label == "Use"]  # the same, on the card
    assert [link.proto.label for link in use.get("page_link")] == ["Make a video from this", "Edit", "Variations"]

    rerun = _opened_at("pages/image_studio.py", **{"from": original.id, "as": "rerun"})
    assert rerun.text_area(key="image-prompt").value == "a lighthouse"
    assert rerun.selectbox(key="image-local-image-size").value == "256x256"
    assert rerun.number_input(key="image-local-image-seed").value == 11
    assert rerun.slider(key="image-local-image-n").value == 2
    rerun.text_area(key="image-prompt").input("a lighthouse in fog")
    rerun.button(key="image-generate").click().run()
    again = queries.get_job(studio, queries.list_jobs(studio, limit=1)[0].id)
    assert (again.prompt, again.params["seed"], again.params["n"]) == ("a lighthouse in fog", 11, 2)
    assert (again.derived_from, again.derivation) == (original.id, "rerun")

    # Both directions, as links that open the other job's details.
    app.run()
    assert any(
        label.startswith("Run again with changes:") and query == {"job": [again.id]}
        for label, (_, query) in _links(app).items()
    )
    shared = _opened_at("pages/gallery.py", job=again.id)  # a job's details have their own URL
    [made_from] = [
        query for label, (_, query) in _links(shared).items() if label.startswith("Run again with changes from")
    ]
    assert made_from == {"job": [original.id]}


def test_run_again_carries_the_uploaded_inputs(app, studio) -> None:
    from mediagen.jobs.references import ImageRef

    edited = actions.generate_image(
        studio,
        "make it night",
        params={"size": "256x256"},
        references=[ImageRef(upload=io.BytesIO(_png(300, 200)), name="cat.png")],
    )
    rerun = _opened_at("pages/image_studio.py", **{"from": edited.id, "as": "rerun"})
    assert any(studio.storage.url(edited.inputs[0].key) in url for url in _image_urls(rerun))
    assert "image-upload-image" not in [u.key for u in rerun.get("file_uploader")]
    rerun.button(key="image-generate").click().run()
    assert _errors(rerun) == []
    again = queries.get_job(studio, queries.list_jobs(studio, limit=1)[0].id)
    [carried] = again.inputs
    assert carried.sha256 == edited.inputs[0].sha256 and carried.key != edited.inputs[0].key
    assert (again.derived_from, again.derivation) == (edited.id, "rerun")


def test_prompt_history_offers_only_the_users_own_prompts(app, studio) -> None:
    studio.settings = studio.settings.model_copy(update={"roles": {"example.com": "creator"}})
    app.secrets["auth"] = {"client_id": "mediagen"}  # sign-in configured
    app.user = {"is_logged_in": True, "email": "bo@example.com", "name": "Bo"}
    actions.submit_video(studio, "bo's harbour", owner="bo@example.com")
    actions.submit_video(studio, "bo's fox", owner="bo@example.com")
    actions.submit_video(studio, "dee's secret", owner="dee@example.com")
    app.run()
    history = app.selectbox(key="image-history")
    assert history.options == ["bo's fox", "bo's harbour"]
    history.set_value("bo's harbour").run()
    assert app.text_area(key="image-prompt").value == "bo's harbour"
    assert app.selectbox(key="image-history").value is None  # ready to pick again
    app.switch_page("pages/video_studio.py").run()
    assert app.selectbox(key="video-history").options == ["bo's fox", "bo's harbour"]


def test_nothing_is_offered_from_an_image_where_no_model_takes_one(app, studio) -> None:
    """With models that start from no image: no upload in the studios, and an image's details offer
    only "Run again with changes"; a link asking for more says why it cannot."""
    image = actions.generate_image(studio, "a lighthouse", params={"size": "256x256"})
    studio.catalog = Catalog(
        [dataclasses.replace(spec, image_inputs=()) for spec in studio.catalog.models()], studio.catalog.aliases
    )
    app.run()
    assert not app.get("file_uploader")
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{image.id}").click().run()
    offered = set(_links(app))
    assert "Run again with changes" in offered and not {"Make a video from this", "Edit", "Variations"} & offered
    assert not [p for p in app.get("popover") if p.proto.popover.label == "Use"]
    video_studio = _opened_at("pages/video_studio.py", **{"from": image.id, "as": "video"})
    [error] = _errors(video_studio)
    assert "**as**" in error and "no configured video model starts from an image" in error
