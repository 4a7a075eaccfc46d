"""Task groups: a prefix for task ids and a unit for dependencies (``group >> task``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from millstream.errors import DagDefinitionError
from millstream.sdk._location import caller_location

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG
    from millstream.sdk.task import Task

_group_stack: ContextVar[tuple[TaskGroup, ...]] = ContextVar("millstream_groups", default=())


def current_group() -> TaskGroup | None:
    stack = _group_stack.get()
    return stack[-1] if stack else None


class TaskGroup:
    """Tasks created inside ``with TaskGroup("g"):`` get ids ``g.<task_id>``."""

    def __init__(
        self,
        group_id: str,
        *,
        prefix_group_id: bool = True,
        tooltip: str = "",
        default_args: dict[str, Any] | None = None,
        dag: DAG | None = None,
    ) -> None:
        from millstream.sdk.dag import current_dag

        self.dag = dag or current_dag()
        if self.dag is None:
            file, line = caller_location()
            raise DagDefinitionError(
                f"task group {group_id!r} is created outside a DAG; create it inside a "
                "@dag function or a `with DAG(...)` block",
                filename=file,
                lineno=line,
            )
        self.parent: TaskGroup | None = current_group()
        self.label = group_id
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.default_args: dict[str, Any] = {
            **(self.parent.default_args if self.parent else {}),
            **(default_args or {}),
        }
        self.group_id = self._unique_id(group_id)
        self.children: list[Task] = []
        self.dag.task_group_ids.add(self.group_id)

    def _unique_id(self, label: str) -> str:
        full = self.parent.child_id(label) if self.parent else label
        assert self.dag is not None
        if full not in self.dag.task_group_ids:
            return full
        n = 1
        while f"{full}__{n}" in self.dag.task_group_ids:
            n += 1
        return f"{full}__{n}"

    def child_id(self, label: str) -> str:
        """The id a task (or nested group) called ``label`` gets inside this group."""
        if self.prefix_group_id:
            return f"{self.group_id}.{label}"
        return self.parent.child_id(label) if self.parent else label

    def add(self, task: Task) -> None:
        self.children.append(task)
        if self.parent:
            self.parent.add(task)

    def roots(self) -> list[Task]:
        ids = {t.task_id for t in self.children}
        return [t for t in self.children if not (t.upstream_task_ids & ids)]

    def leaves(self) -> list[Task]:
        ids = {t.task_id for t in self.children}
        return [t for t in self.children if not (t.downstream_task_ids & ids)]

    def __enter__(self) -> TaskGroup:
        self._token = _group_stack.set((*_group_stack.get(), self))
        return self

    def __exit__(self, *exc: object) -> None:
        _group_stack.reset(self._token)

    def __rshift__(self, other: Any) -> Any:
        for leaf in self.leaves():
            leaf >> other
        return other

    def __lshift__(self, other: Any) -> Any:
        for root in self.roots():
            root << other
        return other

    def __rrshift__(self, other: Any) -> TaskGroup:
        self << other
        return self

    def __rlshift__(self, other: Any) -> TaskGroup:
        self >> other
        return self

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id}>"


def task_group(
    python_callable: Callable[..., Any] | None = None,
    *,
    group_id: str | None = None,
    prefix_group_id: bool = True,
    tooltip: str = "",
    default_args: dict[str, Any] | None = None,
) -> Any:
    """Decorate a function whose tasks form a group; calling it builds the group.

    The call returns what the function returns (typically the XComArg of its last task,
    so the group can be wired like a task), or the :class:`TaskGroup` when it returns
    nothing.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any) -> Any:
            with TaskGroup(
                group_id or fn.__name__,
                prefix_group_id=prefix_group_id,
                tooltip=tooltip or (fn.__doc__ or "").strip(),
                default_args=default_args,
            ) as group:
                result = fn(*args, **kwargs)
            return group if result is None else result

        return build

    return wrap(python_callable) if python_callable is not None else wrap
