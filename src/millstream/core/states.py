"""Run and task-instance states, their groupings, and the one table of legal transitions.

Stored values are the enum values: never rename a member's value, add new ones instead.
Every state change in Millstream goes through :func:`check_transition`, so an illegal
move (say ``success -> running``) is a bug that raises rather than a row silently
overwritten.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"  # created, waiting for a slot under max_active_runs
    RUNNING = "running"  # task instances exist and are being worked
    SUCCESS = "success"  # finished; every leaf that counts succeeded or was skipped
    FAILED = "failed"  # finished; some leaf that counts failed or was upstream_failed


class TaskState(StrEnum):
    NONE = "none"  # exists, waiting for its upstream to decide
    SCHEDULED = "scheduled"  # dependencies met, waiting for an executor slot
    QUEUED = "queued"  # handed to an executor, not yet started by a worker
    RUNNING = "running"  # a worker is executing an attempt
    SUCCESS = "success"  # the attempt returned normally
    FAILED = "failed"  # the last attempt raised and no retries are left
    SKIPPED = "skipped"  # not run, by a branch, a short circuit, a trigger rule or an empty map
    UPSTREAM_FAILED = "upstream_failed"  # not run because an upstream failed
    UP_FOR_RETRY = "up_for_retry"  # an attempt failed; another starts after the retry delay
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # a sensor in reschedule mode waits for its next poke
    DEFERRED = "deferred"  # waiting on an external trigger without holding a worker
    REMOVED = "removed"  # the task or map index no longer exists in the DAG version


S = TaskState

#: States after which nothing more happens to an attempt unless a user clears it.
TERMINAL_TASK_STATES: frozenset[TaskState] = frozenset(
    {S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED}
)
#: States in which a task instance holds (or is about to hold) a worker slot.
ACTIVE_TASK_STATES: frozenset[TaskState] = frozenset({S.QUEUED, S.RUNNING})
#: States that still need the scheduler's attention before the run can finish.
UNFINISHED_TASK_STATES: frozenset[TaskState] = frozenset(TaskState) - TERMINAL_TASK_STATES
TERMINAL_RUN_STATES: frozenset[RunState] = frozenset({RunState.SUCCESS, RunState.FAILED})

# Clearing (a user asking for a rerun) may move any state back to NONE; that is listed
# separately so the table below reads as the normal life of an attempt.
_CLEARABLE = frozenset(TaskState)

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.NONE: frozenset({S.SCHEDULED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED, S.FAILED}),
    S.SCHEDULED: frozenset({S.QUEUED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED, S.FAILED}),
    S.QUEUED: frozenset({S.RUNNING, S.SCHEDULED, S.SUCCESS, S.FAILED, S.UP_FOR_RETRY}),
    S.RUNNING: frozenset({S.SUCCESS, S.FAILED, S.UP_FOR_RETRY, S.UP_FOR_RESCHEDULE, S.DEFERRED, S.SKIPPED}),
    S.UP_FOR_RETRY: frozenset({S.SCHEDULED, S.FAILED}),
    S.UP_FOR_RESCHEDULE: frozenset({S.SCHEDULED, S.FAILED}),
    # A trigger fired (scheduled, to resume), ended the task itself, failed or timed out.
    S.DEFERRED: frozenset({S.SCHEDULED, S.SUCCESS, S.FAILED, S.SKIPPED, S.UP_FOR_RETRY}),
    S.SUCCESS: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.UPSTREAM_FAILED: frozenset(),
    S.REMOVED: frozenset(),
}

#: Marking by hand (``tasks mark-success`` / ``mark-failed``) may set these from any state.
MARKABLE = frozenset({S.SUCCESS, S.FAILED, S.SKIPPED})


class IllegalTransition(RuntimeError):  # noqa: N818 - a bug, not a user error
    """A component tried a state change the table forbids: a bug in Millstream."""


def check_transition(old: TaskState, new: TaskState, *, reason: str = "") -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table.

    ``reason`` of ``"clear"`` and ``"mark"`` stand for the user operations that may
    reset or force any state.
    """
    if new in TRANSITIONS[old]:
        return
    if reason == "clear" and new is S.NONE and old in _CLEARABLE:
        return
    if reason == "mark" and new in MARKABLE:
        return
    raise IllegalTransition(f"task instance cannot go from {old} to {new} ({reason or 'no reason'})")
