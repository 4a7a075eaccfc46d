"""The standard provider's sensors: time, day of week, files, a Python callable, a bash
command. Each pokes like any sensor (``poke`` or ``reschedule`` mode); the time and file
sensors also take ``deferrable=True`` and then wait on the triggerer instead of a worker.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from millstream.errors import FailTask
from millstream.sdk.baseoperator import BaseSensorOperator
from millstream.sdk.operators import set_python_arguments
from millstream.sdk.standard.triggers import DateTimeTrigger, FileTrigger, TimeDeltaTrigger, first_file
from millstream.sdk.standard.weekday import WeekDay


def _refuse_start_from_trigger(task_id: str, kwargs: dict[str, Any]) -> None:
    """Airflow's ``start_from_trigger`` starts a task on the triggerer without a worker;
    Millstream starts every deferrable task on a worker, which defers at once."""
    if kwargs.pop("start_from_trigger", False) or kwargs.pop("trigger_kwargs", None):
        raise ValueError(
            f"{task_id}: start_from_trigger is refused: Millstream starts a deferrable task on a worker, "
            "which defers at once; drop start_from_trigger and trigger_kwargs"
        )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _minutes(value: dt.timedelta | int) -> dt.timedelta:
    return value if isinstance(value, dt.timedelta) else dt.timedelta(minutes=int(value))


class DateTimeSensor(BaseSensorOperator):
    """Waits until ``target_time`` (a datetime or a templated ISO string) has passed."""

    template_fields: Sequence[str] = ("target_time",)

    def __init__(
        self,
        *,
        target_time: str | dt.datetime,
        deferrable: bool = False,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_time = target_time
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    @property
    def _moment(self) -> dt.datetime:
        value: Any = self.target_time
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        raise TypeError(f"Expected str or datetime.datetime type for target_time. Got {type(value)}")

    def poke(self, context: Mapping[str, Any]) -> bool:
        print(f"Checking if the time ({self.target_time}) has come")
        return _utcnow() > self._moment

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=DateTimeTrigger(moment=self._moment, end_from_trigger=self.end_from_trigger),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        return None


class DateTimeSensorAsync(DateTimeSensor):
    """:class:`DateTimeSensor` that always defers."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["deferrable"] = True
        super().__init__(**kwargs)


