"""The gallery's list with a comparison as one entry (``one_per_comparison``) and the
"Comparisons only" filter, on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from mediagen.auth.roles import LOCAL_ADMIN
from mediagen.jobs import actions, browse, compare


def _all_pages(studio, filters: browse.JobFilters, *, newest_first: bool, grouped: bool) -> list[str]:
    seen, cursor = [], None
    while True:
        page = browse.page_of_jobs(
            studio, filters, after=cursor, limit=2, newest_first=newest_first, one_per_comparison=grouped
        )
        seen += [job.id for job in page.jobs]
        if (cursor := page.next_cursor) is None:
            return seen


def test_a_comparison_is_one_entry_where_its_first_column_was_made(studio) -> None:
    before = actions.submit_video(studio, "a lone clip before").id
    group = compare.start(
        studio, "waves at dusk", [compare.Column("local-video") for _ in range(3)], kind="video", owner="local"
    )
    after = actions.submit_video(studio, "a lone clip after").id
    rerun = compare.rerun_column(studio, group.id, 2, LOCAL_ADMIN)  # a later job of the same group
    first = compare.get(studio, group.id).jobs[0].id
    assert rerun.comparison_id == group.id

    everything = browse.JobFilters()
    for newest_first, expected in ((True, [after, first, before]), (False, [before, first, after])):
        assert _all_pages(studio, everything, newest_first=newest_first, grouped=True) == expected
    assert browse.count_jobs(studio, everything, one_per_comparison=True) == 3
    assert browse.count_jobs(studio, everything) == 6  # each column's jobs, re-run included
    assert len(_all_pages(studio, everything, newest_first=True, grouped=False)) == 6

    # Prompt search (the full-text index on both databases) keeps the grouping.
    waves = browse.JobFilters(text="wave dusk")
    assert _all_pages(studio, waves, newest_first=True, grouped=True) == [first]
    assert browse.count_jobs(studio, waves, one_per_comparison=True) == 1

    only = browse.JobFilters(comparisons_only=True)
    assert _all_pages(studio, only, newest_first=True, grouped=True) == [first]
    assert browse.count_jobs(studio, only) == 4
    assert browse.JobFilters.from_json(only.to_json()).comparisons_only  # a zip link of the filter keeps it


def test_filters_that_pick_among_columns_show_them_apart() -> None:
    assert not browse.JobFilters(text="fox", kinds=["image"], comparisons_only=True).picks_jobs
    for picking in (
        browse.JobFilters(models=["local-image"]),
        browse.JobFilters(statuses=["failed"]),
        browse.JobFilters(starred_by="ana@example.com"),
        browse.JobFilters(collection_id=0),
    ):
        assert picking.picks_jobs, picking
