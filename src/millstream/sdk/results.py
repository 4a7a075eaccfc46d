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


@dataclass(frozen=True)
class RunResult:
    """A finished run: what ``dag.test()`` returns."""

    dag_id: str
    run_id: str
    state: RunState
    task_instances: list[TaskInstanceResult] = field(default_factory=list)

    def ti(self, task_id: str, map_index: int = -1) -> TaskInstanceResult:
        for t in self.task_instances:
            if t.task_id == task_id and t.map_index == map_index:
                return t
        raise KeyError(f"no task instance {task_id!r}[{map_index}] in run {self.run_id!r}")

    def states(self) -> dict[str, TaskState]:
        """task_id (``id[i]`` for mapped instances) -> state."""
        return {
            (t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"): t.state
            for t in self.task_instances
        }
