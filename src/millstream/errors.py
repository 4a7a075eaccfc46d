"""Every error Millstream raises on purpose derives from :class:`MillstreamError`.

::

    MillstreamError
    ├── DagDefinitionError        a DAG file describes something impossible (file, line)
    │   ├── CycleError            the dependencies loop
    │   └── DuplicateTaskIdError  two tasks share an id
    ├── ScheduleError             a schedule / cron string that cannot be understood
    ├── ParamValidationError      a run's conf does not fit the DAG's params
    ├── NotFoundError             an unknown DAG, run, task or map index
    ├── ConflictError             an operation that contradicts the current state
    ├── TaskFlowError             task code misused the API at run time
    └── TemplateError             a template field that cannot be rendered (which task, field, text)
    SkipTask / FailTask           raised by task code to end an attempt early (not errors)

Messages name the object involved and say what to do next; the CLI prints them on one
line and exits 1.
"""

from __future__ import annotations

from millstream.core.timetables import ScheduleError as _CoreScheduleError


class MillstreamError(Exception):
    """Root of all errors Millstream raises deliberately."""


class DagDefinitionError(MillstreamError):
    """A DAG definition is invalid; carries the file and line where it was written."""

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        where = f"{filename}:{lineno}: " if filename and lineno else ""
        super().__init__(f"{where}{message}")


class CycleError(DagDefinitionError):
    pass


class DuplicateTaskIdError(DagDefinitionError):
    pass


class ScheduleError(MillstreamError, _CoreScheduleError):
    pass


class ParamValidationError(MillstreamError):
    pass


class NotFoundError(MillstreamError):
    pass


class ConflictError(MillstreamError):
    pass


class TaskFlowError(MillstreamError):
    pass


class TemplateError(MillstreamError):
    """A task's template field could not be rendered; fails the attempt before it runs."""


class SkipTask(Exception):  # noqa: N818 - named for what it does, like Airflow's
    """Raise inside a task to end it as ``skipped`` (Airflow's AirflowSkipException)."""


class FailTask(Exception):  # noqa: N818
    """Raise inside a task to fail it at once, without retries (AirflowFailException)."""


AirflowSkipException = SkipTask
AirflowFailException = FailTask
