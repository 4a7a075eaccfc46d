"""What a task sees of its own attempt and run: ``context["ti"]`` (with Airflow's
``xcom_push`` and ``xcom_pull``) and ``context["dag_run"]``, and how results are
turned into the JSON they are stored as."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from millstream.errors import NotFoundError, TaskFlowError
from millstream.store import cross_dag
from millstream.worker.results import LazyResults, ResultReader


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, LazyResults):
        return list(value)
    if type(value).__name__ == "ObjectStoragePath":  # checked by name: most results never import upath
        from millstream.sdk.objectstorage import ObjectStoragePath, to_result

        if isinstance(value, ObjectStoragePath):
            return to_result(value)
    raise TypeError(type(value).__name__)


def to_json(value: Any, task_id: str) -> str:
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise TaskFlowError(
            f"task {task_id!r} returned a value that cannot be stored as a result ({e}); return "
            "JSON-compatible data (str, int, float, bool, None, lists and dicts of them), or "
            "write large data to storage and return its path"
        ) from None


_NOTSET: Any = object()


@dataclass(frozen=True)
class TaskInstanceInfo:
    """``context["ti"]``: which attempt this is, and a way to pull other tasks' results."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    _reader: ResultReader
    _run_pk: int
    _mapped_tasks: frozenset[str]
    sensor_started_at: datetime | None = None  # a rescheduled sensor's first poke
    state: str | None = None  # set for the attempt's callbacks: how it ended
    # Traces on: {"traceparent": the attempt's span}, as Airflow 3's ti.context_carrier.
    context_carrier: dict[str, str] | None = None
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` beside the task's result, for downstream
        ``xcom_pull(task_ids=..., key=key)``; kept when the attempt succeeds."""
        if not isinstance(key, str) or not key:
            raise TaskFlowError(f"xcom_push needs a non-empty string key, got {key!r}")
        to_json(value, self.task_id)  # refuse a value that cannot be stored now, at the call
        self.pushed[key] = value

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str = "return_value",
        include_prior_dates: bool = False,
        *,
        map_indexes: Any = _NOTSET,
        default: Any = None,
        run_id: str | None = None,
    ) -> Any:
        """Airflow's ``ti.xcom_pull``: one value for one unmapped task, every instance's for a
        mapped one, a list for several tasks. As in Airflow 3.3.2, ``default`` stands in for a
        missing value only when ``map_indexes`` is given; otherwise a missing value is None."""
        if dag_id not in (None, self.dag_id) or run_id not in (None, self.run_id) or include_prior_dates:
            raise TaskFlowError(
                "xcom_pull reads results of this DAG run only: dag_id, run_id and include_prior_dates "
                "that point at another run are not supported; pass values between DAGs through an asset"
            )
        single = task_ids is None or isinstance(task_ids, str)
        ids = [self.task_id if task_ids is None else task_ids] if single else list(task_ids)  # type: ignore[arg-type]
        if map_indexes is _NOTSET:
            if single:
                return self._pull(ids[0], key)
            out: list[Any] = []
            for t in ids:
                v = self._pull(t, key)
                out.extend(v) if isinstance(v, LazyResults) else out.append(v)
            return out
        one_index = map_indexes is None or isinstance(map_indexes, int)
        indexes = [-1 if map_indexes is None else map_indexes] if one_index else list(map_indexes)
        values = [self._reader.get(self._run_pk, t, i, key, default) for t in ids for i in indexes]
        return values[0] if single and one_index else values

    def _pull(self, task_id: str, key: str) -> Any:
        if task_id in self._mapped_tasks:
            return LazyResults(self._reader, self._run_pk, task_id, key)
        return self._reader.get(self._run_pk, task_id, -1, key)

    # -- Airflow 3's questions about other DAGs (what cross-DAG sensors ask) ----------------

    def _ask(self, question: str, *args: Any, **kwargs: Any) -> Any:
        with self._reader.store.read() as conn:
            return getattr(cross_dag.Questions(conn), question)(*args, **kwargs)

    def get_dr_count(self, dag_id: str, **kwargs: Any) -> int:
        return self._ask("get_dr_count", dag_id, **kwargs)  # type: ignore[no-any-return]

    def get_ti_count(self, dag_id: str, **kwargs: Any) -> int:
        return self._ask("get_ti_count", dag_id, **kwargs)  # type: ignore[no-any-return]

    def get_task_states(self, dag_id: str, **kwargs: Any) -> dict[str, dict[str, str]]:
        return self._ask("get_task_states", dag_id, **kwargs)  # type: ignore[no-any-return]

    def dag_task_ids(self, dag_id: str) -> list[str] | None:
        """The task ids of another DAG's latest version; None for a DAG never parsed."""
        with self._reader.store.read() as conn:
            try:
                return cross_dag.task_ids(conn, dag_id)
            except NotFoundError:
                return None

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        return self._ask("get_dagrun_state", dag_id, run_id)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    run_type: str
    conf: Mapping[str, Any]
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
