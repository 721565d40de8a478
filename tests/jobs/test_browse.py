"""Gallery queries and history frames against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, insert, inspect, select, text, update

from mediagen.admin import history
from mediagen.config import Settings
from mediagen.db.engine import Database, alembic_config
from mediagen.db.tables import Collection, CollectionAsset, Favourite, Job
from mediagen.errors import InvalidInput
from mediagen.jobs import actions, browse
from mediagen.studio import Studio

from ..conftest import fresh_database


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


# Prompts with what full-text search must get right: accents and case, compound words (e-mail,
# URL, version, hyphen, underscore, apostrophe), non-Latin scripts, and query syntax of both
# databases inside the prompts themselves.
PROMPTS = [
    "A quick brown fox jumps over the lazy dog",
    "Crane over the harbour at dawn",
    "Café crème brûlée, close-up",
    "CAFÉ sign in neon, rainy night",
    "naïve art: Ñandú in the Pampas",
    "e-mail ana@example.com on a postcard",
    "https://example.org/a/b.png as a poster",
    "release party for v2.0.1",
    "don't stop — keep going",
    "foo_bar snake case",
    "ΣΟΦΊΑ in Greek letters; Привет, мир",
    "東京タワー at night",
    "straße in Berlin, Łódź old town",
    "Việt Nam rice fields",
    'quoted "words" OR NEAR(fox crane) AND * stars',
    "100% cotton fox",
    "İstanbul at dawn",
    "fox:* & crane | !dawn",
    "हिन्दी कविता",
]
# Every query both databases must answer alike, with the jobs it must find (as indexes into
# PROMPTS), so that both being wrong the same way fails too.
SEARCHES = {
    "fox": [0, 14, 15, 17],
    "FOX": [0, 14, 15, 17],
    "fo": [0, 7, 9, 14, 15, 17],
    "brown fox": [0],
    "fox brown": [0],
    "jumps QUICK": [0],
    "harb DAWN": [1],
    "dawn": [1, 16, 17],
    "cafe": [2, 3],
    "CAFÉ": [2, 3],
    "creme brulee": [2],
    "brûl crè": [2],
    "close up": [2],
    "close-up": [2],
    "NAIVE nandu": [4],
    "ana@example.com": [5],
    "example": [5, 6],
    "com": [5],
    "png poster": [6],
    "v2": [7],
    "2.0.1": [],  # every word a prefix: no word starts with "2"
    "v2.0.1": [7],
    "don't": [8],
    "stop keep": [8],
    "bar": [9],
    "foo_bar": [9],
    "σοφία": [10],
    "ΣΟΦΊΑ": [10],
    "σοφια": [],  # unicode61 keeps accents on Greek letters, and so does PostgreSQL here
    "привет МИР": [10],
    "東京": [11],
    "東京タワー": [11],
    "タワー": [],  # no segmentation of Japanese: a word starts only where the run does
    "straße": [12],
    "strasse": [],
    "lodz": [],  # ł is a letter of its own to both, not an l with an accent
    "Łódź": [12],
    "viet nam": [13],
    "Việt": [13],
    "istanbul": [16],
    "100%": [15],
    "हिन्दी": [18],  # vowel signs and virama are marks inside the word
    "हिन": [18],
    "कविता": [18],
    # Query syntax of FTS5 and of tsquery is only ever words (or nothing) here.
    '"a" OR b*': [6],  # the words a, or (org) and b
    "NEAR(": [14],
    "near fox": [14],
    "or": [6, 14],
    "crane | dawn": [1, 17],
    "fox & !crane": [14, 17],
    "'fox':*": [0, 14, 15, 17],
    "prompt:fox": [],
    "fox AND": [14],
    "-fox ^crane": [14, 17],
    # Nothing but punctuation: no words to search, so the fallback's substring match.
    ":*": [17],
    "&|!": [],
    "*": [14, 17],
    "'": [8],
    '"': [14],
    "\\": [],
}


IDS = [f"job{index:02d}" for index in range(len(PROMPTS))]


def _load(studio: Studio, start: datetime) -> None:
    """The same jobs in any studio: fixed ids and creation times (three a minute, so the id
    breaks ties), one prompt each, images and videos; inserted oldest first, as the app does."""
    rows = []
    for index, (job_id, prompt) in enumerate(zip(IDS, PROMPTS, strict=True)):
        created = start + timedelta(minutes=index // 3)
        rows.append(
            {
                "id": job_id,
                "kind": "image" if index % 2 else "video",
                "status": "succeeded",
                "provider": "local",
                "model": "local-image" if index % 2 else "local-video",
                "prompt": prompt,
                "params": {},
                "owner": "local",
                "progress": 100,
                "attempt": 1,
                "transient_errors": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
    with studio.db.write() as session:
        session.execute(insert(Job), rows)


def _pages(studio: Studio, filters: browse.JobFilters, newest_first: bool) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = browse.page_of_jobs(studio, filters, after=cursor, limit=3, newest_first=newest_first)
        pages.append([job.id for job in page.jobs])
        if (cursor := page.next_cursor) is None:
            return pages


@pytest.fixture
def both_studios(tmp_path, request) -> Iterator[dict[str, Studio]]:
    """A SQLite studio and a PostgreSQL studio holding the same jobs."""
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with fresh_database(request, "postgresql") as url:
        opened = {
            "sqlite": Studio.open(Settings(data_dir=tmp_path / "sqlite")),
            "postgresql": Studio.open(Settings(data_dir=tmp_path / "postgresql", database_url=url)),
        }
        try:
            for studio in opened.values():
                assert browse.has_full_text(studio.db)
                _load(studio, start)
            yield opened
        finally:
            for studio in opened.values():
                studio.close()


def test_search_finds_the_same_jobs_in_the_same_pages_on_sqlite_and_postgresql(both_studios) -> None:
    sqlite, postgresql = both_studios["sqlite"], both_studios["postgresql"]
    for typed, expected in SEARCHES.items():
        filters = browse.JobFilters(text=typed)
        wanted = sorted(IDS[index] for index in expected)
        for studio in (sqlite, postgresql):
            found = sorted(job for page in _pages(studio, filters, True) for job in page)
            assert found == wanted, (studio.db.engine.dialect.name, typed)
            assert browse.count_jobs(studio, filters) == len(expected), (studio.db.engine.dialect.name, typed)
        for newest_first in (True, False):
            assert _pages(sqlite, filters, newest_first) == _pages(postgresql, filters, newest_first), typed
    images = browse.JobFilters(text="fox", kinds=["image"])  # with another filter
    assert _pages(sqlite, images, True) == _pages(postgresql, images, True) == [[IDS[17], IDS[15]]]


@pytest.mark.parametrize("newest_first", [True, False])
def test_keyset_pages_are_the_same_on_sqlite_and_postgresql_through_tied_creation_times(
    both_studios, newest_first
) -> None:
    everything = browse.JobFilters()
    pages = {name: _pages(studio, everything, newest_first) for name, studio in both_studios.items()}
    assert pages["sqlite"] == pages["postgresql"]
    ordered = [job for page in pages["sqlite"] for job in page]
    expected = sorted(ordered, key=lambda job: (int(job[3:]) // 3, job), reverse=newest_first)
    assert ordered == expected and len(set(ordered)) == len(PROMPTS)


def test_the_search_migration_upgrades_a_filled_database_and_downgrades(settings) -> None:
    """Migration 0009 on either database: jobs made before it are found after it, and a
    downgrade takes the PostgreSQL column, index and function away again."""
    db = Database(settings.resolved_database_url)
    db.upgrade()
    command.downgrade(alembic_config(db.engine), "0008")
    studio = Studio.open(settings, migrate=False)
    try:
        # A job as revision 0008 wrote it: only the columns that schema has.
        with db.engine.begin() as connection:
            made_id = connection.execute(
                insert(Job.__table__)
                .values(kind="video", provider="local", model="local-video", prompt="Lighthouse in the storm")
                .returning(Job.__table__.c.id)
            ).scalar_one()
        columns = {column["name"] for column in inspect(db.engine).get_columns("jobs")}
        assert "prompt_words" not in columns
        if not db.is_sqlite:
            with db.read() as session:
                assert session.scalar(text("SELECT to_regprocedure('fold_for_search(text)')")) is None
        db.upgrade()
        assert db.revision() == "0010"
        assert [job.id for job in browse.page_of_jobs(studio, browse.JobFilters(text="LIGHT storm")).jobs] == [made_id]
    finally:
        studio.close()
        db.dispose()


def test_only_words_of_what_was_typed_reach_a_full_text_query() -> None:
    assert browse.search_words('"a" OR b* NEAR(c, 2) prompt:d') == ["a", "OR", "b", "NEAR", "c", "2", "prompt", "d"]
    assert browse.search_words("fox:* & !crane | 'dawn'") == ["fox", "crane", "dawn"]
    assert browse.search_words("e\u0301te\u0301 d'e\u0301te\u0301") == ["été", "d", "été"]  # accents typed apart
    assert browse.search_words("\u0301 ½ x²_y") == ["½", "x²", "y"]  # a word starts with no mark
    assert browse.search_words(" ".join(f"w{i}" for i in range(40))) == [f"w{i}" for i in range(16)]
