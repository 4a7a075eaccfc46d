"""All writes of one scheduler turn, collected and then flushed as a few executemany
statements in one transaction (instead of a round trip per task instance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from millstream.core.model import DagSpec
from millstream.core.states import RunState, TaskState
from millstream.store import assets as assets_q
from millstream.store import rendered as rendered_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store import triggers as triggers_q

Key = tuple[int, str, int]


@dataclass
class WriteBatch:
    started: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    rescheduled: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    rendered: list[dict[str, Any]] = field(default_factory=list)  # attempts' template fields
    expansions: list[tuple[int, DagSpec, str, int, TaskState]] = field(default_factory=list)
    # Only the last state an instance reaches in this turn is written.
    states: dict[Key, tuple[TaskState, str, datetime | None]] = field(default_factory=dict)
    run_states: list[tuple[int, RunState, str, datetime]] = field(default_factory=list)
    run_marks: list[tuple[int, RunState, str]] = field(default_factory=list)
    run_retries: list[Any] = field(default_factory=list)  # ActiveRuns to retry as a whole
    asset_events: list[dict[str, Any]] = field(default_factory=list)  # from succeeded outlets
    triggers_put: list[dict[str, Any]] = field(default_factory=list)  # deferrals' triggers
    triggers_gone: list[Key] = field(default_factory=list)  # triggers done with
    # Runs whose planner decided what is written, with the clear_number it decided from.
    runs: dict[int, int] = field(default_factory=dict)

    def set_state(
        self,
        run_pk: int,
        task_id: str,
        map_index: int,
        state: TaskState,
        reason: str,
        retry_at: datetime | None = None,
    ) -> None:
        self.states[(run_pk, task_id, map_index)] = (state, reason, retry_at)

    def flush(self, conn: Connection) -> None:
        ti_q.start_many(conn, self.started)
        ti_q.finish_many(conn, self.finished)
        ti_q.rescheduled_many(conn, self.rescheduled)
        if self.results:
            keys = {(r["run_pk"], r["task_id"], r["map_index"]) for r in self.results}
            results_q.delete_many(conn, [ti_q.key(*k) for k in keys])
            results_q.put_many(conn, self.results)
        rendered_q.put_many(conn, self.rendered)
        triggers_q.delete_many(conn, self.triggers_gone)
        triggers_q.put_many(conn, self.triggers_put)
        for run_pk, spec, task_id, length, state in self.expansions:
            ti_q.expand(conn, run_pk, spec, task_id, length, state)
        ti_q.set_many(
            conn,
            [
                {**ti_q.key(*k), "p_state": state.value, "p_reason": reason, "p_retry_at": retry_at}
                for k, (state, reason, retry_at) in self.states.items()
            ],
        )
        for ev in self.asset_events:
            assets_q.record_event(conn, now=datetime.now(UTC), **ev)
        for run_pk, run_state, reason in self.run_marks:
            runs_q.set_marked(conn, run_pk, run_state, reason)
        for run_pk, run_state, reason, end in self.run_states:
            runs_q.set_state(conn, run_pk, run_state, expected=RunState.RUNNING, reason=reason, end_date=end)