class TimeSensor(BaseSensorOperator):
    """Waits until ``target_time`` (a time of day in the DAG's timezone) today."""

    def __init__(
        self,
        *,
        target_time: dt.time,
        deferrable: bool = False,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        zone = ZoneInfo(self.dag.timezone if self.dag else "UTC")
        local = dt.datetime.combine(dt.datetime.now(zone).date(), target_time, zone)
        self.target_time = target_time
        self.target_datetime = local.astimezone(dt.UTC)
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    def poke(self, context: Mapping[str, Any]) -> bool:
        print(f"Checking if the time ({self.target_time}) has come")
        return _utcnow() > self.target_datetime

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=DateTimeTrigger(moment=self.target_datetime, end_from_trigger=self.end_from_trigger),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        return None


class TimeDeltaSensor(BaseSensorOperator):
    """Waits until ``delta`` (a timedelta, or minutes) after the run's data interval end
    (its ``run_after`` when it has none)."""

    template_fields: Sequence[str] = ("delta",)

    def __init__(
        self,
        *,
        delta: dt.timedelta | int,
        deferrable: bool = False,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delta = delta
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    def _target(self, context: Mapping[str, Any]) -> dt.datetime:
        run = context["dag_run"]
        base = context.get("data_interval_end") or getattr(run, "run_after", None) or run.logical_date
        return base + _minutes(self.delta)  # type: ignore[no-any-return]

    def poke(self, context: Mapping[str, Any]) -> bool:
        target = self._target(context)
        print(f"Checking if the delta has elapsed: target {target}")
        return _utcnow() > target

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        target = self._target(context)
        if _utcnow() > target:
            return True
        self.defer(
            trigger=DateTimeTrigger(moment=target, end_from_trigger=self.end_from_trigger),
            method_name="execute_complete",
            timeout=self.timeout,
        )

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        return None


class TimeDeltaSensorAsync(TimeDeltaSensor):
    """:class:`TimeDeltaSensor` that always defers."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["deferrable"] = True
        super().__init__(**kwargs)


class WaitSensor(BaseSensorOperator):
    """Waits ``time_to_wait`` (a timedelta, or minutes) from when it starts."""

    template_fields: Sequence[str] = ("time_to_wait",)

    def __init__(self, *, time_to_wait: dt.timedelta | int, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.time_to_wait = time_to_wait
        self.deferrable = deferrable

    def execute(self, context: Mapping[str, Any]) -> None:
        wait = _minutes(self.time_to_wait)
        if self.deferrable:
            self.defer(trigger=TimeDeltaTrigger(wait, end_from_trigger=True), method_name="execute_complete")
        time.sleep(wait.total_seconds())

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        return None


class DayOfWeekSensor(BaseSensorOperator):
    """Waits until it is one of ``week_day`` (today in the DAG's timezone, or the logical
    date's day with ``use_task_logical_date``)."""

    def __init__(
        self,
        *,
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        self._week_day_num = WeekDay.validate_week_day(week_day)

    def poke(self, context: Mapping[str, Any]) -> bool:
        print(f"Poking until weekday is in {self.week_day}")
        if self.use_task_logical_date:
            day = (context.get("logical_date") or context["dag_run"].run_after).isoweekday()
        else:
            day = dt.datetime.now(ZoneInfo(self.dag.timezone)).isoweekday()
        return day in self._week_day_num


class FileSensor(BaseSensorOperator):
    """Waits for a file or a folder with files matching ``filepath`` (a glob; ``**`` with
    ``recursive``; a URL on any fsspec filesystem)."""

    template_fields: Sequence[str] = ("filepath",)
    ui_color = "#91818a"

    def __init__(
        self,
        *,
        filepath: str,
        fs_conn_id: str = "fs_default",
        recursive: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        _refuse_start_from_trigger(str(kwargs.get("task_id")), kwargs)
        super().__init__(**kwargs)
        if fs_conn_id != "fs_default":
            raise ValueError(
                f"FileSensor {self.task_id!r}: fs_conn_id={fs_conn_id!r} is refused: Millstream has no "
                "Connections yet, so only the default (paths as given) is honoured; put the base path "
                "in filepath"
            )
        self.filepath = filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive
        self.deferrable = deferrable

    def poke(self, context: Mapping[str, Any]) -> bool:
        print(f"Poking for file {self.filepath}")
        found = first_file(self.filepath, self.recursive)
        if found is not None:
            print(f"Found file {found}")
        return found is not None

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if not self.poke(context):
            self.defer(
                trigger=FileTrigger(self.filepath, self.recursive, self.poke_interval),
                method_name="execute_complete",
                timeout=self.timeout,
            )
        return None

    def execute_complete(self, context: Mapping[str, Any], event: Any = None) -> None:
        print(f"{event} found")


class PythonSensor(BaseSensorOperator):
    """Waits until ``python_callable`` returns a truthy value (or a ``PokeReturnValue``)."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_python_arguments(self, python_callable, op_args, op_kwargs, templates_dict)

    def poke(self, context: Mapping[str, Any]) -> Any:
        print(f"Poking callable: {getattr(self.python_callable, '__name__', self.python_callable)}")
        return self.call_python(context)


class BashSensor(BaseSensorOperator):
    """Waits until ``bash_command`` exits 0. With ``retry_exit_code`` set, only that code
    means "not yet" and any other non-zero code fails the task; without it every non-zero
    code means "not yet"."""

    template_fields: Sequence[str] = ("bash_command", "env")

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        output_encoding: str = "utf-8",
        retry_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = dict(env) if env is not None else None
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    def poke(self, context: Mapping[str, Any]) -> bool:
        with tempfile.TemporaryDirectory(prefix="millstreamtmp") as tmp:
            script = os.path.join(tmp, f"{self.task_id}.sh")
            with open(script, "w", encoding="utf-8") as f:
                f.write(self.bash_command)
            print(f"Running command: {self.bash_command}")
            proc = subprocess.run(
                ["bash", script],
                cwd=tmp,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=False,
            )
        for line in proc.stdout.decode(self.output_encoding, "replace").splitlines():
            print(line)
        print(f"Command exited with return code {proc.returncode}")
        if proc.returncode == 0:
            return True
        if self.retry_exit_code is not None and proc.returncode != self.retry_exit_code:
            raise FailTask(f"Command exited with return code {proc.returncode}")
        return False
