"""Millstream: a Python pipeline orchestrator with Airflow 3's TaskFlow authoring API.

Port an Airflow DAG by changing ``from airflow.sdk import dag, task`` to
``from millstream import dag, task``.
"""

from __future__ import annotations

import re as _re
import typing as _typing

from millstream.core.timetables import CronDataIntervalTimetable, CronTriggerTimetable
from millstream.core.trigger_rules import TriggerRule
from millstream.errors import (
    AirflowFailException,
    AirflowSkipException,
    FailTask,
    MillstreamError,
    SkipTask,
)
from millstream.sdk import engine as _engine
from millstream.sdk.asset_decorator import asset
from millstream.sdk.assets import (
    Asset,
    AssetAlias,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    AssetTrigger,
    AssetWatcher,
    FileArrivalWatcher,
    Metadata,
)
from millstream.sdk.baseoperator import BaseOperator, BaseSensorOperator
from millstream.sdk.context import get_current_context
from millstream.sdk.dag import DAG, dag
from millstream.sdk.deadlines import DeadlineAlert, DeadlineReference
from millstream.sdk.decorators import task
from millstream.sdk.edges import EdgeModifier, Label, chain, chain_linear, cross_downstream
from millstream.sdk.loader_api import load_dags
from millstream.sdk.masking import mask_secret
from millstream.sdk.operators import BashOperator, EmptyOperator, PythonOperator
from millstream.sdk.params import Param
from millstream.sdk.setup_teardown_decorators import setup, teardown
from millstream.sdk.taskgroup import TaskGroup, task_group
from millstream.sdk.xcom import PokeReturnValue, XComArg

if _typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from millstream.sdk.engine import ParsedFile
    from millstream.sdk.results import RunResult

__version__ = "0.1.0"


# The authoring layer cannot import the engine (see millstream.sdk.engine), so the engine
# is handed to it here. Each wrapper imports the engine on its first call: DAG files and
# ``import millstream`` must not pay for the scheduler and the store.


def _run_inline(
    dag: DAG,
    *,
    conf: Mapping[str, _typing.Any] | None,
    logical_date: datetime | None,
    mark_success_pattern: str | _re.Pattern[str] | None = None,
) -> RunResult:
    from millstream.testing import run_dag_inline

    return run_dag_inline(
        dag, conf=conf, logical_date=logical_date, mark_success_pattern=mark_success_pattern
    )


def _parse_files(paths: list[str], timeout: float) -> Sequence[ParsedFile]:
    from millstream.scheduler.parsing import parse_files

    return parse_files(paths, timeout)


_engine.register_inline_runner(_run_inline)
_engine.register_file_parser(_parse_files)


#: Loaded on first use, so that a DAG file pays only for what it names: Airflow's
#: standard provider and the deferral API (module -> names).
_LAZY = {
    "millstream.sdk.deferral": ("BaseTrigger", "TaskDeferred", "TriggerEvent"),
    "millstream.sdk.objectstorage": ("ObjectStoragePath",),
    "millstream.sdk.standard.branch": (
        "BaseBranchOperator", "BranchDateTimeOperator", "BranchDayOfWeekOperator", "BranchPythonOperator",
        "LatestOnlyOperator", "ShortCircuitOperator",
    ),
    "millstream.sdk.standard.cross_dag": ("ExternalTaskMarker", "ExternalTaskSensor", "TriggerDagRunOperator"),
    "millstream.sdk.standard.isolated": (
        "BranchExternalPythonOperator", "BranchPythonVirtualenvOperator", "ExternalPythonOperator",
        "PythonVirtualenvOperator",
    ),
    "millstream.sdk.standard.sensors": (
        "BashSensor", "DateTimeSensor", "DateTimeSensorAsync", "DayOfWeekSensor", "FileSensor", "PythonSensor",
        "TimeDeltaSensor", "TimeDeltaSensorAsync", "TimeSensor", "WaitSensor",
    ),
    "millstream.sdk.standard.triggers": (
        "DateTimeTrigger", "FileTrigger", "TimeDeltaTrigger", "FileDeleteTrigger", "DirectoryFileDeleteTrigger",
        "DagStateTrigger", "WorkflowTrigger",
    ),
    "millstream.sdk.standard.weekday": ("WeekDay",),
    "millstream.sdk.variable": ("Variable",),
    "millstream.sdk.connection": ("Connection",),
    "millstream.sdk.hooks.base": ("BaseHook",),
    "millstream.sdk.hooks.smtp": ("SmtpHook", "send_email"),
    "millstream.sdk.hooks.slack": ("SlackWebhookHook",),
    "millstream.sdk.hooks.http": ("HttpHook",),
    "millstream.sdk.standard.http": ("HttpOperator", "HttpSensor"),
    "millstream.sdk.hooks.sql": ("DbApiHook", "MySqlHook", "PostgresHook", "SqliteHook"),
    "millstream.sdk.standard.sql": ("SQLCheckOperator", "SQLExecuteQueryOperator", "SQLValueCheckOperator", "SqlSensor"),
    "millstream.sdk.standard.email": ("EmailOperator",),
    "millstream.sdk.notifications": ("BaseNotifier", "SlackWebhookNotifier", "SmtpNotifier", "WebhookNotifier"),
}  # fmt: skip
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'millstream' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DAG",
    "AirflowFailException",
    "AirflowSkipException",
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "AssetOrTimeSchedule",
    "AssetTrigger",
    "AssetWatcher",
    "BaseBranchOperator",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "BashOperator",
    "BashSensor",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchExternalPythonOperator",
    "BranchPythonOperator",
    "BranchPythonVirtualenvOperator",
    "Connection",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DagStateTrigger",
    "DateTimeSensor",
    "DateTimeSensorAsync",
    "DateTimeTrigger",
    "DayOfWeekSensor",
    "DbApiHook",
    "DeadlineAlert",
    "DeadlineReference",
    "DirectoryFileDeleteTrigger",
    "EdgeModifier",
    "EmailOperator",
    "EmptyOperator",
    "ExternalPythonOperator",
    "ExternalTaskMarker",
    "ExternalTaskSensor",
    "FailTask",
    "FileArrivalWatcher",
    "FileDeleteTrigger",
    "FileSensor",
    "FileTrigger",
    "HttpHook",
    "HttpOperator",
    "HttpSensor",
    "Label",
    "LatestOnlyOperator",
    "Metadata",
    "MillstreamError",
    "MySqlHook",
    "ObjectStoragePath",
    "Param",
    "PokeReturnValue",
    "PostgresHook",
    "PythonOperator",
    "PythonSensor",
    "PythonVirtualenvOperator",
    "SQLCheckOperator",
    "SQLExecuteQueryOperator",
    "SQLValueCheckOperator",
    "ShortCircuitOperator",
    "SkipTask",
    "SlackWebhookHook",
    "SlackWebhookNotifier",
    "SmtpHook",
    "SmtpNotifier",
    "SqlSensor",
    "SqliteHook",
    "TaskDeferred",
    "TaskGroup",
    "TimeDeltaSensor",
    "TimeDeltaSensorAsync",
    "TimeDeltaTrigger",
    "TimeSensor",
    "TriggerDagRunOperator",
    "TriggerEvent",
    "TriggerRule",
    "Variable",
    "WaitSensor",
    "WebhookNotifier",
    "WeekDay",
    "WorkflowTrigger",
    "XComArg",
    "asset",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "get_current_context",
    "load_dags",
    "mask_secret",
    "send_email",
    "setup",
    "task",
    "task_group",
    "teardown",
]
