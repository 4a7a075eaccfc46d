"""The only place where scheduling decisions about a run are made.

A :class:`RunPlanner` holds the states of one run's task instances in memory and turns
what happened (an attempt started, succeeded, failed, a retry came due) into commands
for the shell to persist: set these instances to that state, expand this mapped task,
finish the run. It does no I/O and reads no clock, so the same events always give the
same commands.

Work is incremental: a finished task instance re-evaluates only the tasks directly
downstream of it, using per-task state counters, so the cost per event does not grow
with the size of the run (a fan-in over 100 000 mapped instances costs O(1) per
finished instance, not O(N)).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from millstream.core.model import UNMAPPED, DagSpec, TaskSpec
from millstream.core.readiness import Outcome, UpstreamCounts, Verdict, evaluate
from millstream.core.retry import retry_delay
from millstream.core.states import (
    TERMINAL_TASK_STATES,
    RunState,
    TaskState,
    check_transition,
)

S = TaskState

#: Default cap on the number of instances one mapped task may expand into.
DEFAULT_MAX_MAP_LENGTH = 100_000


@dataclass(frozen=True)
class Output:
    """What scheduling needs to know about a succeeded task's return value."""

    length: int | None = None  # len() when the value is a list, tuple or dict
    type_name: str = "NoneType"
    key_lengths: Mapping[str, int | None] = field(default_factory=dict)  # multiple_outputs
    follow: tuple[str, ...] | None = None  # a branch task's choice
    short_circuit: bool = False  # a short_circuit task returned a falsy value


@dataclass(frozen=True)
class SetStates:
    """Move these instances of one task to ``state``; ``retry_at`` for ``up_for_retry``."""

    task_id: str
    map_indexes: Sequence[int]
    state: TaskState
    reason: str
    retry_at: datetime | None = None


@dataclass(frozen=True)
class ExpandTask:
    """Replace the unexpanded placeholder of a mapped task by ``length`` instances."""

    task_id: str
    length: int
    state: TaskState
    reason: str


@dataclass(frozen=True)
class FinishRun:
    state: RunState
    reason: str


Command = SetStates | ExpandTask | FinishRun


