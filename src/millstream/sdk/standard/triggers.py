"""The standard triggers: a moment, a delay, a file. They run on a triggerer's event loop.

They sleep until their moment in one ``asyncio.sleep`` (checked again after waking, in at
most minute-long steps so a clock that jumps is noticed), which is what lets one process
hold ten thousand of them at almost no CPU.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from collections.abc import AsyncIterator
from typing import Any

from millstream.sdk.deferral import BaseTrigger, TaskSuccessEvent, TriggerEvent


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("You cannot pass naive datetimes to DateTimeTrigger; give a timezone")
    return moment.astimezone(dt.UTC)


class DateTimeTrigger(BaseTrigger):
    """Fires at ``moment`` (an aware datetime) with the moment as payload; with
    ``end_from_trigger`` it ends the task as success instead of resuming it."""

    def __init__(
        self,
        moment: dt.datetime | None = None,
        *,
        target_time: dt.datetime | str | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()
        if (moment is None) == (target_time is None):
            raise TypeError("DateTimeTrigger requires exactly one of 'moment' or 'target_time'")
        if moment is not None and not isinstance(moment, dt.datetime):
            raise TypeError(f"Expected datetime.datetime type for moment. Got {type(moment)}")
        self.target_time = target_time
        self._moment = _utc(moment) if moment is not None else None
        self.end_from_trigger = end_from_trigger

    @property
    def moment(self) -> dt.datetime:
        if self._moment is None:
            value: Any = self.target_time
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            if not isinstance(value, str) or not value:
                raise TypeError("DateTimeTrigger has neither a 'moment' nor a usable 'target_time'")
            parsed = dt.datetime.fromisoformat(value)
            self._moment = _utc(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))
        return self._moment

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = (
            {"target_time": self.target_time} if self._moment is None else {"moment": self._moment}
        )
        kwargs["end_from_trigger"] = self.end_from_trigger
        return ("millstream.sdk.standard.triggers.DateTimeTrigger", kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio  # here, not at the top: `import millstream` must not pay for asyncio

        while (left := (self.moment - dt.datetime.now(dt.UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(left, 60.0))
        if self.end_from_trigger:
            yield TaskSuccessEvent()
        else:
            yield TriggerEvent(self.moment)


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires ``delta`` after it was created; serializes as the :class:`DateTimeTrigger` of
    that moment, so a restart does not start the wait over."""

    def __init__(self, delta: dt.timedelta, *, end_from_trigger: bool = False) -> None:
        super().__init__(moment=dt.datetime.now(dt.UTC) + delta, end_from_trigger=end_from_trigger)


