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

from millstream.core.model import UNMAPPED, DagSpec, MapSource, TaskSpec
from millstream.core.outcome import decide_run_state
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
    reported: bool = False  # a worker's report, not the planner's own decision


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
        max_tries: Mapping[tuple[str, int], int] | None = None,
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
        marked_state: RunState | None = None,
    ) -> None:
        self.spec = spec
        self.max_map_length = max_map_length
        self.states: dict[str, dict[int, TaskState]] = {t.task_id: {} for t in spec.tasks}
        self.counts: dict[str, Counter[TaskState]] = {t.task_id: Counter() for t in spec.tasks}
        self.outputs: dict[str, Output] = dict(outputs or {})
        self.retry_at: dict[tuple[str, int], datetime] = dict(retry_at or {})
        # Instances cleared by a user get their retries again: tries allowed so far.
        self.max_tries: dict[tuple[str, int], int] = dict(max_tries or {})
        self._immediate: set[tuple[str, int]] = set()  # interrupted attempts: retry without delay
        self.unfinished = 0
        self.finished: RunState | None = None
        # A user marked the run: it ends in this state once its teardowns have run.
        self.marked_state = marked_state
        self.marked_reason: str | None = None
        # Why each task's first instance failed, for the run's reason (held per task, not
        # per instance, so a wide map costs nothing more).
        self.fail_reasons: dict[str, str] = {}
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

    def upstream_counts(
        self, task: TaskSpec, *, skip: tuple[str, ...] = (), instance: int | None = None
    ) -> UpstreamCounts:
        """Counts over the upstream task instances; with ``instance``, an aligned upstream
        contributes only its own instance of that index."""
        total = success = skipped = failed = upstream_failed = removed = 0
        setup_total = setup_success = setup_skipped = 0
        for up in task.upstream:
            if up in skip:
                continue
            if instance is not None and up in task.aligned:
                st = self.states[up].get(instance)
                c = Counter({st: 1}) if st is not None else Counter()
                n = 1
            else:
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

    def verdict(self, task_id: str, map_index: int | None = None) -> Verdict:
        """Why a task waits (or not): what ``tasks states`` shows next to it."""
        task = self.spec.task(task_id)
        if map_index is not None and map_index >= 0 and task.aligned:
            return evaluate(task.trigger_rule, self.upstream_counts(task, instance=map_index))
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
        self._set(task_id, [map_index], state, reason or f"reported {state}", out, reported=True)
        if state is S.SUCCESS and output is not None and map_index == UNMAPPED:
            self.outputs[task_id] = output
        if state is S.SUCCESS and output is not None:
            self._apply_skips(task_id, output, out)
        self._settle([(task_id, map_index)] if state in TERMINAL_TASK_STATES else [], out)
        return out

    def attempt_failed(
        self,
        task_id: str,
        map_index: int,
        try_number: int,
        now: datetime,
        error: str = "",
        *,
        retryable: bool = True,
    ) -> list[Command]:
        """An attempt raised: retry after the task's delay if tries are left, else fail."""
        task = self.spec.task(task_id)
        out: list[Command] = []
        limit = self.max_tries.get((task_id, map_index), task.retries)
        if retryable and try_number <= limit:
            immediate = (task_id, map_index) in self._immediate
            self._immediate.discard((task_id, map_index))
            delay = (
                0.0
                if immediate
                else retry_delay(
                    base=task.retry_delay,
                    try_number=try_number,
                    backoff=task.retry_exponential_backoff,
                    max_delay=task.max_retry_delay,
                    key=f"{self.spec.dag_id}.{task_id}.{map_index}",
                )
            )
            at = now + timedelta(seconds=delay)
            self.retry_at[(task_id, map_index)] = at
            why = f"attempt {try_number} failed; retry {try_number}/{limit} in {delay:.1f}s"
            self._set(task_id, [map_index], S.UP_FOR_RETRY, why, out, retry_at=at, reported=True)
            return out
        why = f"attempt {try_number} failed" + (f": {error}" if error else "")
        self._set(task_id, [map_index], S.FAILED, why, out, reported=True)
        self._settle([(task_id, map_index)], out)
        return out

    def interrupted(self, task_id: str, map_index: int, try_number: int) -> int:
        """An attempt was cut short by the scheduler's own crash: allow one more try and
        retry it at once. Returns the tries now allowed."""
        task = self.spec.task(task_id)
        allowed = max(self.max_tries.get((task_id, map_index), task.retries), try_number)
        self.max_tries[(task_id, map_index)] = allowed
        self._immediate.add((task_id, map_index))
        return allowed

    def mark_run(self, state: RunState, reason: str) -> tuple[list[Command], list[tuple[str, int]]]:
        """End a run by decision (a user's mark, dagrun_timeout): unfinished work is set to
        ``state`` (marking failed: queued or running work fails, the rest is skipped);
        teardowns still run, and the run ends in ``state`` once they are done.

        Returns the commands and the instances that were queued or running, which the
        shell should stop.
        """
        self.marked_state = state
        self.marked_reason = reason
        out: list[Command] = []
        interrupted: list[tuple[str, int]] = []
        changed: list[tuple[str, int | None]] = []
        for task in self.spec.tasks:
            if task.is_teardown:
                continue
            by_state: dict[TaskState, list[int]] = {}
            for i, st in self.states[task.task_id].items():
                if st in TERMINAL_TASK_STATES:
                    continue
                active = st in (S.QUEUED, S.RUNNING)
                if active:
                    interrupted.append((task.task_id, i))
                new = S.SUCCESS if state is RunState.SUCCESS else (S.FAILED if active else S.SKIPPED)
                by_state.setdefault(new, []).append(i)
                self.retry_at.pop((task.task_id, i), None)
            for new, idxs in by_state.items():
                self._set(task.task_id, idxs, new, f"marked {new}: {reason}", out)
                changed.append((task.task_id, None))
        self._settle(changed, out)
        return out, interrupted

    def due_retries(self, now: datetime) -> list[Command]:
        """Schedule every instance waiting for a retry or a sensor's next poke whose time has come."""
        out: list[Command] = []
        due = sorted(k for k, at in self.retry_at.items() if at <= now)
        for task_id, map_index in due:
            del self.retry_at[(task_id, map_index)]
            state = self.states[task_id].get(map_index)
            if state is S.UP_FOR_RETRY:
                self._set(task_id, [map_index], S.SCHEDULED, "retry delay passed", out)
            elif state is S.UP_FOR_RESCHEDULE:
                self._set(task_id, [map_index], S.SCHEDULED, "time for the next poke", out)
        return out

    def reschedule(self, task_id: str, map_index: int, at: datetime) -> list[Command]:
        """A sensor in reschedule mode is not done yet: free its slot until ``at``."""
        out: list[Command] = []
        self.retry_at[(task_id, map_index)] = at
        self._set(
            task_id, [map_index], S.UP_FOR_RESCHEDULE, f"poke again at {at.isoformat()}", out, retry_at=at
        )
        return out

    def set_deferred(self, task_id: str, map_index: int, deferred: bool, reason: str) -> list[Command]:
        """A deferral frees the slot (deferred); its trigger firing schedules it again."""
        out: list[Command] = []
        if deferred or self.states[task_id].get(map_index) is S.DEFERRED:
            self._set(task_id, [map_index], S.DEFERRED if deferred else S.SCHEDULED, reason, out)
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
        reported: bool = False,
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
        if state is S.FAILED:
            self.fail_reasons.setdefault(task_id, reason)
        out.append(SetStates(task_id, map_indexes, state, reason, retry_at, reported))

    def _waiting(self, task_id: str) -> list[int]:
        if not self.counts[task_id][S.NONE]:
            return []  # the common case, without scanning a wide map
        return [i for i, s in self.states[task_id].items() if s is S.NONE]

    def _apply_skips(self, task_id: str, output: Output, out: list[Command]) -> None:
        task = self.spec.task(task_id)
        targets: list[str] = []
        why = ""
        if output.follow is not None:
            follow = set(output.follow)
            targets = [d for d in self.spec.downstream(task_id) if d not in follow]
            why = f"branch {task_id} chose {sorted(follow) or 'nothing'}"
        elif output.short_circuit:
            # As in Airflow, a short circuit never skips a teardown.
            targets = [
                d
                for d in (
                    self.spec.descendants(task_id)
                    if task.ignore_downstream_trigger_rules
                    else self.spec.downstream(task_id)
                )
                if not self.spec.task(d).is_teardown
            ]
            why = f"short circuit {task_id} returned a falsy value"
        skipped: list[tuple[str, int | None]] = []
        for d in targets:
            waiting = self._waiting(d)
            if waiting:
                self._set(d, waiting, S.SKIPPED, why, out)
                skipped.append((d, None))
        # Downstream of what was skipped must be re-evaluated too.
        self._settle(skipped, out)

    def _settle(self, changed: Iterable[tuple[str, int | None]], out: list[Command]) -> None:
        """Re-evaluate what is downstream of ``changed`` until nothing moves."""
        queue: deque[tuple[str, int | None]] = deque()
        for task_id, idx in changed:
            self._enqueue_downstream(task_id, idx, queue)
        self._drain(queue, out)
        self._check_finished(out)

    def _enqueue_downstream(
        self, task_id: str, idx: int | None, queue: deque[tuple[str, int | None]]
    ) -> None:
        for d in self.spec.downstream(task_id):
            aligned = idx is not None and idx >= 0 and task_id in self.spec.task(d).aligned
            # An aligned downstream that has expanded only needs its own instance looked at.
            if aligned and UNMAPPED not in self.states[d]:
                queue.append((d, idx))
            else:
                queue.append((d, None))

    def _evaluate_all(self, task_ids: Iterable[str], out: list[Command]) -> None:
        self._drain(deque((t, None) for t in task_ids), out)

    def _drain(self, queue: deque[tuple[str, int | None]], out: list[Command]) -> None:
        while queue:
            task_id, idx = queue.popleft()
            for changed in self._evaluate(task_id, idx, out):
                self._enqueue_downstream(task_id, changed, queue)

    def _evaluate(self, task_id: str, idx: int | None, out: list[Command]) -> list[int | None]:
        """Decide waiting instances of a task; returns what downstream tasks must look at
        again: indexes that became terminal, ``None`` for the task as a whole (it ended
        without running, or it expanded)."""
        task = self.spec.task(task_id)
        expanded_aligned = task.aligned and UNMAPPED not in self.states[task_id]
        if expanded_aligned:
            indexes = [idx] if idx is not None else self._waiting(task_id)
            return self._evaluate_instances(
                task, [i for i in indexes if self.states[task_id].get(i) is S.NONE], out
            )
        waiting = self._waiting(task_id)
        if not waiting:
            return []
        if task.is_mapped and task.aligned and UNMAPPED in self.states[task_id]:
            return self._evaluate_unexpanded_aligned(task, out)
        verdict = evaluate(task.trigger_rule, self.upstream_counts(task))
        if verdict.outcome is Outcome.WAIT:
            return []
        if verdict.outcome is Outcome.RUN:
            if task.is_mapped and UNMAPPED in self.states[task_id]:
                return self._expand(task, S.SCHEDULED, out)
            self._set(task_id, waiting, S.SCHEDULED, verdict.reason, out)
            return []
        state = S.SKIPPED if verdict.outcome is Outcome.SKIP else S.UPSTREAM_FAILED
        self._set(task_id, waiting, state, verdict.reason, out)
        return [None]

    def _evaluate_instances(self, task: TaskSpec, indexes: list[int], out: list[Command]) -> list[int | None]:
        """Per-instance decisions of an expanded aligned task (item-level pipelining)."""
        by_state: dict[tuple[TaskState, str], list[int]] = {}
        done: list[int | None] = []
        for i in indexes:
            verdict = evaluate(task.trigger_rule, self.upstream_counts(task, instance=i))
            if verdict.outcome is Outcome.WAIT:
                continue
            if verdict.outcome is Outcome.RUN:
                state = S.SCHEDULED
            else:
                state = S.SKIPPED if verdict.outcome is Outcome.SKIP else S.UPSTREAM_FAILED
                done.append(i)
            by_state.setdefault((state, verdict.reason), []).append(i)
        for (state, reason), idxs in by_state.items():
            self._set(task.task_id, idxs, state, reason, out)
        return done

    def _evaluate_unexpanded_aligned(self, task: TaskSpec, out: list[Command]) -> list[int | None]:
        """An aligned task expands as soon as its aligned upstreams have expanded (and its
        other upstreams allow it), not when they have finished."""
        verdict = evaluate(task.trigger_rule, self.upstream_counts(task, skip=task.aligned))
        if verdict.outcome is Outcome.WAIT:
            return []
        if verdict.outcome is Outcome.RUN:
            for up in task.aligned:
                placeholder = self.states[up].get(UNMAPPED)
                if placeholder is None:
                    continue  # expanded
                if placeholder not in TERMINAL_TASK_STATES:
                    return []  # not expanded yet
                # The upstream never expanded (skipped, failed): decide as a whole.
                verdict = evaluate(task.trigger_rule, self.upstream_counts(task))
                break
            else:
                return self._expand(task, S.NONE, out)
            if verdict.outcome is Outcome.WAIT:
                return []
            if verdict.outcome is Outcome.RUN:  # e.g. all_done after a skipped upstream
                return self._expand(task, S.SCHEDULED, out)
        state = S.SKIPPED if verdict.outcome is Outcome.SKIP else S.UPSTREAM_FAILED
        self._set(task.task_id, [UNMAPPED], state, verdict.reason, out)
        return [None]

    def _source_length(self, task: TaskSpec, src: MapSource) -> int | tuple[TaskState, str]:
        """The number of values ``src`` yields, or the state and reason it cannot expand."""
        if src.kind in ("zip", "zip_longest", "concat"):
            lengths = []
            for part in src.parts:
                n = self._source_length(task, part)
                if isinstance(n, tuple):
                    return n
                lengths.append(n)
            if src.kind == "concat":
                return sum(lengths)
            return (min if src.kind == "zip" else max)(lengths, default=0)
        if src.task_id is None:
            return src.length or 0
        if self.spec.task(src.task_id).is_mapped:
            # A mapped task's output: one value per upstream instance.
            if UNMAPPED in self.states[src.task_id]:
                return S.UPSTREAM_FAILED, f"upstream {src.task_id!r} did not expand"
            return len(self.states[src.task_id])
        output = self.outputs.get(src.task_id)
        if output is None or self.counts[src.task_id][S.SUCCESS] == 0:
            return S.UPSTREAM_FAILED, (
                f"upstream {src.task_id!r} did not succeed, so {task.task_id!r} has nothing to map over "
                f"for argument {src.arg or '(expand_kwargs)'!r}"
            )
        if src.key == "return_value":
            length, type_name = output.length, output.type_name
        else:
            length = output.key_lengths.get(src.key)
            type_name = "a non-list value" if src.key in output.key_lengths else "nothing"
        if length is None:
            return S.FAILED, (
                f"cannot expand task {task.task_id!r} of DAG {self.spec.dag_id!r} over argument "
                f"{src.arg or '(expand_kwargs)'!r}: upstream {src.task_id!r} returned {type_name}, "
                "expected a list or dict"
            )
        return length

    def _expand(self, task: TaskSpec, state: TaskState, out: list[Command]) -> list[int | None]:
        """Replace the placeholder by one instance per element; ``state`` is where they
        start (``none`` for aligned tasks, which then decide instance by instance)."""
        tid = task.task_id
        lengths: list[int] = []
        for src in task.map_sources:
            n = self._source_length(task, src)
            if isinstance(n, tuple):
                self._set(tid, [UNMAPPED], n[0], n[1], out)
                return [None]
            lengths.append(n)
        total = 1
        for n in lengths:
            total *= n
        for up in task.aligned:
            if len(self.states[up]) != total:
                why = (
                    f"task {tid!r} maps index for index over {up!r}, but {up!r} has "
                    f"{len(self.states[up])} instances and {tid!r} would have {total}"
                )
                self._set(tid, [UNMAPPED], S.FAILED, why, out)
                return [None]
        if total > self.max_map_length:
            why = (
                f"task {tid!r} of DAG {self.spec.dag_id!r} would expand into {total} instances, over "
                f"the limit of {self.max_map_length}; raise the setting MILLSTREAM_MAX_MAP_LENGTH or "
                "map over fewer items"
            )
            self._set(tid, [UNMAPPED], S.FAILED, why, out)
            return [None]
        if total == 0:
            self._set(tid, [UNMAPPED], S.SKIPPED, "mapped over an empty list", out)
            return [None]
        # The placeholder is replaced by the real instances.
        del self.states[tid][UNMAPPED]
        self.counts[tid][S.NONE] -= 1
        self.unfinished -= 1
        self.states[tid].update(dict.fromkeys(range(total), state))
        self.counts[tid][state] += total
        self.unfinished += total
        out.append(ExpandTask(tid, total, state, f"expanded into {total} instances"))
        # Downstream tasks aligned with this one can expand now too (``None``: look at all).
        if state is S.NONE:
            return [None, *self._evaluate_instances(task, list(range(total)), out)]
        return [None]

    def _check_finished(self, out: list[Command]) -> None:
        if self.unfinished or self.finished is not None:
            return
        state, reason = self.decide_run_state()
        self.finished = state
        out.append(FinishRun(state, reason))

    def decide_run_state(self) -> tuple[RunState, str]:
        """A user's mark decides; else the leaves do (:func:`core.outcome.decide_run_state`)."""
        if self.marked_state is not None:
            return self.marked_state, self.marked_reason or f"marked {self.marked_state} by a user"
        return decide_run_state(self.spec, self.counts, self.fail_reasons)
