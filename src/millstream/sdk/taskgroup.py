"""Task groups: a prefix for task ids and a unit for dependencies (``group >> task``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from millstream.errors import DagDefinitionError
from millstream.sdk._location import caller_location
from millstream.sdk.current import current_dag
from millstream.sdk.mapping import validate_mapped
from millstream.sdk.xcom import MappedArgument

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
        mapped_input: dict[str, Any] | None = None,
    ) -> None:
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
        # Set for an expanded group: every task inside is mapped over these arguments.
        self.mapped_input = mapped_input
        outer = self.parent.mapped_group() if self.parent else None
        if mapped_input is not None and outer is not None:
            file, line = caller_location()
            raise DagDefinitionError(
                f"task group {group_id!r} is expanded inside the expanded group "
                f"{outer.group_id!r}; nested mapped groups are not supported",
                filename=file,
                lineno=line,
            )
        self.dag.task_group_ids.add(self.group_id)
        self.dag.task_group_dict[self.group_id] = self

    def _unique_id(self, label: str) -> str:
        full = self.parent.child_id(label) if self.parent else label
        assert self.dag is not None
        if full not in self.dag.task_group_ids:
            return full
        n = 1
        while f"{full}__{n}" in self.dag.task_group_ids:
            n += 1
        return f"{full}__{n}"

    def mapped_group(self) -> TaskGroup | None:
        """The innermost expanded group this group is (or is inside of)."""
        g: TaskGroup | None = self
        while g is not None:
            if g.mapped_input is not None:
                return g
            g = g.parent
        return None

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
        """The group's last tasks, ignoring its teardowns: what comes after the group does
        not wait for the group's cleanup (as in Airflow)."""
        work = {t.task_id for t in self.children if not t.is_teardown}
        return [t for t in self.children if not t.is_teardown and not (t.downstream_task_ids & work)]

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


class TaskGroupFactory:
    """What ``@task_group`` turns a function into: call it, or ``.expand()`` it."""

    def __init__(
        self, fn: Callable[..., Any], options: dict[str, Any], partial: dict[str, Any] | None = None
    ):
        self.fn = fn
        self.options = options
        self.partial_kwargs = dict(partial or {})
        functools.update_wrapper(self, fn)

    def _build(
        self, mapped_input: dict[str, Any] | None, kwargs: dict[str, Any], args: tuple[Any, ...] = ()
    ) -> Any:
        opts = self.options
        with TaskGroup(
            opts["group_id"] or self.fn.__name__,
            prefix_group_id=opts["prefix_group_id"],
            tooltip=opts["tooltip"] or (self.fn.__doc__ or "").strip(),
            default_args=opts["default_args"],
            mapped_input=mapped_input,
        ) as group:
            if mapped_input is not None:
                kwargs = {**kwargs, **{name: MappedArgument(group, name) for name in mapped_input}}
            result = self.fn(*args, **kwargs)
        return group if result is None else result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._build(None, {**self.partial_kwargs, **kwargs}, args)

    def partial(self, **kwargs: Any) -> TaskGroupFactory:
        return TaskGroupFactory(self.fn, self.options, {**self.partial_kwargs, **kwargs})

    def expand(self, **mapped: Any) -> Any:
        """One instance of the whole group per element; its tasks share the map index."""
        validate_mapped(self.fn.__name__, self.fn, mapped)
        return self._build(dict(mapped), dict(self.partial_kwargs))


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
    nothing. ``.expand(x=values)`` builds a mapped group: every task inside runs once
    per value, instance i of each seeing the i-th value.
    """
    options = {
        "group_id": group_id,
        "prefix_group_id": prefix_group_id,
        "tooltip": tooltip,
        "default_args": default_args,
    }

    def wrap(fn: Callable[..., Any]) -> TaskGroupFactory:
        return TaskGroupFactory(fn, options)

    return wrap(python_callable) if python_callable is not None else wrap
