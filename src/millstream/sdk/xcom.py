"""References to task outputs, used to wire tasks together (``summarize(processed)``),
and the lazy transformations of what a task maps over (``.map``, ``.zip``, ``.concat``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from millstream.sdk.task import Task
    from millstream.sdk.taskgroup import TaskGroup

NOTSET: Any = object()


class _Mappable:
    """Something ``expand()`` can map over that is only known at run time."""

    def map(self, fn: Callable[[Any], Any]) -> MapArg:
        """Transform each value when it is used (in the worker), without a task of its own."""
        return MapArg(self, fn)

    def zip(self, *others: Any, fillvalue: Any = NOTSET) -> ZipArg:
        """Pair values up, as ``zip``; with ``fillvalue``, as ``itertools.zip_longest``."""
        return ZipArg((self, *others), fillvalue)

    def concat(self, *others: Any) -> ConcatArg:
        """The values of this, then of each of ``others``."""
        return ConcatArg((self, *others))

    def __iter__(self) -> Any:
        raise TypeError(
            "a task's output is only known at run time and cannot be iterated while the DAG is "
            "defined; pass it to a task, or use .expand() to map over it"
        )


class XComArg(_Mappable):
    """The future output of ``task`` (or one key of it, with ``multiple_outputs``).

    Passing it to another task call creates the dependency edge and, at run time, the
    value. ``>>`` and ``<<`` act on the producing task.
    """

    def __init__(self, task: Task, key: str = "return_value") -> None:
        self.operator = task
        self.key = key

    @property
    def task_id(self) -> str:
        return self.operator.task_id

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __rshift__(self, other: Any) -> Any:
        return self.operator >> other

    def __lshift__(self, other: Any) -> Any:
        return self.operator << other

    def __rrshift__(self, other: Any) -> XComArg:
        self.operator.__rrshift__(other)
        return self

    def __rlshift__(self, other: Any) -> XComArg:
        self.operator.__rlshift__(other)
        return self

    def as_setup(self) -> XComArg:
        self.operator.as_setup()
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> XComArg:
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> XComArg:
        self.operator.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.operator.__exit__(*exc)

    def __repr__(self) -> str:
        return f"XComArg({self.task_id!r}, {self.key!r})"

    def __str__(self) -> str:
        """As in Airflow: a template that pulls this value, so ``f"... {xcom_arg} ..."`` in a
        template field renders the value at run time (and makes no dependency edge)."""
        dag_id = self.operator.dag.dag_id if getattr(self.operator, "dag", None) is not None else None
        where = f"task_ids='{self.task_id}'" + (f", dag_id='{dag_id}'" if dag_id else "")
        return f"{{{{ task_instance.xcom_pull({where}, key='{self.key}') }}}}"


class MapArg(_Mappable):
    def __init__(self, source: Any, fn: Callable[[Any], Any]) -> None:
        self.source = source
        self.fn = fn


class ZipArg(_Mappable):
    def __init__(self, parts: tuple[Any, ...], fillvalue: Any) -> None:
        self.parts = parts
        self.fillvalue = fillvalue


class ConcatArg(_Mappable):
    def __init__(self, parts: tuple[Any, ...]) -> None:
        self.parts = parts


class DagParam:
    """A ``@dag`` function's parameter: resolves to ``params[name]`` when a task runs."""

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"


class MappedArgument:
    """An argument of an expanded task group: in instance i, the group's i-th value."""

    def __init__(self, group: TaskGroup, name: str) -> None:
        self.group = group
        self.name = name

    def __repr__(self) -> str:
        return f"MappedArgument({self.group.group_id!r}, {self.name!r})"


def find_xcom_args(value: Any) -> list[XComArg]:
    """Every XComArg inside ``value``: nested in containers or in .map/.zip/.concat."""
    found: list[XComArg] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, XComArg):
            found.append(v)
        elif isinstance(v, MapArg):
            stack.append(v.source)
        elif isinstance(v, (ZipArg, ConcatArg)):
            stack.extend(v.parts)
        elif isinstance(v, MappedArgument):
            stack.extend((v.group.mapped_input or {}).values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return found


class PokeReturnValue:
    """What a sensor may return: whether it is done, and the value to pass on if so."""

    def __init__(self, is_done: bool, xcom_value: Any = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return bool(self.is_done)
