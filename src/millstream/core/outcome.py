"""How a finished run ends, and the sentence that says why.

A run's state is decided by its leaves, but a person reading "failed" wants the task
that broke and its error, not the downstream task that was only ``upstream_failed``
because of it. So the reason names the failed tasks first, with their errors, and the
leaves only when no task failed by itself (a leaf that could not start, say).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from millstream.core.model import DagSpec
from millstream.core.states import RunState, TaskState

S = TaskState

#: How many failed tasks the reason names, and how much of each error it quotes.
MAX_NAMED = 5
MAX_ERROR = 300

SUCCESS_REASON = "all leaf tasks succeeded or were skipped"


def decide_run_state(
    spec: DagSpec, counts: Mapping[str, Counter[TaskState]], fail_reasons: Mapping[str, str]
) -> tuple[RunState, str]:
    """A finished run fails when a leaf task failed or was upstream_failed.

    Teardowns do not count (a failed cleanup leaves successful work successful), unless
    they say ``on_failure_fail_dagrun``; the work before a teardown counts as a leaf.
    ``fail_reasons``: task id -> why its first instance failed, where known.
    """
    bad_leaves = []
    for task in spec.tasks:
        c = counts[task.task_id]
        if task.is_teardown:
            if task.on_failure_fail_dagrun and c[S.FAILED]:
                bad_leaves.append(task.task_id)
            continue
        if any(not spec.task(d).is_teardown for d in spec.downstream(task.task_id)):
            continue
        if c[S.FAILED] or c[S.UPSTREAM_FAILED]:
            bad_leaves.append(task.task_id)
    if not bad_leaves:
        return RunState.SUCCESS, SUCCESS_REASON
    failed = [
        t.task_id
        for t in spec.tasks
        if counts[t.task_id][S.FAILED] and (not t.is_teardown or t.on_failure_fail_dagrun)
    ]
    if not failed:
        return RunState.FAILED, f"leaf task(s) upstream_failed: {', '.join(bad_leaves)}"
    parts = [_describe(tid, counts[tid], fail_reasons.get(tid)) for tid in failed[:MAX_NAMED]]
    more = f"; and {len(failed) - MAX_NAMED} more failed task(s)" if len(failed) > MAX_NAMED else ""
    return RunState.FAILED, "failed: " + "; ".join(parts) + more


def _describe(task_id: str, c: Counter[TaskState], reason: str | None) -> str:
    total = sum(c.values())
    where = f" ({c[S.FAILED]} of {total} instances)" if total > 1 else ""
    if not reason:
        return task_id + where
    if len(reason) > MAX_ERROR:
        reason = reason[: MAX_ERROR - 1] + "…"
    return f"{task_id}{where} ({reason})"
