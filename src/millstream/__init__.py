"""Millstream: a Python pipeline orchestrator with Airflow 3's TaskFlow authoring API.

Port an Airflow DAG by changing ``from airflow.sdk import dag, task`` to
``from millstream import dag, task``.
"""

from __future__ import annotations

from millstream.core.timetables import CronDataIntervalTimetable, CronTriggerTimetable
from millstream.core.trigger_rules import TriggerRule
from millstream.errors import (
    AirflowFailException,
    AirflowSkipException,
    FailTask,
    MillstreamError,
    SkipTask,
)
from millstream.sdk.asset_decorator import asset
from millstream.sdk.assets import (
    Asset,
    AssetAlias,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    AssetTrigger,
    FileArrivalWatcher,
    Metadata,
)
from millstream.sdk.context import get_current_context
from millstream.sdk.dag import DAG, dag
from millstream.sdk.deadlines import DeadlineAlert, DeadlineReference
from millstream.sdk.loader_api import load_dags
from millstream.sdk.operators import BashOperator, EmptyOperator, PythonOperator
from millstream.sdk.params import Param
from millstream.sdk.setup_teardown import setup, teardown
from millstream.sdk.task import chain, task
from millstream.sdk.taskgroup import TaskGroup, task_group
from millstream.sdk.xcom import PokeReturnValue, XComArg

__version__ = "0.1.0"

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
    "BashOperator",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DeadlineAlert",
    "DeadlineReference",
    "EmptyOperator",
    "FailTask",
    "FileArrivalWatcher",
    "Metadata",
    "MillstreamError",
    "Param",
    "PokeReturnValue",
    "PythonOperator",
    "SkipTask",
    "TaskGroup",
    "TriggerRule",
    "XComArg",
    "asset",
    "chain",
    "dag",
    "get_current_context",
    "load_dags",
    "setup",
    "task",
    "task_group",
    "teardown",
]
