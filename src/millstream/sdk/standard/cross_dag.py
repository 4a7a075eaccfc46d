"""Across DAGs: ``TriggerDagRunOperator`` starts a run of another DAG (and may wait for
it), ``ExternalTaskSensor`` waits for another DAG's run, tasks or task group, and
``ExternalTaskMarker`` makes clearing it clear the child DAG's task too.

The operator asks for the run by raising :class:`DagRunTriggerException`, which the
worker carries out against the store (as Airflow 3's task runner does through its API),
so a DAG file never needs a database handle.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.core.states import RunState, TaskState
from millstream.errors import FailTask, SkipTask
from millstream.sdk.baseoperator import BaseOperator, BaseSensorOperator
from millstream.sdk.standard.triggers import WorkflowTrigger

_RUN_STATES = tuple(s.value for s in RunState)
_TASK_STATES = tuple(s.value for s in TaskState)


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


def _parse_date(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class DagRunTriggerException(Exception):  # noqa: N818 - Airflow's name; control flow
    """What ``TriggerDagRunOperator`` asks its worker to do."""

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        dag_run_id: str,
        conf: Mapping[str, Any] | None,
        logical_date: dt.datetime | None,
        reset_dag_run: bool,
        skip_when_already_exists: bool,
        wait_for_completion: bool,
        allowed_states: list[str],
        failed_states: list[str],
        poke_interval: float,
        deferrable: bool,
        fail_when_dag_is_paused: bool = False,
    ) -> None:
        super().__init__(f"trigger {trigger_dag_id} run {dag_run_id}")
        self.trigger_dag_id = trigger_dag_id
        self.dag_run_id = dag_run_id
        self.conf = dict(conf or {})
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.skip_when_already_exists = skip_when_already_exists
        self.wait_for_completion = wait_for_completion
        self.allowed_states = allowed_states
        self.failed_states = failed_states
        self.poke_interval = poke_interval
        self.deferrable = deferrable
        self.fail_when_dag_is_paused = fail_when_dag_is_paused


def _run_states(values: Sequence[str] | None, default: list[str], what: str, task_id: str) -> list[str]:
    out = [str(getattr(v, "value", v)) for v in values] if values else list(default)
    bad = [v for v in out if v not in _RUN_STATES]
    if bad:
        raise ValueError(f"{task_id}: {what} {bad} are not DAG run states; use some of {list(_RUN_STATES)}")
    return out


class TriggerDagRunOperator(BaseOperator):
    """Starts a run of ``trigger_dag_id`` (a manual run, with ``conf``); the run id is pushed
    as XCom ``trigger_run_id``. With ``wait_for_completion`` the task ends when that run
    reaches ``allowed_states`` (success) or ``failed_states`` (failure) — polling every
    ``poke_interval`` seconds on its worker, or on no worker at all with ``deferrable``."""

    template_fields: Sequence[str] = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
        "wait_for_completion",
        "skip_when_already_exists",
    )
    template_fields_renderers = {"conf": "py"}
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: Mapping[str, Any] | None = None,
        logical_date: str | dt.datetime | None = NOTSET,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: float = 60,
        allowed_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        skip_when_already_exists: bool = False,
        fail_when_dag_is_paused: bool = False,
        deferrable: bool = False,
        note: str | None = None,
        openlineage_inject_parent_info: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if note is not None:
            raise ValueError(f"{self.task_id}: note={note!r} is refused: Millstream runs have no notes yet")
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = poke_interval
        self.allowed_states = _run_states(allowed_states, ["success"], "allowed_states", self.task_id)
        self.failed_states = _run_states(failed_states, ["failed"], "failed_states", self.task_id)
        self.skip_when_already_exists = skip_when_already_exists
        self.fail_when_dag_is_paused = fail_when_dag_is_paused
        self.deferrable = deferrable
        self.openlineage_inject_parent_info = openlineage_inject_parent_info  # no OpenLineage: no-op

    def execute(self, context: Mapping[str, Any]) -> None:
        now = dt.datetime.now(dt.UTC)
        logical_date = now if self.logical_date is NOTSET else _parse_date(self.logical_date)
        conf = json.loads(self.conf) if isinstance(self.conf, str) else self.conf
        try:
            json.dumps(conf)
        except (TypeError, ValueError):
            raise ValueError(f"conf parameter should be JSON Serializable: {conf}") from None
        run_id = (
            str(self.trigger_run_id)
            if self.trigger_run_id
            else f"manual__{(logical_date or now).isoformat()}"
        )
        self.trigger_run_id = run_id
        raise DagRunTriggerException(
            trigger_dag_id=self.trigger_dag_id,
            dag_run_id=run_id,
            conf=conf,
            logical_date=logical_date,
            reset_dag_run=self.reset_dag_run,
            skip_when_already_exists=self.skip_when_already_exists,
            wait_for_completion=bool(self.wait_for_completion),
            allowed_states=self.allowed_states,
            failed_states=self.failed_states,
            poke_interval=self.poke_interval,
            deferrable=self.deferrable,
            fail_when_dag_is_paused=self.fail_when_dag_is_paused,
        )

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        states = (event or {}).get("states", {})
        self.trigger_run_id = next(iter(states), self.trigger_run_id)
        context["ti"].xcom_push("trigger_run_id", self.trigger_run_id)
        for run_id, state in states.items():
            if state in self.failed_states:
                # A failure retries apply to, as in Airflow (not FailTask).
                raise RuntimeError(f"{self.trigger_dag_id} failed with failed state {state} (run {run_id})")
            print(f"{self.trigger_dag_id} finished with allowed state {state}")

    def external_spec(self) -> dict[str, Any]:
        return {"kind": "trigger", "dag_id": self.trigger_dag_id}


def matching_count(
    ask: Any,
    dag_id: str,
    *,
    task_ids: Sequence[str] | None,
    group_id: str | None,
    dates: Sequence[dt.datetime] | None,
    run_ids: Sequence[str] | None,
    states: Sequence[str],
) -> float:
    """How many of the runs asked about have reached ``states``, as Airflow's sensor and
    trigger count them: for tasks, instances per task; for a group, runs whose every
    instance in it is there; else the runs themselves. ``ask`` answers Airflow 3's
    questions (``get_ti_count``, ``get_task_states``, ``get_dr_count``): a task's
    ``context["ti"]``, or the scheduler's view of the store."""
    dates = list(dates) if dates is not None else None
    runs = list(run_ids) if run_ids is not None else None
    if task_ids:
        n = ask.get_ti_count(
            dag_id, task_ids=list(task_ids), logical_dates=dates, run_ids=runs, states=list(states)
        )
        return n / len(task_ids)  # type: ignore[no-any-return]
    if group_id:
        by_run = ask.get_task_states(dag_id, task_group_id=group_id, logical_dates=dates, run_ids=runs)
        return sum(1 for tasks in by_run.values() if tasks and all(s in states for s in tasks.values()))
    return ask.get_dr_count(dag_id, logical_dates=dates, run_ids=runs, states=list(states))  # type: ignore[no-any-return]


