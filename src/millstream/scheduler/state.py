"""What the phases of a scheduler turn share, in one explicit object.

Every phase (``creation``, ``lifecycle``, ``timers``, ``dispatch``, ``apply``,
``liveness``, ``dagfiles``) is a set of functions of a :class:`SchedulerState`: the
plugs (store, executor, clock), the settings, and the in-memory cache of the store —
the active runs with their planners, the ready queue, pools and what other schedulers
hold. The cache can always be rebuilt from the store (``lifecycle.reload``), which is
what keeps a scheduler safe to kill at any instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from millstream.core.model import DagSpec
from millstream.core.planner import RunPlanner
from millstream.executors.base import Executor
from millstream.scheduler import spans
from millstream.scheduler.metrics import NoMetrics
from millstream.scheduler.ready import ReadyQueue
from millstream.store import Store
from millstream.store.tables import DEFAULT_POOL
from millstream.worker.callbacks import CallbackRunner, InlineCallbackRunner
from millstream.worker.item import Event, WorkItem
from millstream.worker.runner import log_path

Clock = Callable[[], datetime]
Listener = Callable[[str, dict[str, Any]], None]
#: Per DAG, per (DAG, task) and slots per pool: instances other schedulers hold.
Occupancy = tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class StaleRunsError(RuntimeError):
    """Runs were cleared or marked since the planner last loaded them."""

    def __init__(self, run_pks: list[int]) -> None:
        super().__init__(f"runs {run_pks} changed outside the scheduler")
        self.run_pks = run_pks


@dataclass
class ActiveRun:
    """What the scheduler keeps in memory about a running run."""

    pk: int
    dag_id: str
    run_id: str
    run_type: str
    spec: DagSpec
    planner: RunPlanner
    logical_date: datetime | None
    interval: tuple[datetime | None, datetime | None]
    conf: dict[str, Any]
    params: dict[str, Any]
    clear_number: int = 0
    version_id: int = 0
    start_date: datetime | None = None
    sensor_starts: dict[tuple[str, int], datetime] = field(default_factory=dict)
    attempt: int = 1
    deadlines_fired: set[str] = field(default_factory=set)
    # The latest earlier successful run: data interval start and end, start date.
    prev_success: tuple[datetime | None, datetime | None, datetime | None] = (None, None, None)
    # Attempts made per instance, mirrored from the store so dispatch needs no query.
    tries: dict[tuple[str, int], int] = field(default_factory=dict)
    # Instances whose trigger fired: the method to resume at and its kwargs (JSON).
    resume: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)


@dataclass
class SchedulerState:
    # -- plugs and settings (fixed for the scheduler's life)
    store: Store
    executor: Executor
    clock: Clock
    id: str  # this scheduler's name in the store: host, pid and a random part
    logs_folder: str
    result_store_url: str  # large results: any fsspec URL
    inline_limit: int
    max_map_length: int
    paused_on_creation: bool
    heartbeat_timeout: float
    callbacks: CallbackRunner | InlineCallbackRunner
    listener: Listener | None = None
    metrics: NoMetrics = field(default_factory=NoMetrics)  # [metrics]: Prometheus and StatsD

    # -- the cache of the store: runs this scheduler owns, and what is ready in them
    runs: dict[int, ActiveRun] = field(default_factory=dict)
    ready: ReadyQueue = field(default_factory=ReadyQueue)
    to_reload: list[int] = field(default_factory=list)  # runs retried as a whole, after the commit
    unapplied: list[Event] = field(default_factory=list)  # reports whose transaction failed
    next_due: datetime | None = None  # the earliest time a scheduled run is due

    # -- limits across the store, refreshed each poll
    pools: dict[str, int] = field(default_factory=lambda: {DEFAULT_POOL: 128})
    pool_warned: set[tuple[int, str]] = field(default_factory=set)
    # depends_on_past answers: (run_pk, task_id) -> (DAG's finish epoch, checked at, reason or None)
    past_checks: dict[tuple[int, str], tuple[int, float, str | None]] = field(default_factory=dict)
    finish_epochs: dict[str, int] = field(default_factory=dict)  # dag_id -> attempts ended here
    elsewhere: Occupancy = field(default_factory=lambda: ({}, {}, {}))

    # -- other schedulers
    registered: bool = False
    others_live: bool = False
    live_count: int = 1
    claimed_unreset: set[int] = field(default_factory=set)  # adopted, old owner's attempts not reset yet

    # -- "look at the store now" (a trigger, a finished run, new events); set from any thread
    nudged: threading.Event = field(default_factory=threading.Event)

    def emit(self, kind: str, **data: Any) -> None:
        if self.listener is not None:
            self.listener(kind, data)

    def note_due(self, at: datetime) -> None:
        if self.next_due is None or at < self.next_due:
            self.next_due = at

    def work_item(self, run: ActiveRun, task_id: str, idx: int, try_number: int) -> WorkItem:
        """What an executor needs to run one attempt of one instance."""
        task = run.spec.task(task_id)
        return WorkItem(
            run_pk=run.pk,
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=task_id,
            map_index=idx,
            try_number=try_number,
            fileloc=run.spec.fileloc,
            run_type=run.run_type,
            logical_date=run.logical_date,
            data_interval_start=run.interval[0],
            data_interval_end=run.interval[1],
            conf=run.conf,
            params=run.params,
            log_path=log_path(self.logs_folder, run.dag_id, run.run_id, task_id, idx, try_number),
            execution_timeout=task.execution_timeout,
            run_version=run.clear_number,
            max_tries=run.planner.max_tries.get((task_id, idx), task.retries),
            sensor_started_at=run.sensor_starts.get((task_id, idx)),
            prev_success_interval=run.prev_success[:2],
            prev_start_date_success=run.prev_success[2],
            result_store_url=self.result_store_url,
            inline_limit=self.inline_limit,
            queue=task.queue,
            dag_version_id=run.version_id,
            next_method=run.resume[(task_id, idx)][0] if (task_id, idx) in run.resume else None,
            next_kwargs=run.resume[(task_id, idx)][1] if (task_id, idx) in run.resume else None,
            traceparent=spans.traceparent(run, task_id, idx, self.clock),
        )

    def priority(self, run_pk: int, task_id: str) -> int:
        run = self.runs.get(run_pk)
        return run.spec.task(task_id).priority_weight if run else 0