class RunPlanner:
    """Decides the next states of one DAG run's task instances."""

    def __init__(
        self,
        spec: DagSpec,
        task_instances: Iterable[tuple[str, int, TaskState]] | None = None,
        *,
        outputs: Mapping[str, Output] | None = None,
        retry_at: Mapping[tuple[str, int], datetime] | None = None,
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
    ) -> None:
        self.spec = spec
        self.max_map_length = max_map_length
        self.states: dict[str, dict[int, TaskState]] = {t.task_id: {} for t in spec.tasks}
        self.counts: dict[str, Counter[TaskState]] = {t.task_id: Counter() for t in spec.tasks}
        self.outputs: dict[str, Output] = dict(outputs or {})
        self.retry_at: dict[tuple[str, int], datetime] = dict(retry_at or {})
        self.unfinished = 0
        self.finished: RunState | None = None
        rows = task_instances if task_instances is not None else self.initial_task_instances()
        for task_id, map_index, state in rows:
            if task_id not in self.states:
                continue  # a task removed from the DAG; the store marks it removed
            self.states[task_id][map_index] = state
            self.counts[task_id][state] += 1
            if state not in TERMINAL_TASK_STATES:
                self.unfinished += 1
        self._setup_ids = {t.task_id for t in spec.tasks if t.is_setup}

    # -- construction -------------------------------------------------------------------

    def initial_task_instances(self) -> list[tuple[str, int, TaskState]]:
        """One instance per task; mapped tasks start as one unexpanded placeholder."""
        return [(t.task_id, UNMAPPED, S.NONE) for t in self.spec.tasks]

    # -- queries ------------------------------------------------------------------------

    def state_of(self, task_id: str, map_index: int = UNMAPPED) -> TaskState:
        return self.states[task_id][map_index]

    def upstream_counts(self, task: TaskSpec) -> UpstreamCounts:
        total = success = skipped = failed = upstream_failed = removed = 0
        setup_total = setup_success = setup_skipped = 0
        for up in task.upstream:
            c = self.counts[up]
            n = len(self.states[up])
            total += n
            success += c[S.SUCCESS]
            skipped += c[S.SKIPPED]
            failed += c[S.FAILED]
            upstream_failed += c[S.UPSTREAM_FAILED]
            removed += c[S.REMOVED]
            if up in self._setup_ids:
                setup_total += n
                setup_success += c[S.SUCCESS]
                setup_skipped += c[S.SKIPPED]
        return UpstreamCounts(
            total=total,
            success=success,
            skipped=skipped,
            failed=failed,
            upstream_failed=upstream_failed,
            removed=removed,
            setup_total=setup_total,
            setup_success=setup_success,
            setup_skipped=setup_skipped,
        )

    def verdict(self, task_id: str) -> Verdict:
        """Why a task waits (or not): what ``tasks states`` shows next to it."""
        task = self.spec.task(task_id)
        return evaluate(task.trigger_rule, self.upstream_counts(task))

    def next_retry_at(self) -> datetime | None:
        return min(self.retry_at.values(), default=None)

    def active_count(self, task_id: str) -> int:
        c = self.counts[task_id]
        return c[S.QUEUED] + c[S.RUNNING]

    # -- events -------------------------------------------------------------------------

    def start(self) -> list[Command]:
        """Evaluate every task once: roots become scheduled, ``always`` tasks too."""
        out: list[Command] = []
        self._evaluate_all((t.task_id for t in self.spec.tasks), out)
        self._check_finished(out)
        return out

    def record(
        self,
        task_id: str,
        map_index: int,
        state: TaskState,
        *,
        output: Output | None = None,
        reason: str = "",
    ) -> list[Command]:
        """Apply a state change that happened outside the planner (a worker's report).

        Raises :class:`~millstream.core.states.IllegalTransition` on an impossible move.
        """
        out: list[Command] = []
        self._set(task_id, [map_index], state, reason or f"reported {state}", out)
        if state is S.SUCCESS and output is not None:
            self.outputs[task_id] = output
            self._apply_skips(task_id, output, out)
        self._settle([task_id] if state in TERMINAL_TASK_STATES else [], out)
        return out

    def attempt_failed(
        self, task_id: str, map_index: int, try_number: int, now: datetime, error: str = ""
    ) -> list[Command]:
        """An attempt raised: retry after the task's delay if tries are left, else fail."""
        task = self.spec.task(task_id)
        out: list[Command] = []
        if try_number <= task.retries:
            delay = retry_delay(
                base=task.retry_delay,
                try_number=try_number,
                backoff=task.retry_exponential_backoff,
                max_delay=task.max_retry_delay,
                key=f"{self.spec.dag_id}.{task_id}.{map_index}",
            )
            at = now + timedelta(seconds=delay)
            self.retry_at[(task_id, map_index)] = at
            why = f"attempt {try_number} failed; retry {try_number}/{task.retries} in {delay:.1f}s"
            self._set(task_id, [map_index], S.UP_FOR_RETRY, why, out, retry_at=at)
            return out
        why = f"attempt {try_number} failed" + (f": {error}" if error else "")
        self._set(task_id, [map_index], S.FAILED, why, out)
        self._settle([task_id], out)
        return out

    def due_retries(self, now: datetime) -> list[Command]:
        """Schedule every ``up_for_retry`` instance whose delay has passed."""
        out: list[Command] = []
        due = sorted(k for k, at in self.retry_at.items() if at <= now)
        for task_id, map_index in due:
            del self.retry_at[(task_id, map_index)]
            if self.states[task_id].get(map_index) is S.UP_FOR_RETRY:
                self._set(task_id, [map_index], S.SCHEDULED, "retry delay passed", out)
        return out

    # -- internals ----------------------------------------------------------------------

    def _set(
        self,
        task_id: str,
        map_indexes: Sequence[int],
        state: TaskState,
        reason: str,
        out: list[Command],
        *,
        retry_at: datetime | None = None,
    ) -> None:
        states = self.states[task_id]
        counts = self.counts[task_id]
        check = "mark" if reason.startswith("marked") else ""
        for i in map_indexes:
            old = states[i]
            if old is state:
                continue
            check_transition(old, state, reason=check)
            states[i] = state
            counts[old] -= 1
            counts[state] += 1
            was_done = old in TERMINAL_TASK_STATES
            now_done = state in TERMINAL_TASK_STATES
            self.unfinished += int(was_done) - int(now_done)
        out.append(SetStates(task_id, map_indexes, state, reason, retry_at))

    def _waiting(self, task_id: str) -> list[int]:
        return [i for i, s in self.states[task_id].items() if s is S.NONE]

    def _apply_skips(self, task_id: str, output: Output, out: list[Command]) -> None:
        task = self.spec.task(task_id)
        targets: list[str] = []
        if output.follow is not None:
            follow = set(output.follow)
            targets = [d for d in self.spec.downstream(task_id) if d not in follow]
            why = f"branch {task_id} chose {sorted(follow) or 'nothing'}"
        elif output.short_circuit:
            targets = (
                self.spec.descendants(task_id)
                if task.ignore_downstream_trigger_rules
                else list(self.spec.downstream(task_id))
            )
            why = f"short circuit {task_id} returned a falsy value"
        skipped = []
        for d in targets:
            waiting = self._waiting(d)
            if waiting:
                self._set(d, waiting, S.SKIPPED, why, out)
                skipped.append(d)
        # Downstream of what was skipped must be re-evaluated too.
        self._settle(skipped, out)

    def _settle(self, changed: Iterable[str], out: list[Command]) -> None:
        """Re-evaluate the tasks downstream of ``changed`` until nothing moves."""
        queue: deque[str] = deque()
        for t in changed:
            queue.extend(self.spec.downstream(t))
        self._drain(queue, out)
        self._check_finished(out)

    def _evaluate_all(self, task_ids: Iterable[str], out: list[Command]) -> None:
        self._drain(deque(task_ids), out)

    def _drain(self, queue: deque[str], out: list[Command]) -> None:
        while queue:
            task_id = queue.popleft()
            if self._evaluate(task_id, out):
                queue.extend(self.spec.downstream(task_id))

    def _evaluate(self, task_id: str, out: list[Command]) -> bool:
        """Decide a task's waiting instances; True when some became terminal."""
        waiting = self._waiting(task_id)
        if not waiting:
            return False
        task = self.spec.task(task_id)
        verdict = evaluate(task.trigger_rule, self.upstream_counts(task))
        if verdict.outcome is Outcome.WAIT:
            return False
        if verdict.outcome is Outcome.RUN:
            if task.is_mapped and UNMAPPED in self.states[task_id]:
                return self._expand(task, out)
            self._set(task_id, waiting, S.SCHEDULED, verdict.reason, out)
            return False
        state = S.SKIPPED if verdict.outcome is Outcome.SKIP else S.UPSTREAM_FAILED
        self._set(task_id, waiting, state, verdict.reason, out)
        return True

    def _map_length(self, task: TaskSpec) -> tuple[int | None, TaskState, str]:
        """The number of instances of a mapped task, or why it cannot expand."""
        total = 1
        for src in task.map_sources:
            if src.task_id is None:
                n = src.length or 0
            elif self.spec.task(src.task_id).is_mapped:
                # Mapping over a mapped task's output: one value per upstream instance.
                n = len(self.states[src.task_id]) if UNMAPPED not in self.states[src.task_id] else 0
            else:
                output = self.outputs.get(src.task_id)
                if output is None or self.counts[src.task_id][S.SUCCESS] == 0:
                    return (
                        None,
                        S.UPSTREAM_FAILED,
                        (
                            f"upstream {src.task_id!r} did not succeed, so {task.task_id!r} "
                            f"has nothing to map over for argument {src.arg!r}"
                        ),
                    )
                if src.key == "return_value":
                    length, type_name = output.length, output.type_name
                else:
                    length = output.key_lengths.get(src.key)
                    type_name = "a non-list value" if src.key in output.key_lengths else "nothing"
                if length is None:
                    return (
                        None,
                        S.FAILED,
                        (
                            f"cannot expand task {task.task_id!r} of DAG {self.spec.dag_id!r} over "
                            f"argument {src.arg!r}: upstream {src.task_id!r} returned {type_name}, "
                            "expected a list or dict"
                        ),
                    )
                n = length
            total *= n
        if total > self.max_map_length:
            return (
                None,
                S.FAILED,
                (
                    f"task {task.task_id!r} of DAG {self.spec.dag_id!r} would expand into {total} "
                    f"instances, over the limit of {self.max_map_length}; raise the setting "
                    "MILLSTREAM_MAX_MAP_LENGTH or map over fewer items"
                ),
            )
        return total, S.SCHEDULED, ""

    def _expand(self, task: TaskSpec, out: list[Command]) -> bool:
        length, state, why = self._map_length(task)
        tid = task.task_id
        if length is None:
            self._set(tid, [UNMAPPED], state, why, out)
            return True
        if length == 0:
            self._set(tid, [UNMAPPED], S.SKIPPED, "mapped over an empty list", out)
            return True
        # The placeholder is replaced by the real instances, all ready to run.
        del self.states[tid][UNMAPPED]
        self.counts[tid][S.NONE] -= 1
        self.unfinished -= 1
        self.states[tid].update(dict.fromkeys(range(length), S.SCHEDULED))
        self.counts[tid][S.SCHEDULED] += length
        self.unfinished += length
        out.append(ExpandTask(tid, length, S.SCHEDULED, f"expanded into {length} instances"))
        return False

    def _check_finished(self, out: list[Command]) -> None:
        if self.unfinished or self.finished is not None:
            return
        state, reason = self.decide_run_state()
        self.finished = state
        out.append(FinishRun(state, reason))

    def decide_run_state(self) -> tuple[RunState, str]:
        """A finished run fails when a leaf task failed or was upstream_failed."""
        bad = []
        for task in self.spec.tasks:
            if self.spec.downstream(task.task_id) or task.is_teardown:
                continue
            c = self.counts[task.task_id]
            if c[S.FAILED] or c[S.UPSTREAM_FAILED]:
                bad.append(task.task_id)
        if bad:
            return RunState.FAILED, f"leaf task(s) failed: {', '.join(bad)}"
        return RunState.SUCCESS, "all leaf tasks succeeded or were skipped"
