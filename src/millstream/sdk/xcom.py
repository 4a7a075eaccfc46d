"""References to a task's output, used to wire tasks together (``summarize(processed)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from millstream.sdk.task import Task


class XComArg:
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

    def __iter__(self) -> Any:
        raise TypeError(
            f"the output of task {self.task_id!r} is only known at run time and cannot be "
            "iterated while the DAG is defined; pass it to a task, or use .expand() to map "
            "over it"
        )

    def __repr__(self) -> str:
        return f"XComArg({self.task_id!r}, {self.key!r})"


class DagParam:
    """A ``@dag`` function's parameter: resolves to ``params[name]`` when a task runs."""

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"


def find_xcom_args(value: Any) -> list[XComArg]:
    """Every XComArg inside ``value`` (nested lists, tuples, sets and dict values)."""
    found: list[XComArg] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, XComArg):
            found.append(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return found
