"""What ``dag.test()`` returns.

These live in the authoring layer, not beside the engine that fills them in, so that
``DAG.test`` and the engine seam (:mod:`millstream.sdk.engine`) can name them without
importing the scheduler and store even for type checking. ``millstream.testing``
re-exports them under their old names. Only the engine imports this module at run time,
so ``import millstream`` does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from millstream.core.states import RunState, TaskState


@dataclass(frozen=True)
class TaskInstanceResult:
    task_id: str
    map_index: int
    state: TaskState
    try_number: int
    label: str | None
    log: str
    reason: str | None = None
    is_setup: bool = False
    is_teardown: bool = False
    # The last attempt's template fields as rendered (secrets masked), when it rendered any.
    rendered: dict[str, Any] | None = None
    # The last failed attempt's traceback, when the failure was an exception in the task.
    traceback: str | None = None


@dataclass(frozen=True)
class Failure:
    """One failed task instance: why, and where in the code when the task raised.

    ``reason`` is what the engine recorded (``attempt 2 failed: KeyError: 'x'``, or a
    reason that never reached the task's code, like a value ``.expand()`` cannot map);
    ``traceback`` is the full traceback of the last failed attempt, None when the task
    never ran.
    """

    task_id: str
    map_index: int
    try_number: int
    reason: str
    traceback: str | None

    def __str__(self) -> str:
        idx = f"[{self.map_index}]" if self.map_index >= 0 else ""
        head = f"{self.task_id}{idx} (try {self.try_number}): {self.reason}"
        return f"{head}\n{self.traceback.rstrip()}" if self.traceback else head


@dataclass(frozen=True)
class RunResult:
    """A finished run: what ``dag.test()`` returns."""

    dag_id: str
    run_id: str
    state: RunState
    task_instances: list[TaskInstanceResult] = field(default_factory=list)
    state_reason: str | None = None  # why the run ended so: the failed tasks and their errors

    def ti(self, task_id: str, map_index: int = -1) -> TaskInstanceResult:
        for t in self.task_instances:
            if t.task_id == task_id and t.map_index == map_index:
                return t
        raise KeyError(f"no task instance {task_id!r}[{map_index}] in run {self.run_id!r}")

    def failures(self) -> list[Failure]:
        """Every failed instance, in task order, with its reason and traceback: what to
        read first when a test run is red (``upstream_failed`` ones are its consequences
        and not listed)."""
        return [
            Failure(t.task_id, t.map_index, t.try_number, t.reason or "failed", t.traceback)
            for t in self.task_instances
            if t.state is TaskState.FAILED
        ]

    def states(self) -> dict[str, TaskState]:
        """task_id (``id[i]`` for mapped instances) -> state."""
        return {
            (t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"): t.state
            for t in self.task_instances
        }
