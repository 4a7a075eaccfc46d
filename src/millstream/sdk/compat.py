"""Every argument of Airflow 3.3's ``BaseOperator`` and what Millstream does with it.

This table is the single answer to "does Millstream honour argument X?": task argument
checking refuses what it says to refuse, and docs/airflow-compatibility.md is generated
from it (a test keeps the two equal, and checks that the table covers every argument of
Airflow 3.3.2's ``BaseOperator.__init__``, recorded in tests/data/airflow/).

An argument is *honoured* (Airflow's meaning), *refused* (an error at load time saying
why, when its value asks for something Millstream cannot do; Airflow's default values
are accepted because they ask for nothing), or *not applicable* (it only tunes something
Millstream does not have, such as a warning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HONOURED = "honoured"
REFUSED = "refused"
NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Argument:
    status: str
    note: str
    #: For refused arguments: which values are refused (the rest ask for nothing).
    refuse_if: Callable[[Any], bool] | None = None


def _truthy(value: Any) -> bool:
    return bool(value)


def _not_none(value: Any) -> bool:
    return value is not None


def _never(value: Any) -> bool:
    return False


def _h(note: str) -> Argument:
    return Argument(HONOURED, note)


def _r(note: str, refuse_if: Callable[[Any], bool] = _not_none) -> Argument:
    return Argument(REFUSED, note, refuse_if)


#: Airflow 3.3's BaseOperator arguments, in its order.
OPERATOR_ARGUMENTS: dict[str, Argument] = {
    "task_id": _h("The task's id; inside a task group it is prefixed with the group's id."),
    "owner": _h("Kept as `task.owner` and given to Bash commands as `AIRFLOW_CTX_DAG_OWNER`."),
    "email": _h("Addresses (a list, or a string separated by commas) that task mail goes to."),
    "email_on_retry": _h(
        "With `email`: mail when an attempt fails and will be retried (default true, as in Airflow), "
        "through the `[smtp]` settings."
    ),
    "email_on_failure": _h(
        "With `email`: mail when the task fails for good (default true), through the `[smtp]` settings."
    ),
    "retries": _h("Attempts after the first."),
    "retry_delay": _h("Wait before a retry (timedelta or seconds)."),
    "retry_exponential_backoff": _h("Doubling waits (or a factor), with jitter."),
    "max_retry_delay": _h("Cap on the backoff wait."),
    "retry_policy": _r("Retry policies are not supported; use retries, retry_delay and backoff."),
    "start_date": _r(
        "A task-level start date other than the DAG's is refused: Millstream runs every task of a run. "
        "In default_args it becomes the DAG's start_date, as in Airflow.",
        _never,  # checked against the DAG's by the task itself
    ),
    "end_date": _r("A task-level end date other than the DAG's is refused, like start_date.", _never),
    "depends_on_past": _h(
        "An instance waits until the same task succeeded or was skipped in the previous run by "
        "logical date (with catchup: the previous non-manual run); the first run, and the first run "
        "of a backfill, do not wait. The waiting instance says why in its state reason."
    ),
    "ignore_first_depends_on_past": _h(
        "With depends_on_past: a task with no instance in any earlier run does not wait."
    ),
    "wait_for_past_depends_before_skipping": _r(
        "Refused when true: a task that would be skipped waiting for its past dependencies first "
        "is not built yet.",
        _truthy,
    ),
    "wait_for_downstream": _h(
        "Implies depends_on_past, and also waits for the task's direct downstream tasks in the "
        "previous run to have succeeded or been skipped."
    ),
    "dag": _h("The DAG the task belongs to, instead of the enclosing `with DAG`."),
    "params": _h("Task params, merged over the DAG's; a run's conf still overrides both."),
    "default_args": _h("Operator arguments from the DAG's and task group's default_args."),
    "priority_weight": _h("Dispatch order under contention, with weight_rule."),
    "weight_rule": _h(
        "`downstream` (default), `upstream` or `absolute`: how the effective weight is summed."
    ),
    "queue": _h("Routes the task to the workers of that queue (Celery)."),
    "pool": _h("Runs the task in a pool's slots."),
    "pool_slots": _h("Slots the task takes in its pool."),
    "sla": _r("Airflow 3 removed SLAs; use deadline=DeadlineAlert(...) on the DAG."),
    "execution_timeout": _h("Stops an attempt that runs longer."),
    "on_execute_callback": _h("Called before execute."),
    "on_failure_callback": _h("Called when an attempt fails for good."),
    "on_success_callback": _h("Called on success."),
    "on_retry_callback": _h("Called when an attempt fails and will be retried."),
    "on_skipped_callback": _h("Called when the task is skipped."),
    "pre_execute": _h("Called with the context before execute (after pre_execute hooks of the class)."),
    "post_execute": _h("Called with the context and the result after execute."),
    "trigger_rule": _h("When the task runs, given its upstream states."),
    "resources": _r("Per-task resources are not applicable to Millstream's executors.", _truthy),
    "run_as_user": _r("Running a task as another Unix user is not supported.", _truthy),
    "map_index_template": _h("Labels each mapped instance."),
    "max_active_tis_per_dag": _h("Concurrent instances of the task across runs."),
    "max_active_tis_per_dagrun": _h("Concurrent instances of the task within a run."),
    "executor": _r("Per-task executors are not supported; the scheduler has one executor.", _truthy),
    "executor_config": _r(
        "Executor-specific settings (pod overrides and the like) are not supported.", _truthy
    ),
    "do_xcom_push": _h("False: the return value is not kept as a result."),
    "multiple_outputs": _h("A returned dict's keys become separate results."),
    "inlets": _h("Assets the task reads (`inlet_events`)."),
    "outlets": _h("Assets the task updates; their consumers are triggered."),
    "task_group": _h("The group the task belongs to, instead of the enclosing `with TaskGroup`."),
    "doc": _h("Shown as the task's documentation."),
    "doc_md": _h("Shown as the task's documentation."),
    "doc_json": _h("Shown as the task's documentation."),
    "doc_yaml": _h("Shown as the task's documentation."),
    "doc_rst": _h("Shown as the task's documentation."),
    "task_display_name": _h("Shown instead of the task id by the CLI, API and UI."),
    "logger_name": _h("The name of `self.log`."),
    "allow_nested_operators": Argument(
        NOT_APPLICABLE,
        "Silences Airflow's warning about operators created in execute(); Millstream has none.",
    ),
    "render_template_as_native_obj": _h("Overrides the DAG's setting for this task's templates."),
}


def _false(value: Any) -> bool:
    return value is False


def _positive(value: Any) -> bool:
    return bool(value) and value > 0


#: Airflow 3.3's ``DAG`` arguments, in its order.
DAG_ARGUMENTS: dict[str, Argument] = {
    "dag_id": _h("The DAG's id."),
    "description": _h("Shown in the DAG list and API."),
    "default_args": _h("Operator arguments for every task; start_date and end_date become the DAG's."),
    "start_date": _h("The first data interval starts here."),
    "end_date": _h("No scheduled runs after it."),
    "schedule": _h("Cron, preset, timedelta, timetable, assets or an asset condition."),
    "template_searchpath": _h("Folders searched for template files, after the DAG file's own."),
    "template_undefined": _h("Jinja's undefined class (StrictUndefined by default)."),
    "user_defined_macros": _h("Extra names in every template."),
    "user_defined_filters": _h("Extra Jinja filters."),
    "max_active_tasks": _h("Running task instances of the DAG at once, across its runs."),
    "max_active_runs": _h("Running runs at once."),
    "max_consecutive_failed_dag_runs": _r(
        "Refused when above 0: pausing a DAG after that many failed runs in a row is not built yet.",
        _positive,
    ),
    "dagrun_timeout": _h("A run still running after it fails."),
    "deadline": _h("DeadlineAlert: a callback when a run misses its deadline."),
    "sla_miss_callback": _r("Airflow 3 removed SLAs; use deadline=DeadlineAlert(...)."),
    "catchup": _h("Create the runs of intervals missed since start_date."),
    "on_success_callback": _h("Called when a run succeeds."),
    "on_failure_callback": _h("Called when a run fails."),
    "doc_md": _h("Shown as the DAG's documentation."),
    "params": _h("Run parameters with defaults and JSON-schema checks."),
    "access_control": _r(
        "Per-DAG permissions are refused: Millstream's users are admins or viewers of every DAG.", _truthy
    ),
    "is_paused_upon_creation": _h("Overrides the setting `scheduler.paused_on_creation` for this DAG."),
    "jinja_environment_kwargs": _h("Options of the DAG's Jinja environment."),
    "render_template_as_native_obj": _h("Templates render to Python objects (a NativeEnvironment)."),
    "tags": _h("Shown and filterable in the DAG list, CLI and API."),
    "owner_links": _h("Owner name -> URL (or mailto:); the UI links the owners in the DAG's header."),
    "auto_register": _r("Refused when False: Millstream collects every DAG a file creates.", _false),
    "fail_fast": _r(
        "Refused when true: stopping a run's other tasks at its first failure is not built yet.", _truthy
    ),
    "allowed_run_types": _r("Refused when set: every run type is allowed.", _not_none),
    "dag_display_name": _h("Shown instead of the DAG id in the UI and API."),
    "task_group": _r("Refused when set: a DAG's root task group is its own.", _not_none),
    "disable_bundle_versioning": _r(
        "Refused when true: each run keeps the code of the DAG version it started with.", _truthy
    ),
    "rerun_with_latest_version": _r(
        "Refused when set: a cleared run reruns with the code it started with.", _not_none
    ),
}


def dag_refusal(name: str, value: Any) -> str | None:
    """Why ``DAG(name=value)`` is refused, or None if Millstream honours it."""
    arg = DAG_ARGUMENTS.get(name)
    if arg is None or arg.status != REFUSED or arg.refuse_if is None:
        return None
    return arg.note if arg.refuse_if(value) else None


def refusal(name: str, value: Any) -> str | None:
    """Why ``name=value`` is refused, or None if Millstream honours it."""
    arg = OPERATOR_ARGUMENTS.get(name)
    if arg is None or arg.status != REFUSED or arg.refuse_if is None:
        return None
    return arg.note if arg.refuse_if(value) else None


def markdown() -> str:
    """docs/airflow-compatibility.md (``python -m millstream.sdk.compat > docs/airflow-compatibility.md``)."""
    lines = [
        "# Airflow compatibility",
        "",
        "Generated from `src/millstream/sdk/compat.py` by `python -m millstream.sdk.compat`; a test",
        "fails when this file and the table in the code differ, or when the table misses an",
        "argument of Airflow 3.3.2's `BaseOperator` or `DAG`.",
        "",
        "Each argument is **honoured** with Airflow's meaning, **refused** at load time with the",
        "reason below (when its value asks for something Millstream cannot do; Airflow's default",
        "values ask for nothing and are accepted), or **not applicable**.",
        "",
        "## `BaseOperator` arguments",
        "",
        "| Argument | Status | Notes |",
        "|---|---|---|",
    ]
    for name, arg in OPERATOR_ARGUMENTS.items():
        note = arg.note.replace("|", "\\|")
        lines.append(f"| `{name}` | {arg.status} | {note} |")
    lines += ["", "## `DAG` arguments", "", "| Argument | Status | Notes |", "|---|---|---|"]
    for name, arg in DAG_ARGUMENTS.items():
        note = arg.note.replace("|", "\\|")
        lines.append(f"| `{name}` | {arg.status} | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
