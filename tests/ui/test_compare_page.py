"""The Compare page and comparisons in the gallery, under Streamlit's AppTest: a real database
(SQLite and PostgreSQL), real local storage and the local provider generating for real."""

from __future__ import annotations

from typing import Any

import pytest

from mediagen.auth.roles import LOCAL_ADMIN
from mediagen.config import ModelPrice
from mediagen.db.tables import Comparison, Job
from mediagen.jobs import compare, queries
from mediagen.jobs.status import JobStatus

from ..conftest import run_to_end, stored_files
from ..support.markdown import WORD_JOINER, shown

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database


def _texts(app: Any) -> list[str]:
    return [t.value for t in app.get("text")]


def _errors(app: Any) -> list[str]:
    return [_read(e.value) for e in app.error]


def _read(markdown: str) -> str:
    return shown(markdown)[0].replace(WORD_JOINER, "").strip()


def _captions(app: Any) -> list[str]:
    return [_read(c.value) for c in app.caption]


def _count(studio, table) -> int:
    with studio.db.read() as session:
        return session.query(table).count()


def _finished(studio, comparison_id: str, limit_s: float = 60) -> compare.ComparisonView:
    view = compare.wait(studio, comparison_id, limit_s)
    assert view.finished, [c.status for c in view.columns]
    return view


def _compare_page(app: Any) -> Any:
    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Compare"
    return app


def test_three_columns_start_at_once_and_fill_in_side_by_side(app, studio) -> None:
    studio.settings = studio.settings.model_copy(update={"prices": {"local-image": ModelPrice(per_image={"*": 0.02})}})
    _compare_page(app)
    assert len(app.selectbox) >= 3  # three columns to begin with, each a model picker
    app.text_area(key="cmp-prompt").input("a red fox in fresh snow")
    app.text_input(key="cmp-size").input("256x256")
    for column_id, seed in enumerate((1, 2, 3)):
        app.number_input(key=f"cmp-image-{column_id}-local-image-seed").set_value(seed)
    app.button(key="cmp-start").click().run()
    assert not app.exception and _errors(app) == [], _errors(app)

    [group] = compare.list_comparisons(studio).comparisons
    comparison_id = group.id
    assert app.query_params["comparison"] in (comparison_id, [comparison_id])  # opened at its own URL
    view = _finished(studio, comparison_id)
    assert [c.params["seed"] for c in view.columns] == [1, 2, 3]
    assert all(c.status == JobStatus.SUCCEEDED for c in view.columns)
    app.run()
    assert not app.exception, app.exception
    images = [url for image in app.get("image") for url in image.value]
    assert images == [studio.storage.url(c.job.assets[0].key) for c in view.columns]  # full size, in order
    captions = _captions(app)
    assert sum("est. $0.02" in c for c in captions) == 3, captions
    assert f"/compare?comparison={comparison_id}" in [c.value for c in app.code]  # the link to share
    assert "a red fox in fresh snow" in _texts(app)


def test_a_bad_column_refuses_the_whole_group_naming_the_field(app, studio) -> None:
    _compare_page(app)
    app.button(key="cmp-start").click().run()
    assert any("prompt" in e and "empty" in e for e in _errors(app)), _errors(app)
    app.text_area(key="cmp-prompt").input("a lighthouse")
    app.text_input(key="cmp-size").input("9x9")
    app.button(key="cmp-start").click().run()
    [message] = _errors(app)
    assert "Nothing was compared" in message and "size" in message and "9x9" in message
    assert _count(studio, Comparison) == 0 and _count(studio, Job) == 0
    assert not [key for key in stored_files(studio) if not key.startswith(".")]
    assert app.text_area(key="cmp-prompt").value == "a lighthouse"  # nothing typed is lost


def test_columns_are_added_and_removed_between_two_and_six(app) -> None:
    _compare_page(app)
    for _ in range(3):
        app.button(key="cmp-add").click().run()
    assert next(b for b in app.button if b.key == "cmp-add").disabled  # six: no more
    assert len([b for b in app.button if b.key and b.key.endswith("-remove")]) == 6
    app.button(key="cmp-image-1-remove").click().run()
    removes = [b for b in app.button if b.key and b.key.endswith("-remove")]
    assert [b.key for b in removes] == [f"cmp-image-{i}-remove" for i in (0, 2, 3, 4, 5)]
    for key in ("cmp-image-0-remove", "cmp-image-2-remove", "cmp-image-3-remove"):
        app.button(key=key).click().run()
    removes = [b for b in app.button if b.key and b.key.endswith("-remove")]
    assert len(removes) == 2 and all(b.disabled for b in removes)  # two at least


