"""What an executor hands a worker, and what the worker hands back (both picklable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from millstream.core.planner import Output


@dataclass(frozen=True)
class WorkItem:
    run_pk: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    fileloc: str
    run_type: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    conf: dict[str, Any]
    params: dict[str, Any]
    log_path: str
    execution_timeout: float | None = None
    run_version: int = 0  # the run's clear_number: results cached under an older one are stale
    max_tries: int = 0  # a failure at try_number <= max_tries is retried
    sensor_started_at: datetime | None = None  # a rescheduled sensor's first poke
    prev_success_interval: tuple[datetime | None, datetime | None] = (None, None)
    prev_start_date_success: datetime | None = None
    # Results whose JSON is longer than inline_limit bytes go to this object store (any
    # fsspec URL); only their URL is reported. Empty: every result stays in the database.
    result_store_url: str = ""
    inline_limit: int = 65536
    queue: str | None = None
    dag_version_id: int = 0  # the run's DAG version: its code is what runs
    # A deferred task whose trigger fired resumes at this method with these (JSON) kwargs.
    next_method: str | None = None
    next_kwargs: str | None = None
    # The attempt's span (W3C traceparent) when traces are on: the worker runs the task
    # under it, and its report brings it back for the scheduler to write the span.
    traceparent: str | None = None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.run_pk, self.task_id, self.map_index)

    @property
    def instance(self) -> str:
        """``task`` or ``task[i]``: how logs and ``dags test`` name the instance."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    def describe(self) -> str:
        return f"{self.dag_id}/{self.run_id}/{self.instance} try {self.try_number}"


@dataclass
class AttemptResult:
    """The outcome of one attempt: state, results to store, and what the planner needs."""

    item: WorkItem
    state: str  # success | failed | skipped | reschedule | deferred
    started_at: datetime
    ended_at: datetime
    # key, JSON (empty when offloaded), length, type name, object store URL or None
    results: list[tuple[str, str, int | None, str, str | None]] = field(default_factory=list)
    output: Output | None = None
    error: str | None = None
    retryable: bool = True
    label: str | None = None
    pid: int | None = None
    hostname: str | None = None
    callbacks_done: bool = False  # the worker ran the task's callbacks for this outcome
    reschedule_at: datetime | None = None  # a sensor that is not done yet pokes again then
    # A deferral: classpath, kwargs (JSON), method_name, next_kwargs (JSON), timeout_at.
    trigger: dict[str, Any] | None = None
    # Asset events to record with the success: {"asset_name", "uri", "extra", "aliases"}.
    asset_events: list[dict[str, Any]] = field(default_factory=list)
    # The template fields as they ran (secrets masked), when a template was rendered.
    rendered: dict[str, Any] | None = None
    # A failure's traceback, as printed to the log (``dags test`` shows it at the end).
    traceback: str | None = None


@dataclass(frozen=True)
class Started:
    item: WorkItem
    at: datetime
    pid: int
    hostname: str


@dataclass(frozen=True)
class Finished:
    result: AttemptResult


Event = Started | Finished
