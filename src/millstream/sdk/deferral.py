"""Deferrable tasks, Airflow's triggerer model.

An operator calls ``self.defer(trigger=..., method_name=...)``: the attempt ends and gives
its worker slot back, the instance is ``deferred``, and the trigger — an ``async def run()``
that yields :class:`TriggerEvent` — waits on a triggerer instead of a worker. When it
fires, the task resumes on any worker at ``method_name(context, event=payload)``.

A trigger crosses processes as ``serialize()``: its class path and the keyword arguments
that rebuild it. Those arguments are stored as JSON; datetimes, dates, times and
timedeltas are tagged so they come back as themselves.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

#: Airflow's class paths for the triggers Millstream has (they serialize under them too,
#: so a trigger row written by Airflow's code paths is still understood).
AIRFLOW_TRIGGERS = {
    "airflow.providers.http.triggers.http.HttpTrigger": "millstream.sdk.standard.http.HttpTrigger",
    "airflow.providers.http.triggers.http.HttpSensorTrigger": "millstream.sdk.standard.http.HttpSensorTrigger",
    "airflow.providers.standard.triggers.temporal.DateTimeTrigger": (
        "millstream.sdk.standard.triggers.DateTimeTrigger"
    ),
    "airflow.providers.standard.triggers.temporal.TimeDeltaTrigger": (
        "millstream.sdk.standard.triggers.TimeDeltaTrigger"
    ),
    "airflow.providers.standard.triggers.file.FileTrigger": "millstream.sdk.standard.triggers.FileTrigger",
    "airflow.providers.standard.triggers.file.FileDeleteTrigger": (
        "millstream.sdk.standard.triggers.FileDeleteTrigger"
    ),
    "airflow.providers.standard.triggers.file.DirectoryFileDeleteTrigger": (
        "millstream.sdk.standard.triggers.DirectoryFileDeleteTrigger"
    ),
    "airflow.providers.standard.triggers.external_task.DagStateTrigger": (
        "millstream.sdk.standard.triggers.DagStateTrigger"
    ),
    "airflow.providers.standard.triggers.external_task.WorkflowTrigger": (
        "millstream.sdk.standard.triggers.WorkflowTrigger"
    ),
}

#: Triggers that wait on the store: the scheduler evaluates them, no triggerer claims them.
SCHEDULER_EVALUATED = (
    "millstream.sdk.standard.triggers.DagStateTrigger",
    "millstream.sdk.standard.triggers.WorkflowTrigger",
)


class TriggerEvent:
    """What a trigger yields when the wait is over; ``payload`` is handed to the task."""

    def __init__(self, payload: Any = None) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TriggerEvent) and type(other) is type(self) and other.payload == self.payload

    def __hash__(self) -> int:
        return hash((type(self), repr(self.payload)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.payload!r}>"


class TaskSuccessEvent(TriggerEvent):
    """Ends the task as success from the triggerer, without resuming it on a worker."""

    def __init__(self, *, xcoms: Mapping[str, Any] | None = None) -> None:
        super().__init__({"state": "success", "xcoms": dict(xcoms or {})})


class TaskFailedEvent(TriggerEvent):
    """Ends the task as failed from the triggerer."""

    def __init__(self, *, xcoms: Mapping[str, Any] | None = None) -> None:
        super().__init__({"state": "failed", "xcoms": dict(xcoms or {})})


class TaskSkippedEvent(TriggerEvent):
    """Ends the task as skipped from the triggerer."""

    def __init__(self, *, xcoms: Mapping[str, Any] | None = None) -> None:
        super().__init__({"state": "skipped", "xcoms": dict(xcoms or {})})


class BaseTrigger:
    """Subclass it: ``serialize()`` returns ``(class path, kwargs)`` that rebuild an equal
    trigger, and ``async def run()`` yields a :class:`TriggerEvent` when the wait is over.

    ``run()`` must await rather than block: every trigger of a triggerer shares one event
    loop. ``cleanup()`` is called when the trigger stops, fired or cancelled."""

    def __init__(self, **kwargs: Any) -> None:
        self.trigger_id: int | None = None
        self.task_instance: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} must define serialize()")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        raise NotImplementedError(f"{type(self).__name__} must define async def run()")
        yield  # pragma: no cover - makes this an async generator

    async def cleanup(self) -> None:
        return None

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        return f"<{classpath} {kwargs}>"


class TaskDeferred(Exception):  # noqa: N818 - Airflow's name; control flow, not an error
    """Raised by :meth:`BaseOperator.defer`: the attempt ends and waits on ``trigger``."""

    def __init__(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: Mapping[str, Any] | None = None,
        timeout: dt.timedelta | float | None = None,
    ) -> None:
        super().__init__(f"deferred to {type(trigger).__name__}, resuming at {method_name}")
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs = dict(kwargs or {})
        if isinstance(timeout, (int, float)):
            timeout = dt.timedelta(seconds=timeout)
        self.timeout = timeout


class DeferralError(Exception):
    """A deferral that cannot work: a trigger that does not round-trip, a missing method."""


# -- JSON with dates --------------------------------------------------------------------------


def _tag(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__date__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__time__": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"__td__": value.total_seconds()}
    if isinstance(value, Mapping):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_tag(v) for v in (sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value)]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (k, v), *_ = value.items()
            if k == "__dt__":
                return dt.datetime.fromisoformat(v)
            if k == "__date__":
                return dt.date.fromisoformat(v)
            if k == "__time__":
                return dt.time.fromisoformat(v)
            if k == "__td__":
                return dt.timedelta(seconds=v)
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(_tag(value), sort_keys=True)


def loads(text: str | None) -> Any:
    return _untag(json.loads(text)) if text else None


def resume_kwargs(next_kwargs: str | None, event: str) -> str:
    """The keyword arguments a resumed task gets (JSON): the deferral's, plus ``event``."""
    return dumps({**(loads(next_kwargs) or {}), "event": loads(event)["payload"]})


