"""The run-time context a task sees: ``get_current_context()`` and ``**context``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from millstream.errors import TaskFlowError

#: Keys a task may ask for by naming a parameter after them (``def f(ds, ti): ...``).
CONTEXT_KEYS = frozenset(
    {
        "logical_date",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "task_instance_key_str",
        "macros",
        "prev_start_date_success",
        "templates_dict",
        "data_interval_start",
        "data_interval_end",
        "run_id",
        "dag_run",
        "dag",
        "task",
        "ti",
        "task_instance",
        "map_index",
        "params",
        "conf",
        "triggering_asset_events",
        "outlet_events",
        "inlet_events",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
        "var",
        "conn",
    }
)

Context = dict[str, Any]

_current: ContextVar[Context | None] = ContextVar("millstream_context", default=None)


def get_current_context() -> Context:
    """The context of the task that is running now.

    Raises a :class:`TaskFlowError` outside a running task (for instance when called at
    DAG-definition time, which is a common porting mistake).
    """
    ctx = _current.get()
    if ctx is None:
        raise TaskFlowError(
            "get_current_context() was called outside a running task; call it inside the "
            "body of a @task function"
        )
    return ctx


@contextmanager
def set_current_context(ctx: Context) -> Iterator[Context]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
