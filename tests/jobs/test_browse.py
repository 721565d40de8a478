"""Gallery queries and history frames against a real SQLite database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from mediagen.admin import history
from mediagen.db.tables import Collection, CollectionAsset, Favourite, Job
from mediagen.errors import InvalidInput
from mediagen.jobs import actions, browse


def _age(studio, job_id: str, days: int) -> None:
    with studio.db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(created_at=datetime.now(UTC) - timedelta(days=days)))


def test_keyset_pages_cover_every_job_once_in_both_orders(studio) -> None:
    made = [actions.submit_video(studio, f"clip {i}").id for i in range(7)]
    for newest_first, expected in ((True, made[::-1]), (False, made)):
        seen, cursor = [], None
        while True:
            page = browse.page_of_jobs(studio, browse.JobFilters(), after=cursor, limit=3, newest_first=newest_first)
            seen += [j.id for j in page.jobs]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected


def test_filters_combine(studio) -> None:
    old = actions.generate_image(studio, "Old Fox 100%", params={"size": "256x256"})
    _age(studio, old.id, 10)
    new = actions.submit_video(studio, "new fox")
    everything = browse.JobFilters()
    assert browse.count_jobs(studio, everything) == 2
    assert browse.count_jobs(studio, browse.JobFilters(text="FOX")) == 2  # case-insensitive
    assert browse.count_jobs(studio, browse.JobFilters(text="100%")) == 1  # % is literal, not a wildcard
    assert browse.count_jobs(studio, browse.JobFilters(text="1_0")) == 0  # so is _
    today = datetime.now(UTC).date()
    recent = browse.JobFilters(since=today - timedelta(days=1), until=today)
    assert [j.id for j in browse.page_of_jobs(studio, recent).jobs] == [new.id]
    assert [j.id for j in browse.page_of_jobs(studio, browse.JobFilters(kinds=["image"])).jobs] == [old.id]
    assert browse.count_jobs(studio, browse.JobFilters(statuses=["queued"], models=["local-video"])) == 1
    assert browse.models_in_use(studio) == ["local-image", "local-video"]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        (browse.JobFilters(kinds=["audio"]), "kind"),
        (browse.JobFilters(statuses=["done"]), "status"),
        (browse.JobFilters(since=date(2026, 2, 1), until=date(2026, 1, 1)), "date range"),
    ],
)
def test_bad_filters_are_refused(studio, filters, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        browse.count_jobs(studio, filters)
    assert caught.value.field == field


def test_a_damaged_page_link_is_refused_clearly(studio) -> None:
    with pytest.raises(InvalidInput, match="page link is damaged"):
        browse.page_of_jobs(studio, browse.JobFilters(), after="not-a-cursor!")


def test_history_pages_csv_and_timeline(studio) -> None:
    image = actions.generate_image(studio, "one, with a comma", params={"size": "256x256"})
    video = actions.cancel_job(studio, actions.submit_video(studio, "two").id)
    queued = actions.submit_video(studio, "three")
    frame, cursor = history.history_page(studio, browse.JobFilters(), limit=2)
    assert list(frame.columns) == history.HISTORY_COLUMNS
    assert list(frame["id"]) == [queued.id, video.id] and cursor is not None
    older, end = history.history_page(studio, browse.JobFilters(), after=cursor, limit=2)
    assert list(older["id"]) == [image.id] and end is None
    assert older.iloc[0]["duration_s"] >= 0

    rows = list(csv.DictReader(io.StringIO(history.export_csv(studio, browse.JobFilters()).decode())))
    assert [r["id"] for r in rows] == [queued.id, video.id, image.id]
    assert rows[2]["prompt"] == "one, with a comma"
    canceled = history.export_csv(studio, browse.JobFilters(statuses=["canceled"])).decode()
    assert [r["id"] for r in csv.DictReader(io.StringIO(canceled))] == [video.id]

    timeline = history.events_frame(studio, video.id)
    assert list(timeline["status"]) == ["queued", "canceled"]
    assert timeline.iloc[-1]["message"] == "canceled by the user"


def test_prompt_search_uses_the_full_text_index_and_falls_back_to_substrings(studio) -> None:
    fox = actions.generate_image(studio, "A quick brown fox jumps", params={"size": "256x256"})
    crane = actions.generate_image(studio, "Crane over the harbour at dawn", params={"size": "256x256"})
    assert browse.has_full_text(studio.db)

    def found(typed: str, *, full_text: bool = True) -> list[str]:
        query = browse.JobFilters(text=typed).apply(select(Job.id), full_text=full_text)
        with studio.db.read() as session:
            return sorted(session.scalars(query))

    assert found("fox brown") == [fox.id]  # every word, any order
    assert found("harb DAWN") == [crane.id]  # word prefixes, any case
    assert found("fox harbour") == []
    assert found('" OR * NEAR(') == [] and found("\"'*^:") == []  # typed syntax is only words
    assert found("own fo", full_text=False) == [fox.id]  # the fallback matches inside words

    with studio.db.write() as session:  # the index follows deletes (trigger)
        session.execute(delete(Job).where(Job.id == fox.id))
    assert found("fox") == []
    assert browse.count_jobs(studio, browse.JobFilters(text="crane")) == 1


def test_filters_by_favourites_and_collections(studio) -> None:
    starred = actions.generate_image(studio, "starred", params={"size": "256x256"})
    grouped = actions.generate_image(studio, "grouped", params={"size": "256x256"})
    actions.generate_image(studio, "neither", params={"size": "256x256"})
    with studio.db.write() as session:
        session.add(Favourite(owner="ana", asset_id=starred.assets[0].id))
        collection = Collection(name="picks", owner="ana")
        session.add(collection)
        session.flush()
        session.add(CollectionAsset(collection_id=collection.id, asset_id=grouped.assets[0].id))
        collection_id = collection.id

    def ids(filters: browse.JobFilters) -> list[str]:
        return [job.id for job in browse.page_of_jobs(studio, filters).jobs]

    assert ids(browse.JobFilters(starred_by="ana")) == [starred.id]
    assert ids(browse.JobFilters(starred_by="bo")) == []
    assert ids(browse.JobFilters(collection_id=collection_id)) == [grouped.id]
    assert browse.count_jobs(studio, browse.JobFilters(collection_id=collection_id, starred_by="ana")) == 0


@pytest.mark.parametrize("newest_first", [True, False])
def test_full_text_pages_searched_window_by_window_match_the_whole_index(studio, monkeypatch, newest_first) -> None:
    """A search page looks among the next few jobs first, then more; whatever the window and
    whatever the insertion order, the pages hold exactly the matching jobs, in order, once."""
    made = []
    for i in range(40):
        words = ("fox" if i % 3 == 0 else "crane") + (" dawn" if i % 2 else "")
        made.append(actions.submit_video(studio, f"{words} {i}").id)
    for job_id, days in zip(made[::5], range(8), strict=False):  # some rows created out of rowid order
        _age(studio, job_id, days + 1)
    monkeypatch.setattr(browse, "SEARCH_WINDOW", 3)
    for typed in ("fox", "dawn fox", "cran", "nothing"):
        filters = browse.JobFilters(text=typed)
        everything = browse.seek(filters.apply(select(Job), full_text=True), None, newest_first=newest_first)
        with studio.db.read() as session:
            expected = [job.id for job in session.scalars(everything)]
        seen, cursor = [], None
        while True:
            page = browse.page_of_jobs(studio, filters, after=cursor, limit=4, newest_first=newest_first)
            seen += [job.id for job in page.jobs]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == expected, typed
        assert len(expected) == {"fox": 14, "dawn fox": 7, "cran": 26, "nothing": 0}[typed]