# -- rebuilding -------------------------------------------------------------------------------


def trigger_class(classpath: str) -> type[BaseTrigger]:
    path = AIRFLOW_TRIGGERS.get(classpath, classpath)
    module, _, name = path.rpartition(".")
    if not module:
        raise DeferralError(f"trigger class path {classpath!r} must be 'package.module.ClassName'")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise DeferralError(
            f"cannot import trigger {classpath!r}: {e}; a trigger class must live in a module the "
            "triggerer can import (a package, or a module in the DAG folder), not in the DAG file"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, BaseTrigger)):
        raise DeferralError(f"{classpath!r} is not a BaseTrigger subclass")
    return cls


_MISSING = object()


def _state(trigger: BaseTrigger) -> dict[str, str]:
    """A trigger's public attributes, as text: what a rebuilt one must have the same of."""
    return {
        k: repr(v)
        for k, v in vars(trigger).items()
        if not k.startswith("_") and k not in ("trigger_id", "task_instance")
    }


def build_trigger(classpath: str, kwargs_json: str) -> BaseTrigger:
    return trigger_class(classpath)(**(loads(kwargs_json) or {}))


def serialized(deferred: TaskDeferred, operator: Any, started: dt.datetime) -> dict[str, Any]:
    """What the store keeps of a deferral; raises :class:`DeferralError` with what to fix
    when the trigger would not come back as itself or the operator cannot resume."""
    trigger = deferred.trigger
    name = type(trigger).__name__
    if not isinstance(trigger, BaseTrigger):
        raise DeferralError(f"defer(trigger=...) takes a BaseTrigger, got {name}")
    if deferred.method_name != "__fail__" and not callable(getattr(operator, deferred.method_name, None)):
        raise DeferralError(
            f"defer(method_name={deferred.method_name!r}): {type(operator).__name__} has no method "
            f"{deferred.method_name!r} to resume at"
        )
    classpath, kwargs = trigger.serialize()
    try:
        kwargs_json = dumps(kwargs)
        next_json = dumps(deferred.kwargs)
    except TypeError as e:
        raise DeferralError(f"trigger {name}'s serialize() gave arguments that cannot be stored: {e}") from e
    try:
        rebuilt = build_trigger(classpath, kwargs_json)
        again = rebuilt.serialize()
    except DeferralError:
        raise
    except Exception as e:
        raise DeferralError(
            f"trigger {name}'s serialize() does not round-trip: {classpath}(**{kwargs!r}) raised "
            f"{type(e).__name__}: {e}"
        ) from e
    lost = sorted(k for k, v in _state(trigger).items() if _state(rebuilt).get(k, _MISSING) != v)
    if again[0] != classpath or dumps(again[1]) != kwargs_json or lost:
        raise DeferralError(
            f"trigger {name}'s serialize() does not round-trip: rebuilt from {kwargs!r} it "
            + (f"has other values of {', '.join(lost)}" if lost else f"serializes as {again[1]!r}")
            + "; serialize() must return every argument __init__ needs"
        )
    timeout_at = started + deferred.timeout if deferred.timeout is not None else None
    return {
        "classpath": classpath,
        "kwargs": kwargs_json,
        "method_name": deferred.method_name,
        "next_kwargs": next_json,
        "timeout_at": timeout_at,
    }
