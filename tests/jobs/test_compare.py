"""Comparisons on a real database and real storage: one prompt on several columns, one failing
model spoiling nothing, an invalid column refusing the whole group, star, re-run, costs, who sees
what."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from mediagen.auth.roles import Role, User
from mediagen.config import ModelPrice
from mediagen.db.tables import Comparison, Job, JobInput
from mediagen.errors import Forbidden, InvalidInput, NotFound, ProviderError, RateLimited
from mediagen.jobs import compare
from mediagen.jobs.compare import Column
from mediagen.jobs.references import ImageRef
from mediagen.jobs.status import JobStatus
from mediagen.library.deletion import delete_jobs

from ..conftest import run_to_end, stored_files

ANA = User("ana@example.com", "Ana", Role.CREATOR)
BEA = User("bea@example.com", "Bea", Role.CREATOR)
REVIEWER = User("rev@example.com", "Rev", Role.REVIEWER)
ADMIN = User("boss@example.com", "Boss", Role.ADMIN)
SMALL = {"size": "256x256"}


def _count(studio, table) -> int:
    with studio.db.read() as session:
        return session.scalar(select(func.count()).select_from(table))


def _pair(studio, owner: str = ANA.email) -> compare.ComparisonView:
    group = compare.start(
        studio,
        "a red kite",
        [Column("local-image", {"seed": 1}), Column("local-image", {"seed": 2})],
        shared_params=SMALL,
        owner=owner,
    )
    return compare.wait(studio, group.id, 60)


def test_three_columns_one_failing_model_spoils_nothing(scripted) -> None:
    studio, provider = scripted
    provider.image_answer = ProviderError("the model is down", code="unavailable")
    group = compare.start(
        studio,
        "a lighthouse at dusk",
        [Column("local-image", {"seed": 1}), Column("scripted-image"), Column("local-image", {"seed": 2})],
        shared_params={"size": "256x256", "n": 1},
        owner=ANA.email,
    )
    view = compare.wait(studio, group.id, 60)
    assert view.finished and not view.all_succeeded
    assert [c.status for c in view.columns] == ["succeeded", "failed", "succeeded"]
    assert [c.model for c in view.columns] == ["local-image", "scripted-image", "local-image"]
    failed = view.columns[1]
    assert failed.job is not None and "the model is down" in (failed.error or "")
    assert failed.skipped == ["size"]  # a shared option its model does not take
    assert view.columns[0].skipped == []
    for column in (view.columns[0], view.columns[2]):
        job = column.job
        assert job is not None and job.comparison_id == group.id and job.comparison_column == column.index
        assert len(job.assets) == 1 and job.params["seed"] == column.params["seed"]
        with Image.open(studio.settings.media_dir / job.assets[0].key) as image:
            assert image.size == (256, 256)
        assert column.seconds is not None and column.seconds > 0
        assert column.estimated_cost is None  # no price table
    assert view.columns[0].job.assets[0].sha256 != view.columns[2].job.assets[0].sha256  # other seed, other image
    assert _count(studio, Job) == 3 and _count(studio, Comparison) == 1


@pytest.mark.parametrize(
    ("columns", "shared", "field"),
    [
        ([Column("local-image")], {}, "columns"),
        ([Column("local-image")] * 7, {}, "columns"),
        ([Column("local-image"), Column("dall-e-9")], {}, "columns[1].model"),
        ([Column("local-image"), Column("")], {}, "columns[1].model"),
        ([Column("local-image"), Column("local-video")], {}, "columns[1].model"),
        ([Column("local-image"), Column("local-image", {"colour": "red"})], {}, "columns[1].params.colour"),
        ([Column("local-image", {"size": "10x10"}), Column("local-image")], {}, "columns[0].params.size"),
        ([Column("local-image"), Column("local-image")], {"size": "10x10"}, "params.size"),
        ([Column("local-image"), Column("local-image")], {"colour": "red"}, "params.colour"),
    ],
)
def test_an_invalid_column_refuses_the_group_and_writes_nothing(studio, columns, shared, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        compare.start(studio, "a kite", columns, shared_params=shared, owner=ANA.email)
    assert caught.value.field == field
    assert _count(studio, Comparison) == 0 and _count(studio, Job) == 0
    assert stored_files(studio) == []


def test_the_kind_is_one_per_comparison_and_named(studio) -> None:
    with pytest.raises(InvalidInput, match=r"columns\[0\].model: local-image makes images.*one kind"):
        compare.start(studio, "waves", [Column("local-image"), Column("local-video")], kind="video")
    with pytest.raises(InvalidInput) as caught:
        compare.start(studio, "waves", [Column("local-video"), Column("local-video")], kind="sound")
    assert caught.value.field == "kind"


def test_video_columns_queue_and_finish_through_the_workers(studio) -> None:
    group = compare.start(
        studio,
        "waves at sunset",
        [Column("local-video", {"seed": 1}), Column("local-video", {"seed": 2, "duration": 2})],
        kind="video",
        shared_params={"duration": 1, "size": "640x360"},
        owner=ANA.email,
    )
    queued = compare.get(studio, group.id)
    assert [c.status for c in queued.columns] == ["queued", "queued"] and not queued.finished
    for column in queued.columns:
        run_to_end(studio, column.job.id)
    view = compare.get(studio, group.id)
    assert view.all_succeeded
    assert [c.job.params["duration"] for c in view.columns] == [1, 2]  # the column's own over the shared one


def test_estimated_costs_follow_the_price_table(settings) -> None:
    from mediagen.studio import Studio

    prices = {
        "local-image": ModelPrice(per_image={"512x512": 0.02, "*": 0.01}),
        "local-video": ModelPrice(per_second={"*": 0.1}),
    }
    studio = Studio.open(settings.model_copy(update={"prices": prices}))
    try:
        group = compare.start(
            studio,
            "a kite",
            [Column("local-image", {"size": "512x512", "n": 2}), Column("local-image", SMALL)],
            owner=ANA.email,
        )
        view = compare.wait(studio, group.id, 60)
        assert [c.estimated_cost for c in view.columns] == [0.04, 0.01]
        assert view.estimated_cost == 0.05
        videos = compare.start(
            studio,
            "waves",
            [Column("local-video", {"duration": 3}), Column("local-video", {"duration": 1})],
            kind="video",
            shared_params={"size": "640x360"},
        )
        queued = compare.get(studio, videos.id)  # estimated from what they ask for, before they run
        assert [c.estimated_cost for c in queued.columns] == [0.3, 0.1]
    finally:
        studio.close()


def test_star_marks_one_of_the_groups_jobs_for_its_owner_or_an_admin(studio) -> None:
    view = _pair(studio)
    other = _pair(studio)
    first = view.columns[0].job.id
    assert compare.star(studio, view.id, first, ANA).winner_job_id == first
    with pytest.raises(InvalidInput) as caught:
        compare.star(studio, view.id, other.columns[0].job.id, ANA)
    assert caught.value.field == "job_id"
    with pytest.raises(Forbidden, match="as reviewer you may change no comparisons"):
        compare.star(studio, view.id, first, REVIEWER)
    with pytest.raises(NotFound):
        compare.star(studio, view.id, first, BEA)
    second = view.columns[1].job.id
    assert compare.star(studio, view.id, second, ADMIN).winner_job_id == second
    assert compare.star(studio, view.id, None, ANA).winner_job_id is None
    compare.star(studio, view.id, first, ANA)
    delete_jobs(studio, [first], actor=ANA)  # a deleted winner shows none; the other column stays
    after = compare.get(studio, view.id)
    assert after.winner_job_id is None and after.columns[0].job is None and after.columns[1].job.id == second


def test_rerun_makes_a_new_job_in_the_same_column_and_the_view_shows_the_newest(studio) -> None:
    view = _pair(studio)
    before = view.columns[1].job
    job = compare.rerun_column(studio, view.id, 1, ANA, params={"seed": 9})
    assert job.comparison_id == view.id and job.comparison_column == 1 and job.id != before.id
    assert job.params["seed"] == 9 and job.params["size"] == "256x256"  # the column's options, one changed
    after = compare.wait(studio, view.id, 60)
    assert after.columns[1].job.id == job.id and after.columns[1].runs == 2
    assert after.columns[1].job.status == JobStatus.SUCCEEDED
    assert after.columns[0].runs == 1 and after.columns[1].params["seed"] == 9  # the next re-run starts here
    assert _count(studio, Job) == 3  # the earlier run is kept
    with pytest.raises(InvalidInput) as caught:
        compare.rerun_column(studio, view.id, 1, ANA, params={"size": "1x1"})
    assert caught.value.field == "params.size"
    with pytest.raises(InvalidInput) as caught:
        compare.rerun_column(studio, view.id, 2, ANA)
    assert caught.value.field == "column"
    with pytest.raises(Forbidden):
        compare.rerun_column(studio, view.id, 0, REVIEWER)
    with pytest.raises(NotFound):
        compare.rerun_column(studio, view.id, 0, BEA)
    assert _count(studio, Job) == 3


def test_creators_see_their_own_groups_reviewers_and_admins_all(studio) -> None:
    mine = _pair(studio, ANA.email)
    theirs = _pair(studio, BEA.email)
    assert compare.get(studio, mine.id, viewer=ANA).id == mine.id
    with pytest.raises(NotFound):
        compare.get(studio, theirs.id, viewer=ANA)
    assert compare.get(studio, theirs.id, viewer=REVIEWER).owner == BEA.email
    assert compare.get(studio, theirs.id, viewer=ADMIN).owner == BEA.email
    assert [v.id for v in compare.list_comparisons(studio, owner=ANA.email).comparisons] == [mine.id]


def test_list_comparisons_pages_newest_first(studio) -> None:
    made = [_pair(studio).id for _ in range(3)]
    first = compare.list_comparisons(studio, limit=2)
    assert [v.id for v in first.comparisons] == made[::-1][:2] and first.next_cursor
    second = compare.list_comparisons(studio, limit=2, after=first.next_cursor)
    assert [v.id for v in second.comparisons] == made[:1] and second.next_cursor is None
    assert all(len(v.columns) == 2 and all(c.job for c in v.columns) for v in first.comparisons)
    with pytest.raises(InvalidInput):
        compare.list_comparisons(studio, limit=0)


def _png(color: tuple[int, int, int], size: tuple[int, int] = (256, 256)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_a_shared_upload_goes_to_every_column_and_back_to_a_rerun(studio) -> None:
    upload = ImageRef(upload=io.BytesIO(_png((200, 30, 30))), name="red.png")
    group = compare.start(
        studio,
        "make it blue",
        [Column("local-image", {"seed": 1}), Column("local-image", {"seed": 2})],
        shared_params=SMALL,
        owner=ANA.email,
        references=[upload],
    )
    view = compare.wait(studio, group.id, 60)
    inputs = [c.job.inputs for c in view.columns]
    assert [len(i) for i in inputs] == [1, 1] and inputs[0][0].sha256 == inputs[1][0].sha256
    assert inputs[0][0].key != inputs[1][0].key  # each job keeps its own copy (deleting one keeps the other)
    job = compare.rerun_column(studio, group.id, 0, ANA)
    rerun = compare.wait(studio, group.id, 60).columns[0].job
    assert rerun.id == job.id and [i.sha256 for i in rerun.inputs] == [inputs[0][0].sha256]
    assert _count(studio, JobInput) == 3


def test_a_reference_a_column_cannot_take_refuses_the_group(studio) -> None:
    not_an_image = ImageRef(upload=io.BytesIO(b"just some text, not a picture"), name="notes.txt")
    with pytest.raises(InvalidInput) as caught:
        compare.start(studio, "x", [Column("local-image"), Column("local-image")], references=[not_an_image])
    assert caught.value.field == "image" and "columns[0]" in caught.value.problem
    assert _count(studio, Comparison) == 0 and _count(studio, Job) == 0 and stored_files(studio) == []


def test_image_columns_start_together_or_not_at_all_when_the_backlog_is_nearly_full(settings) -> None:
    from mediagen.studio import Studio

    studio = Studio.open(settings.model_copy(update={"image_concurrency": 1, "image_backlog": 2}))
    try:
        with pytest.raises(RateLimited, match="so 4 more do not fit"):
            compare.start(studio, "a kite", [Column("local-image", SMALL)] * 4)
        assert _count(studio, Comparison) == 0 and _count(studio, Job) == 0
        view = compare.wait(studio, compare.start(studio, "a kite", [Column("local-image", SMALL)] * 3).id, 60)
        assert view.all_succeeded
    finally:
        studio.close()