def test_star_the_winner_and_rerun_a_column(app, studio) -> None:
    group = compare.start(
        studio,
        "two lighthouses",
        [compare.Column("local-image", {"seed": 1}), compare.Column("local-image", {"seed": 2})],
        shared_params={"size": "256x256"},
    )
    first = _finished(studio, group.id)
    app.query_params["comparison"] = group.id
    _compare_page(app)
    winner = first.columns[1].job
    app.button(key=f"cmp-{group.id}-1-star").click().run()
    assert compare.get(studio, group.id).winner_job_id == winner.id
    assert any("Winner" in m.value for m in app.markdown)
    app.button(key=f"cmp-{group.id}-0-rerun").click().run()
    assert not app.exception, app.exception
    again = _finished(studio, group.id)
    assert again.columns[0].runs == 2 and again.columns[0].job.id != first.columns[0].job.id
    assert again.winner_job_id == winner.id  # the other column's star stays
    app.run()
    assert f"job {again.columns[0].job.id} · run 2" in _captions(app)


def test_gallery_shows_a_comparison_as_one_card_that_opens_it(app, studio) -> None:
    group = compare.start(
        studio,
        "a harbour at night",
        [compare.Column("local-image", {"seed": 1}), compare.Column("local-image", {"seed": 5})],
        shared_params={"size": "256x256"},
    )
    view = _finished(studio, group.id)
    compare.star(studio, group.id, view.columns[0].job.id, LOCAL_ADMIN)
    alone = queries.get_job(studio, compare.get(studio, group.id).columns[1].job.id)
    app.switch_page("pages/gallery.py").run()
    assert not app.exception, app.exception
    keys = _keys(app)
    assert f"comparison-card-{group.id}" in keys
    assert not any(key.startswith("card-") and key.endswith(alone.id) for key in keys)  # no card per column
    assert _texts(app).count("a harbour at night") == 1
    links = [link for link in app.get("page_link") if link.proto.query_string]
    assert any(f"comparison={group.id}" in link.proto.query_string for link in links)
    # Filtering by model picks among the columns: each is then a card, linked to its group.
    app.toggle(key="g-comparisons").set_value(True).run()
    assert _texts(app).count("a harbour at night") == 1
    app.multiselect(key="g-model").select("local-image").run()
    assert _texts(app).count("a harbour at night") == 2
    assert {f"card-{alone.id}", f"card-comparison-{alone.id}"} <= _keys(app)


def _keys(app: Any) -> set[str]:
    """Every element key in the tree (containers carry theirs as a class)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        key = getattr(node, "key", None)
        if isinstance(key, str):
            found.add(key)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(app._tree)
    return found


def test_reviewers_do_not_get_the_page_but_may_open_a_shared_group(app, studio) -> None:
    group = compare.start(
        studio,
        "shared with review",
        [compare.Column("local-image"), compare.Column("local-image", {"seed": 3})],
        shared_params={"size": "256x256"},
    )
    _finished(studio, group.id)
    studio.settings = studio.settings.model_copy(update={"roles": {"review.example.org": "reviewer"}})
    app.secrets["auth"] = {"client_id": "mediagen"}
    app.user = {"is_logged_in": True, "email": "cy@review.example.org", "name": "Cy"}
    app.switch_page("pages/compare.py").run()
    assert any("Compare is not open to you" in w.value for w in app.warning)
    assert not app.get("text_area")
    app.query_params["comparison"] = group.id
    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    assert "shared with review" in _texts(app)
    assert not app.get("text_area")  # no form: reviewers do not compare
    assert not [b for b in app.button if b.key and (b.key.endswith("-star") or b.key.endswith("-rerun"))]
    assert "Compare" not in [link.proto.label for link in app.sidebar.get("page_link")]


def test_video_columns_show_live_progress_then_play(app, studio) -> None:
    """A group still running is drawn in a fragment that reads the database again and again;
    once every column has ended, each plays its video."""
    group = compare.start(
        studio,
        "slow waves",
        [compare.Column("local-video"), compare.Column("local-video")],
        kind="video",
        shared_params={"duration": 1, "size": "160x96"},
    )
    app.query_params["comparison"] = group.id
    _compare_page(app)
    assert len(app.get("progress")) == 2
    assert [p.proto.text for p in app.get("progress")] == ["Waiting for the provider"] * 2
    for column in compare.get(studio, group.id).columns:
        assert run_to_end(studio, column.job.id).status == JobStatus.SUCCEEDED
    app.run()
    assert not app.get("progress")
    players = [h.proto.body for h in app.get("html")]
    for column in compare.get(studio, group.id).columns:
        assert sum(studio.storage.url(column.job.assets[0].key) in body for body in players) == 1


def test_a_second_press_right_after_the_first_starts_nothing(app, studio) -> None:
    """The studios' guard against double clicks: the same request again within a moment is the
    second press of a double click."""
    _compare_page(app)
    app.text_area(key="cmp-prompt").input("one press, one group")
    app.text_input(key="cmp-size").input("256x256")
    app.button(key="cmp-start").click().run()
    app.button(key="cmp-start").click().run()
    [group] = compare.list_comparisons(studio).comparisons
    assert any("Pressed twice" in info.value and group.id in info.value for info in app.info)
    _finished(studio, group.id)
    assert _count(studio, Comparison) == 1 and _count(studio, Job) == 3
