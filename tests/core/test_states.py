import pytest

from millstream.core.states import (
    TERMINAL_TASK_STATES,
    TRANSITIONS,
    IllegalTransition,
    TaskState,
    check_transition,
)

S = TaskState


def test_every_state_has_a_row_and_terminal_states_have_no_exit():
    assert set(TRANSITIONS) == set(TaskState)
    for s in TERMINAL_TASK_STATES:
        assert TRANSITIONS[s] == frozenset()


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.SUCCESS, S.RUNNING), (S.FAILED, S.SCHEDULED), (S.NONE, S.RUNNING), (S.SKIPPED, S.SUCCESS)],
)
def test_illegal_transitions_raise(old, new):
    with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
        check_transition(old, new)


def test_clear_and_mark_are_the_only_ways_out_of_a_terminal_state():
    check_transition(S.SUCCESS, S.NONE, reason="clear")
    check_transition(S.FAILED, S.SUCCESS, reason="mark")
    with pytest.raises(IllegalTransition):
        check_transition(S.FAILED, S.RUNNING, reason="mark")


def test_stored_values_never_change():
    # Renaming a value would orphan rows in existing databases.
    assert [s.value for s in TaskState] == [
        "none",
        "scheduled",
        "queued",
        "running",
        "success",
        "failed",
        "skipped",
        "upstream_failed",
        "up_for_retry",
        "up_for_reschedule",
        "deferred",
        "removed",
    ]
