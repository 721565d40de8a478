"""A user's recent prompts, read from the jobs table."""

from __future__ import annotations

import pytest

from mediagen.errors import InvalidInput
from mediagen.jobs import actions, prompt_history
from mediagen.jobs.prompt_history import recent_prompts


def test_recent_prompts_are_the_owners_own_distinct_and_newest_first(studio) -> None:
    for prompt in ["harbour at dawn", "red fox", "harbour at dawn", "blue whale"]:
        actions.submit_video(studio, prompt, owner="ana@example.com")
    actions.submit_video(studio, "someone else's idea", owner="bo@example.com")
    assert recent_prompts(studio, "ana@example.com") == ["blue whale", "harbour at dawn", "red fox"]
    assert recent_prompts(studio, "bo@example.com") == ["someone else's idea"]
    assert recent_prompts(studio, "nobody@example.com") == []


def test_a_prompt_run_many_times_does_not_hide_the_others(studio, monkeypatch) -> None:
    """The jobs are read a batch at a time: many runs of one prompt span several batches, and the
    older prompts beyond them are still found, up to the limit."""
    monkeypatch.setattr(prompt_history, "BATCH", 3)
    for prompt in ["first", "second", *["again"] * 7, "third"]:
        actions.submit_video(studio, prompt)
    assert recent_prompts(studio, "local") == ["third", "again", "second", "first"]
    assert recent_prompts(studio, "local", limit=2) == ["third", "again"]


def test_the_limit_is_checked(studio) -> None:
    with pytest.raises(InvalidInput) as refused:
        recent_prompts(studio, "local", limit=0)
    assert refused.value.field == "limit"
