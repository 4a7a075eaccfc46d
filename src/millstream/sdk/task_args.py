"""Task arguments: which ones Millstream understands, their defaults, and the checks
that turn a bad one into an error naming the task and the argument."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from millstream.core.trigger_rules import TriggerRule
from millstream.sdk.assets import outlet_key
from millstream.sdk.compat import OPERATOR_ARGUMENTS, refusal

#: Task arguments Millstream understands, with their defaults.
TASK_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "pool": None,
    "pool_slots": 1,
    "priority_weight": 1,
    "outlets": (),
    "inlets": (),
    "map_index_template": None,
    "max_active_tis_per_dagrun": None,
    "max_active_tis_per_dag": None,
    "depends_on_past": False,
    "ignore_first_depends_on_past": False,
    "wait_for_downstream": False,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "on_skipped_callback": None,
    "on_execute_callback": None,
    "multiple_outputs": False,
    "ignore_downstream_trigger_rules": True,
    "doc": None,
    "doc_md": None,
    "queue": None,
    "deadline": None,
    "do_xcom_push": True,
    "owner": "airflow",
    "email": None,
    "email_on_failure": True,
    "email_on_retry": True,
    "weight_rule": "downstream",
    "params": None,
    "task_display_name": None,
    "logger_name": None,
    "render_template_as_native_obj": None,
    "doc_json": None,
    "doc_yaml": None,
    "doc_rst": None,
    "pre_execute": None,
    "post_execute": None,
    "show_return_value_in_logs": True,
}

CALLBACKS = (
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
    "on_execute_callback",
)

WEIGHT_RULES = ("downstream", "upstream", "absolute")

#: Extra arguments of ``@task.sensor`` (names and meanings as in Airflow).
#: What ``@task.bash`` takes besides the task arguments (BashOperator's own).
BASH_DEFAULTS: dict[str, Any] = {
    "env": None,
    "append_env": False,
    "output_encoding": "utf-8",
    "skip_on_exit_code": 99,
    "cwd": None,
    "output_processor": None,  # called with the last line of output; its result is the task's
}


def kind_defaults(kind: str) -> dict[str, Any]:
    """The arguments a kind of decorated task takes on top of the task arguments."""
    return SENSOR_DEFAULTS if kind == "sensor" else BASH_DEFAULTS if kind == "bash" else {}


SENSOR_DEFAULTS: dict[str, Any] = {
    "poke_interval": 60.0,
    "timeout": 7 * 24 * 3600.0,
    "mode": "poke",
    "soft_fail": False,
    "exponential_backoff": False,
    "max_wait": None,
}

#: Airflow operator arguments with no setting of their own: accepted when they ask for
#: nothing Millstream cannot do, refused (with the reason) otherwise. See sdk/compat.py.
IGNORED_AIRFLOW_ARGS = frozenset(
    set(OPERATOR_ARGUMENTS) - set(TASK_DEFAULTS) - {"task_id", "dag", "default_args", "task_group"}
)


def _seconds(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{field} must be a timedelta or a number of seconds, got {type(value).__name__}")


def _check_config(config: Mapping[str, Any], where: str, kind: str = "python") -> dict[str, Any]:
    out: dict[str, Any] = {}
    known = {**TASK_DEFAULTS, **kind_defaults(kind)}
    for key, value in config.items():
        if key in IGNORED_AIRFLOW_ARGS:
            reason = refusal(key, value)
            if reason:
                raise ValueError(f"{where}: {key}={value!r} is refused: {reason}")
            continue
        if key not in known:
            raise TypeError(
                f"{where}: unknown task argument {key!r}; known arguments are {', '.join(sorted(known))}"
            )
        out[key] = value
    if out.get("weight_rule", "downstream") not in WEIGHT_RULES:
        raise ValueError(
            f"{where}: weight_rule must be one of {', '.join(WEIGHT_RULES)}, got {out['weight_rule']!r}"
        )
    if "trigger_rule" in out:
        try:
            out["trigger_rule"] = TriggerRule(out["trigger_rule"])
        except ValueError:
            raise ValueError(
                f"{where}: unknown trigger_rule {out['trigger_rule']!r}; use one of "
                f"{', '.join(r.value for r in TriggerRule)}"
            ) from None
    if "retries" in out and (not isinstance(out["retries"], int) or out["retries"] < 0):
        raise ValueError(f"{where}: retries must be a whole number >= 0, got {out['retries']!r}")
    if "mode" in out and out["mode"] not in ("poke", "reschedule"):
        raise ValueError(f"{where}: sensor mode must be 'poke' or 'reschedule', got {out['mode']!r}")
    for key in ("outlets", "inlets"):
        if key in out:
            value = out[key]
            items = list(value) if isinstance(value, list | tuple | set) else [value]
            for item in items:
                outlet_key(item, f"{where}: {key}")
            out[key] = tuple(items)
    for key in ("poke_interval", "timeout", "max_wait"):
        if key in out and out[key] is not None:
            out[key] = _seconds(out[key], key)
    return out