class FileTrigger(BaseTrigger):
    """Fires when a file matches ``filepath`` (a glob, on any fsspec filesystem), checking
    every ``poke_interval`` seconds; the payload is the first match."""

    def __init__(self, filepath: str, recursive: bool = False, poke_interval: float = 5.0) -> None:
        super().__init__()
        self.filepath = filepath
        self.recursive = recursive
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.triggers.FileTrigger",
            {"filepath": self.filepath, "recursive": self.recursive, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        while True:
            found = await asyncio.to_thread(first_file, self.filepath, self.recursive)
            if found is not None:
                yield TriggerEvent(found)
                return
            await asyncio.sleep(self.poke_interval)


class FileDeleteTrigger(BaseTrigger):
    """Fires once ``filepath`` exists, after deleting it (an asset watcher's "a flag file
    arrived"); checks every ``poke_interval`` seconds."""

    def __init__(self, filepath: str, poke_interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__()
        self.filepath = filepath
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.triggers.FileDeleteTrigger",
            {"filepath": self.filepath, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        while True:
            if await asyncio.to_thread(_take, self.filepath):
                yield TriggerEvent(True)
                return
            await asyncio.sleep(self.poke_interval)


class DirectoryFileDeleteTrigger(BaseTrigger):
    """Fires once ``filename`` is in ``directory``, after deleting it."""

    def __init__(self, directory: str, filename: str, poke_interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__()
        self.directory = directory
        self.filename = filename
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.triggers.DirectoryFileDeleteTrigger",
            {"directory": self.directory, "filename": self.filename, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        path = os.path.join(self.directory, self.filename)
        while True:
            if await asyncio.to_thread(_take, path):
                yield TriggerEvent({"directory": self.directory, "filename": self.filename})
                return
            await asyncio.sleep(self.poke_interval)


def _take(path: str) -> bool:
    """Delete ``path`` if it is a file; True when this call took it."""
    try:
        if not os.path.isfile(path):
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False  # taken by someone else between the look and the unlink


def first_file(pattern: str, recursive: bool = False) -> str | None:
    """The first file matching ``pattern``, or one inside a matching folder; a local path
    uses :mod:`glob` (``**`` with ``recursive``), a URL its fsspec filesystem."""
    if "://" not in pattern:
        for path in sorted(glob.glob(pattern, recursive=recursive)):
            if os.path.isfile(path):
                return path
            for root, _, files in os.walk(path):
                if files:
                    return os.path.join(root, sorted(files)[0])
        return None
    import fsspec  # only for URLs: DAG files that never use one do not pay for it

    fs, _, _ = fsspec.get_fs_token_paths(pattern)
    for path in sorted(fs.glob(pattern, maxdepth=None if recursive else 1)):
        if fs.isfile(path):
            return fs.unstrip_protocol(path)  # type: ignore[no-any-return]
        inside = [p for p in fs.find(path) if fs.isfile(p)]
        if inside:
            return fs.unstrip_protocol(sorted(inside)[0])  # type: ignore[no-any-return]
    return None


class _StoreWatch(BaseTrigger):
    """A trigger that waits on other DAG runs' states. The scheduler evaluates it in its
    own turn, against the store it already reads, instead of a triggerer polling it."""

    evaluated_by_scheduler = True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        raise RuntimeError(f"{type(self).__name__} is evaluated by the scheduler, not run on a triggerer")
        yield  # pragma: no cover


class DagStateTrigger(_StoreWatch):
    """Fires when every run in ``run_ids`` (or at ``logical_dates``) of ``dag_id`` is in one
    of ``states``; the payload maps each run id to its state."""

    def __init__(
        self,
        dag_id: str,
        states: list[str],
        run_ids: list[str] | None = None,
        logical_dates: list[dt.datetime] | None = None,
        poll_interval: float = 5.0,
        execution_dates: list[dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.states = [str(s) for s in states]
        self.run_ids = list(run_ids) if run_ids is not None else None
        self.logical_dates = list(logical_dates or execution_dates or []) or None
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.triggers.DagStateTrigger",
            {
                "dag_id": self.dag_id,
                "states": self.states,
                "run_ids": self.run_ids,
                "logical_dates": self.logical_dates,
                "poll_interval": self.poll_interval,
            },
        )


class WorkflowTrigger(_StoreWatch):
    """What a deferrable ``ExternalTaskSensor`` waits on: the payload's ``status`` is
    ``success`` when the external DAG, tasks or task group reached ``allowed_states`` on
    every date, ``failed`` or ``skipped`` as soon as any reached those states."""

    def __init__(
        self,
        external_dag_id: str,
        run_ids: list[str] | None = None,
        execution_dates: list[dt.datetime] | None = None,
        logical_dates: list[dt.datetime] | None = None,
        external_task_ids: list[str] | None = None,
        external_task_group_id: str | None = None,
        failed_states: list[str] | None = None,
        skipped_states: list[str] | None = None,
        allowed_states: list[str] | None = None,
        poke_interval: float = 2.0,
        soft_fail: bool = False,
    ) -> None:
        super().__init__()
        self.external_dag_id = external_dag_id
        self.run_ids = list(run_ids) if run_ids is not None else None
        self.logical_dates = list(logical_dates or execution_dates or []) or None
        self.external_task_ids = list(external_task_ids) if external_task_ids else None
        self.external_task_group_id = external_task_group_id
        self.failed_states = list(failed_states or [])
        self.skipped_states = list(skipped_states or [])
        self.allowed_states = list(allowed_states or ["success"])
        self.poke_interval = poke_interval
        self.soft_fail = soft_fail

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.triggers.WorkflowTrigger",
            {
                "external_dag_id": self.external_dag_id,
                "run_ids": self.run_ids,
                "logical_dates": self.logical_dates,
                "external_task_ids": self.external_task_ids,
                "external_task_group_id": self.external_task_group_id,
                "failed_states": self.failed_states,
                "skipped_states": self.skipped_states,
                "allowed_states": self.allowed_states,
                "poke_interval": self.poke_interval,
                "soft_fail": self.soft_fail,
            },
        )
