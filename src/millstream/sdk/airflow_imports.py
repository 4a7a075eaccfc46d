"""The Airflow import hook: ``from airflow.sdk import DAG, task`` loads Millstream's names.

Turned on by the setting ``core.airflow_imports`` (``MILLSTREAM__CORE__AIRFLOW_IMPORTS``)
or a command's ``--airflow-imports``, so that an Airflow DAG folder loads unmodified.
Every module path in :data:`MODULES` imports as a module holding the Millstream objects
with those names; a name Millstream has no equivalent of fails the importing file with
``file:line: Millstream has no equivalent of airflow.x.Name``, and an unmapped module
likewise. Other files keep loading.

It never shadows a real ``apache-airflow`` in the same environment: when one is
installed, the hook stays off unless the setting is ``force``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

from millstream.sdk._location import caller_location

ENV_VAR = "MILLSTREAM__CORE__AIRFLOW_IMPORTS"
log = logging.getLogger(__name__)

_SDK = {
    "DAG": "millstream:DAG",
    "dag": "millstream:dag",
    "task": "millstream:task",
    "task_group": "millstream:task_group",
    "TaskGroup": "millstream:TaskGroup",
    "setup": "millstream:setup",
    "teardown": "millstream:teardown",
    "chain": "millstream:chain",
    "get_current_context": "millstream:get_current_context",
    "Context": "millstream.sdk.context:Context",
    "Param": "millstream:Param",
    "XComArg": "millstream:XComArg",
    "BaseOperator": "millstream:BaseOperator",
    "BaseSensorOperator": "millstream:BaseSensorOperator",
    "PokeReturnValue": "millstream:PokeReturnValue",
    "TriggerRule": "millstream:TriggerRule",
    "Asset": "millstream:Asset",
    "AssetWatcher": "millstream:AssetWatcher",
    "ObjectStoragePath": "millstream:ObjectStoragePath",
    "AssetAlias": "millstream:AssetAlias",
    "AssetAll": "millstream:AssetAll",
    "AssetAny": "millstream:AssetAny",
    "AssetOrTimeSchedule": "millstream:AssetOrTimeSchedule",
    "Metadata": "millstream:Metadata",
    "asset": "millstream:asset",
    "CronTriggerTimetable": "millstream:CronTriggerTimetable",
    "CronDataIntervalTimetable": "millstream:CronDataIntervalTimetable",
    "DeadlineAlert": "millstream:DeadlineAlert",
    "DeadlineReference": "millstream:DeadlineReference",
    "timezone": "millstream.sdk.timezone",
}
_EXCEPTIONS = {
    "AirflowException": "millstream.errors:MillstreamError",
    "TaskDeferred": "millstream.sdk.deferral:TaskDeferred",
    "AirflowSkipException": "millstream:AirflowSkipException",
    "AirflowFailException": "millstream:AirflowFailException",
    "AirflowSensorTimeout": "millstream.sdk.execution:SensorTimeout",
    "AirflowNotFoundException": "millstream.sdk.connection:ConnectionNotFoundError",
}
#: Variables, Connections, hooks and notifiers (the connections issue).
_SECRETS = {
    "Variable": "millstream.sdk.variable:Variable",
    "Connection": "millstream.sdk.connection:Connection",
    "BaseHook": "millstream.sdk.hooks.base:BaseHook",
    "BaseNotifier": "millstream.sdk.notifications:BaseNotifier",
}
_OPERATORS = {
    "EmptyOperator": "millstream:EmptyOperator",
    "BashOperator": "millstream:BashOperator",
    "PythonOperator": "millstream:PythonOperator",
    "get_current_context": "millstream:get_current_context",
}


_STD = {
    name: f"millstream.sdk.standard.{module}:{name}"
    for module, names in {
        "branch": "BaseBranchOperator BranchPythonOperator ShortCircuitOperator LatestOnlyOperator "
        "BranchDateTimeOperator BranchDayOfWeekOperator target_times_as_dates",
        "sensors": "DateTimeSensor DateTimeSensorAsync TimeSensor TimeDeltaSensor TimeDeltaSensorAsync "
        "WaitSensor DayOfWeekSensor FileSensor PythonSensor BashSensor",
        "triggers": "DateTimeTrigger TimeDeltaTrigger FileTrigger FileDeleteTrigger DirectoryFileDeleteTrigger "
        "DagStateTrigger WorkflowTrigger",
        "cross_dag": "TriggerDagRunOperator ExternalTaskSensor ExternalTaskMarker DagRunTriggerException",
        "isolated": "PythonVirtualenvOperator ExternalPythonOperator BranchPythonVirtualenvOperator "
        "BranchExternalPythonOperator",
        "weekday": "WeekDay",
    }.items()
    for name in names.split()
}
_STD.update(
    {
        name: f"millstream.sdk.deferral:{name}"
        for name in [
            "BaseTrigger",
            "TriggerEvent",
            "TaskSuccessEvent",
            "TaskFailedEvent",
            "TaskSkippedEvent",
            "TaskDeferred",
        ]
    }
)
_STD.update(
    {
        name: f"millstream.sdk.edges:{name}"
        for name in ["Label", "EdgeModifier", "chain_linear", "cross_downstream"]
    }
)


def _pick(names: dict[str, str], *keep: str) -> dict[str, str]:
    return {k: names[k] for k in keep}


_PY_STD = _pick(
    _STD,
    "BranchPythonOperator",
    "ShortCircuitOperator",
    "PythonVirtualenvOperator",
    "ExternalPythonOperator",
    "BranchPythonVirtualenvOperator",
    "BranchExternalPythonOperator",
)

#: Airflow module -> {name: "millstream.module:attribute" or "millstream.module"}.
MODULES: dict[str, dict[str, str]] = {
    "airflow": _pick(_SDK, "DAG"),
    "airflow.sdk": {
        **_SDK,
        **_SECRETS,
        **_pick(_EXCEPTIONS, "AirflowSkipException", "AirflowFailException"),
        **_pick(_STD, "BaseBranchOperator", "Label", "EdgeModifier", "chain_linear", "cross_downstream"),
    },
    "airflow.sdk.exceptions": _EXCEPTIONS,
    "airflow.exceptions": _EXCEPTIONS,
    "airflow.sdk.definitions.dag": _pick(_SDK, "DAG", "dag"),
    "airflow.sdk.definitions.taskgroup": _pick(_SDK, "TaskGroup", "task_group"),
    "airflow.sdk.definitions.param": _pick(_SDK, "Param"),
    "airflow.sdk.definitions.xcom_arg": _pick(_SDK, "XComArg"),
    "airflow.sdk.definitions.decorators": _pick(_SDK, "task", "dag", "task_group", "setup", "teardown"),
    "airflow.sdk.definitions.asset": _pick(_SDK, "Asset", "AssetAlias", "AssetAll", "AssetAny"),
    "airflow.sdk.definitions.context": _pick(_SDK, "Context", "get_current_context"),
    "airflow.sdk.bases.operator": _pick(_SDK, "BaseOperator", "chain"),
    "airflow.sdk.bases.sensor": _pick(_SDK, "BaseSensorOperator", "PokeReturnValue"),
    "airflow.decorators": _pick(_SDK, "task", "dag", "task_group", "setup", "teardown"),
    "airflow.models": {
        **_pick(_SDK, "DAG", "BaseOperator", "Param", "XComArg"),
        **_pick(_SECRETS, "Variable", "Connection"),
    },
    "airflow.models.variable": _pick(_SECRETS, "Variable"),
    "airflow.models.connection": _pick(_SECRETS, "Connection"),
    "airflow.sdk.definitions.variable": _pick(_SECRETS, "Variable"),
    "airflow.sdk.definitions.connection": _pick(_SECRETS, "Connection"),
    "airflow.hooks.base": _pick(_SECRETS, "BaseHook"),
    "airflow.sdk.bases.hook": _pick(_SECRETS, "BaseHook"),
    "airflow.sdk.bases.notifier": _pick(_SECRETS, "BaseNotifier"),
    "airflow.notifications.basenotifier": _pick(_SECRETS, "BaseNotifier"),
    "airflow.utils.email": {"send_email": "millstream.sdk.hooks.smtp:send_email"},
    "airflow.providers.smtp.hooks.smtp": {"SmtpHook": "millstream.sdk.hooks.smtp:SmtpHook"},
    "airflow.providers.smtp.operators.smtp": {"EmailOperator": "millstream.sdk.standard.email:EmailOperator"},
    "airflow.operators.email": {"EmailOperator": "millstream.sdk.standard.email:EmailOperator"},
    "airflow.providers.smtp.notifications.smtp": {
        "SmtpNotifier": "millstream.sdk.notifications:SmtpNotifier",
        "send_smtp_notification": "millstream.sdk.notifications:send_smtp_notification",
    },
    "airflow.providers.slack.notifications.slack_webhook": {
        "SlackWebhookNotifier": "millstream.sdk.notifications:SlackWebhookNotifier",
        "send_slack_webhook_notification": "millstream.sdk.notifications:send_slack_webhook_notification",
    },
    "airflow.providers.common.sql.hooks.sql": {
        n: f"millstream.sdk.hooks.sql:{n}" for n in ("DbApiHook", "fetch_all_handler", "fetch_one_handler")
    },
    "airflow.providers.common.sql.hooks.handlers": {
        n: f"millstream.sdk.hooks.sql:{n}"
        for n in ("fetch_all_handler", "fetch_one_handler", "return_single_query_results")
    },
    "airflow.providers.common.sql.operators.sql": {
        n: f"millstream.sdk.standard.sql:{n}"
        for n in ("BaseSQLOperator", "SQLExecuteQueryOperator", "SQLCheckOperator", "SQLValueCheckOperator")
    },
    "airflow.providers.common.sql.sensors.sql": {"SqlSensor": "millstream.sdk.standard.sql:SqlSensor"},
    "airflow.providers.postgres.hooks.postgres": {"PostgresHook": "millstream.sdk.hooks.sql:PostgresHook"},
    "airflow.providers.mysql.hooks.mysql": {"MySqlHook": "millstream.sdk.hooks.sql:MySqlHook"},
    "airflow.providers.sqlite.hooks.sqlite": {"SqliteHook": "millstream.sdk.hooks.sql:SqliteHook"},
    "airflow.providers.http.hooks.http": {"HttpHook": "millstream.sdk.hooks.http:HttpHook"},
    "airflow.providers.http.operators.http": {"HttpOperator": "millstream.sdk.standard.http:HttpOperator"},
    "airflow.providers.http.sensors.http": {"HttpSensor": "millstream.sdk.standard.http:HttpSensor"},
    "airflow.providers.http.triggers.http": {
        "HttpTrigger": "millstream.sdk.standard.http:HttpTrigger",
        "HttpSensorTrigger": "millstream.sdk.standard.http:HttpSensorTrigger",
    },
    "airflow.providers.http.exceptions": {
        "HttpErrorException": "millstream.sdk.hooks.http:HttpErrorException"
    },
    "airflow.providers.slack.hooks.slack_webhook": {
        "SlackWebhookHook": "millstream.sdk.hooks.slack:SlackWebhookHook"
    },
    "airflow.models.dag": _pick(_SDK, "DAG"),
    "airflow.models.baseoperator": {
        **_pick(_SDK, "BaseOperator", "chain"),
        **_pick(_STD, "chain_linear", "cross_downstream"),
    },
    "airflow.models.param": _pick(_SDK, "Param"),
    "airflow.models.xcom_arg": _pick(_SDK, "XComArg"),
    "airflow.operators.empty": _pick(_OPERATORS, "EmptyOperator"),
    "airflow.operators.bash": _pick(_OPERATORS, "BashOperator"),
    "airflow.operators.python": {**_pick(_OPERATORS, "PythonOperator", "get_current_context"), **_PY_STD},
    "airflow.providers.standard.operators.empty": _pick(_OPERATORS, "EmptyOperator"),
    "airflow.providers.standard.operators.bash": _pick(_OPERATORS, "BashOperator"),
    "airflow.providers.standard.operators.python": {
        **_pick(_OPERATORS, "PythonOperator", "get_current_context"),
        **_PY_STD,
    },
    "airflow.sensors.base": _pick(_SDK, "BaseSensorOperator", "PokeReturnValue"),
    "airflow.providers.common.compat.sdk": {
        **_pick(
            _SDK,
            "TriggerRule",
            "Context",
            "BaseOperator",
            "BaseSensorOperator",
            "PokeReturnValue",
            "timezone",
        ),
        **_pick(_STD, "BaseBranchOperator", "Label", "chain_linear", "cross_downstream"),
        **_EXCEPTIONS,
        **_SECRETS,
    },
    "airflow.utils.trigger_rule": _pick(_SDK, "TriggerRule"),
    "airflow.utils.task_group": _pick(_SDK, "TaskGroup"),
    "airflow.utils.timezone": {
        "datetime": "millstream.sdk.timezone:datetime",
        "utcnow": "millstream.sdk.timezone:utcnow",
    },
    "airflow.utils.helpers": _pick(_SDK, "chain"),
    "airflow.sdk.log": {"mask_secret": "millstream.sdk.masking:mask_secret"},
    "airflow.utils.log.secrets_masker": {
        "mask_secret": "millstream.sdk.masking:mask_secret",
        "redact": "millstream.sdk.masking:redact",
    },
    "airflow.timetables.trigger": _pick(_SDK, "CronTriggerTimetable"),
    "airflow.timetables.interval": _pick(_SDK, "CronDataIntervalTimetable"),
    **{
        f"{prefix}.{module}": _pick(_STD, *names.split())
        for module, names in {
            "operators.branch": "BaseBranchOperator",
            "operators.latest_only": "LatestOnlyOperator",
            "operators.datetime": "BranchDateTimeOperator target_times_as_dates",
            "operators.weekday": "BranchDayOfWeekOperator",
            "sensors.date_time": "DateTimeSensor DateTimeSensorAsync",
            "sensors.time": "TimeSensor",
            "sensors.time_sensor": "TimeSensor",
            "sensors.time_delta": "TimeDeltaSensor TimeDeltaSensorAsync WaitSensor",
            "sensors.weekday": "DayOfWeekSensor",
            "sensors.filesystem": "FileSensor",
            "sensors.python": "PythonSensor",
            "sensors.bash": "BashSensor",
            "triggers.temporal": "DateTimeTrigger TimeDeltaTrigger",
            "triggers.file": "FileTrigger FileDeleteTrigger DirectoryFileDeleteTrigger",
            "triggers.external_task": "DagStateTrigger WorkflowTrigger",
            "operators.trigger_dagrun": "TriggerDagRunOperator",
            "sensors.external_task": "ExternalTaskSensor ExternalTaskMarker",
            "utils.weekday": "WeekDay",
        }.items()
        for prefix in ("airflow", "airflow.providers.standard")
    },
    "airflow.triggers.base": _pick(
        _STD, "BaseTrigger", "TriggerEvent", "TaskSuccessEvent", "TaskFailedEvent", "TaskSkippedEvent"
    ),
    "airflow.utils.edgemodifier": _pick(_STD, "Label", "EdgeModifier"),
    "airflow.sdk.io.path": _pick(_SDK, "ObjectStoragePath"),
    "airflow.io.path": _pick(_SDK, "ObjectStoragePath"),
    "airflow.sdk.definitions.edges": _pick(_STD, "Label", "EdgeModifier"),
    "airflow.sdk.bases.branch": _pick(_STD, "BaseBranchOperator"),
    "airflow.datasets": {
        "Dataset": "millstream:Asset",
        "DatasetAlias": "millstream:AssetAlias",
        "DatasetAll": "millstream:AssetAll",
        "DatasetAny": "millstream:AssetAny",
    },
}

#: Every prefix of a mapped module is a package, so ``import airflow.sdk`` works.
_PACKAGES = frozenset(".".join(m.split(".")[:i]) for m in MODULES for i in range(1, m.count(".") + 1))


class NoEquivalentError(ImportError):
    """An Airflow name or module Millstream has nothing for."""


def _no_equivalent(what: str) -> NoEquivalentError:
    filename, lineno = caller_location()
    where = f"{filename}:{lineno}: " if filename else ""
    return NoEquivalentError(f"{where}Millstream has no equivalent of {what}", name=what)


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


class _AirflowModule(types.ModuleType):
    """A mapped Airflow module: its names resolve to Millstream objects on first use."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__millstream_names__ = MODULES.get(name, {})
        if name in _PACKAGES:
            self.__path__: list[str] = []

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        target = self.__millstream_names__.get(attr)
        if target is None:
            sub = f"{self.__name__}.{attr}"
            if sub in MODULES or sub in _PACKAGES:
                return importlib.import_module(sub)
            raise _no_equivalent(sub)
        value = _resolve(target)
        setattr(self, attr, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(self.__millstream_names__)


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name not in MODULES and spec.name not in _PACKAGES:
            raise _no_equivalent(spec.name)
        return _AirflowModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class AirflowFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ``airflow`` and ``airflow.*`` with Millstream's modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "airflow" and not fullname.startswith("airflow."):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=fullname in _PACKAGES)


_FINDER = AirflowFinder()


def real_airflow_installed() -> bool:
    return importlib.machinery.PathFinder.find_spec("airflow") is not None


@functools.lru_cache(maxsize=8)
def _from_settings(home: str | None, config: str | None) -> str:
    """The settings file's choice; read once per home, not once per DAG file parsed."""
    from millstream.settings import Settings

    try:
        return str(Settings.load().airflow_imports)
    except Exception:  # noqa: BLE001 - a broken settings file is reported by the commands
        return "false"


def wanted() -> str:
    """``off``, ``on`` or ``force``, from the environment or else the settings file."""
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        raw = _from_settings(os.environ.get("MILLSTREAM_HOME"), os.environ.get("MILLSTREAM_CONFIG"))
    value = raw.strip().lower()
    if value == "force":
        return "force"
    return "on" if value in ("1", "true", "yes", "on") else "off"


def install(mode: str = "on") -> bool:
    """Put the hook in front of the import system; False when a real Airflow is kept."""
    if _FINDER in sys.meta_path:
        return True
    if mode != "force" and real_airflow_installed():
        log.warning(
            "apache-airflow is installed here, so `import airflow` stays the real one; set "
            "core.airflow_imports = 'force' to load Millstream's names instead"
        )
        return False
    sys.meta_path.insert(0, _FINDER)
    return True


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        if isinstance(sys.modules[name], _AirflowModule):
            del sys.modules[name]


def install_if_wanted() -> None:
    mode = wanted()
    if mode != "off":
        install(mode)


def missing_names(module: str, names: Sequence[str]) -> list[str]:
    """Which of ``from module import names`` the hook cannot give (``module.name``);
    the whole module when it is not mapped at all."""
    if module != "airflow" and not module.startswith("airflow."):
        return []
    if module not in MODULES and module not in _PACKAGES:
        return [module]
    known = MODULES.get(module, {})
    out = []
    for n in names:
        sub = f"{module}.{n}"
        if n != "*" and n not in known and sub not in MODULES and sub not in _PACKAGES:
            out.append(sub)
    return out


def scan_file(path: str) -> list[tuple[int, str]]:
    """Every ``airflow.*`` import in ``path`` the hook cannot give, as (line, name), read
    from the file's syntax tree without running it; empty when the file does not parse
    (loading it reports the syntax error)."""
    import ast

    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.extend((node.lineno, n) for n in missing_names(node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                out.extend((node.lineno, n) for n in missing_names(a.name, []))
    return sorted(set(out))
