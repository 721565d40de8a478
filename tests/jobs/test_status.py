import pytest

from mediagen.errors import IllegalTransition
from mediagen.jobs.status import FINAL_STATUSES, JobStatus, allowed_next, check_transition


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("queued", "running"),
        ("queued", "canceled"),
        ("queued", "failed"),
        ("queued", "timed_out"),
        ("running", "running"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "canceled"),
        ("running", "timed_out"),
    ],
)
def test_allowed_transitions(current: str, new: str) -> None:
    assert check_transition(current, new) == JobStatus(new)


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("new", list(JobStatus))
def test_final_states_never_change(final: JobStatus, new: JobStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"a {final.value} job cannot become {new.value}"):
        check_transition(final, new)


def test_queued_cannot_succeed_without_running() -> None:
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        check_transition("queued", "paused")


def test_only_final_statuses_have_no_successors() -> None:
    for status in JobStatus:
        assert (not allowed_next(status)) == status.is_final