def _states(values: Sequence[str] | None) -> list[str]:
    return [str(getattr(v, "value", v)) for v in values] if values else []


class ExternalTaskSensor(BaseSensorOperator):
    """Waits for another DAG's run (no task given), tasks (``external_task_id`` or
    ``external_task_ids``) or task group (``external_task_group_id``) at the same logical
    date — or ``execution_delta`` earlier, or the dates ``execution_date_fn`` returns — to
    reach ``allowed_states``. Reaching ``failed_states`` fails it (skips it with
    ``soft_fail``); reaching ``skipped_states`` skips it."""

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id", "external_task_ids",
                                      "external_task_group_id")  # fmt: skip
    ui_color = "#4db7db"

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        external_task_ids: Sequence[str] | None = None,
        external_task_group_id: str | None = None,
        allowed_states: Sequence[str] | None = None,
        skipped_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        execution_delta: dt.timedelta | None = None,
        execution_date_fn: Callable[..., Any] | None = None,
        check_existence: bool = False,
        poll_interval: float | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.allowed_states = _states(allowed_states) or ["success"]
        self.skipped_states = _states(skipped_states)
        self.failed_states = _states(failed_states)
        every = self.allowed_states + self.skipped_states + self.failed_states
        if len(set(every)) != len(every):
            raise ValueError(
                "Duplicate values provided across allowed_states, skipped_states and failed_states."
            )
        ids = list(external_task_ids) if external_task_ids else None
        if external_task_id is not None and ids is not None:
            raise ValueError("Only one of `external_task_id` or `external_task_ids` may be provided to "
                             "ExternalTaskSensor; use external_task_id or external_task_ids or "
                             "external_task_group_id.")  # fmt: skip
        if external_task_id is not None:
            ids = [external_task_id]
        if external_task_group_id is not None and ids is not None:
            raise ValueError("Only one of `external_task_group_id` or `external_task_ids` may be provided to "
                             "ExternalTaskSensor; use external_task_id or external_task_ids or "
                             "external_task_group_id.")  # fmt: skip
        valid = _TASK_STATES if (ids or external_task_group_id) else _RUN_STATES
        if not set(every) <= set(valid):
            raise ValueError(
                f"Valid values for `allowed_states`, `skipped_states` and `failed_states` here: {valid}"
            )
        if execution_delta is not None and execution_date_fn is not None:
            raise ValueError(
                "Only one of `execution_delta` or `execution_date_fn` may be provided to ExternalTaskSensor; not both."
            )
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = ids
        self.external_task_group_id = external_task_group_id
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.check_existence = check_existence
        self.deferrable = deferrable

    def _dates(self, context: Mapping[str, Any]) -> list[dt.datetime]:
        logical_date = context.get("logical_date") or context["dag_run"].logical_date
        if self.execution_delta:
            return [logical_date - self.execution_delta]
        if self.execution_date_fn:
            from millstream.sdk import execution

            args, kwargs = execution.call_arguments(self.execution_date_fn, (logical_date,), {}, context)
            result = self.execution_date_fn(*args, **kwargs)
            return list(result) if isinstance(result, (list, tuple)) else [result]
        return [logical_date]

    def _count(self, ti: Any, dates: list[dt.datetime], states: list[str]) -> float:
        return matching_count(
            ti,
            self.external_dag_id,
            task_ids=self.external_task_ids,
            group_id=self.external_task_group_id,
            dates=dates,
            run_ids=None,
            states=states,
        )

    def _what(self) -> str:
        if self.external_task_ids:
            return f"the external tasks {self.external_task_ids} in DAG {self.external_dag_id}"
        if self.external_task_group_id:
            return f"the external task group {self.external_task_group_id!r} in DAG {self.external_dag_id!r}"
        return f"the external DAG {self.external_dag_id}"

    def external_spec(self) -> dict[str, Any]:
        return {
            "kind": "sensor",
            "dag_id": self.external_dag_id,
            "task_ids": self.external_task_ids,
            "group_id": self.external_task_group_id,
        }

    def _check_existence(self, ti: Any) -> None:
        """A task or group the other DAG lacks fails at once, naming both (the DAG itself
        may not be deployed yet: only ``check_existence=True`` fails on that)."""
        known = ti.dag_task_ids(self.external_dag_id)
        if known is None:
            if self.check_existence:
                raise FailTask(f"The external DAG {self.external_dag_id} does not exist.")
            return
        missing = [t for t in self.external_task_ids or [] if t not in known]
        if missing:
            raise FailTask(
                f"ExternalTaskSensor {self.task_id!r} waits for task(s) {missing} that DAG "
                f"{self.external_dag_id!r} does not have"
            )
        group = self.external_task_group_id
        if group and not any(t.startswith(group + ".") for t in known):
            raise FailTask(
                f"ExternalTaskSensor {self.task_id!r} waits for task group {group!r} that DAG "
                f"{self.external_dag_id!r} does not have"
            )

    def poke(self, context: Mapping[str, Any]) -> bool:
        dates = self._dates(context)
        ti = context["ti"]
        self._check_existence(ti)
        print(f"Poking for {self._what()} on {','.join(d.isoformat() for d in dates)} ...")
        if self.failed_states and self._count(ti, dates, self.failed_states) > 0:
            if self.soft_fail:
                raise SkipTask(f"{self._what()} failed. Skipping due to soft_fail.")
            raise FailTask(f"{self._what()} failed.")
        if self.skipped_states and self._count(ti, dates, self.skipped_states) > 0:
            raise SkipTask(f"{self._what()} reached a state in our states-to-skip-on list. Skipping.")
        return self._count(ti, dates, self.allowed_states) == len(dates)

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self._check_existence(context["ti"])
        self.defer(
            trigger=WorkflowTrigger(
                external_dag_id=self.external_dag_id,
                logical_dates=self._dates(context),
                external_task_ids=self.external_task_ids,
                external_task_group_id=self.external_task_group_id,
                failed_states=self.failed_states,
                skipped_states=self.skipped_states,
                allowed_states=self.allowed_states,
                poke_interval=self.poke_interval,
                soft_fail=self.soft_fail,
            ),
            method_name="execute_complete",
            timeout=self.timeout,
        )

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        status = (event or {}).get("status")
        if status == "success":
            print(f"{self._what()} has executed successfully.")
        elif status == "skipped":
            raise SkipTask("External job has skipped skipping.")
        elif status == "failed":
            if self.soft_fail:
                raise SkipTask("External job has failed skipping.")
            raise FailTask("External job has failed.")
        else:
            if self.soft_fail:
                raise SkipTask("External job has failed skipping.")
            raise FailTask(
                f"Error occurred while trying to retrieve task status: {(event or {}).get('error')}"
            )


class ExternalTaskMarker(BaseOperator):
    """Marks that ``external_task_id`` of ``external_dag_id`` at ``logical_date`` depends on
    this task: clearing this task (with its downstream) clears that one too, and what is
    downstream of it, following markers there up to ``recursion_depth`` DAGs deep."""

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id", "logical_date")
    ui_color = "#4db7db"

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | dt.datetime | None = "{{ logical_date.isoformat() }}",
        recursion_depth: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if recursion_depth <= 0:
            raise ValueError("recursion_depth should be a positive integer")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.logical_date = (
            logical_date.isoformat() if isinstance(logical_date, dt.datetime) else logical_date
        )
        self.recursion_depth = recursion_depth

    def execute(self, context: Mapping[str, Any]) -> None:
        return None

    def external_spec(self) -> dict[str, Any]:
        return {
            "kind": "marker",
            "dag_id": self.external_dag_id,
            "task_ids": [self.external_task_id],
            "logical_date": self.logical_date,
            "recursion_depth": self.recursion_depth,
        }
