"""Setup and teardown: resources that are created before work and always cleaned up.

``@setup`` / ``@teardown`` (or ``.as_setup()`` / ``.as_teardown(setups=...)``) mark tasks.
A teardown runs once all the work in its scope is done, whether it succeeded or failed,
as long as one of its setups succeeded. ``with create() >> delete():`` scopes the tasks
created in the block between them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from millstream.core.trigger_rules import TriggerRule
from millstream.errors import DagDefinitionError

if TYPE_CHECKING:
    from millstream.sdk.task import Task


class Scope:
    """An open ``with setup >> teardown:`` block and the tasks created inside it."""

    def __init__(self, setups: list[Task], teardowns: list[Task]) -> None:
        self.setups = setups
        self.teardowns = teardowns
        self.tasks: list[Task] = []

    def close(self) -> None:
        """Put the block's tasks between its setups and teardowns."""
        ids = {t.task_id for t in self.tasks}
        for t in self.tasks:
            if not (t.upstream_task_ids & ids):
                for s in self.setups:
                    if s is not t:
                        s.set_downstream(t)
            if not (t.downstream_task_ids & ids):
                for td in self.teardowns:
                    if td is not t:
                        t.set_downstream(td)


_scopes: ContextVar[tuple[Scope, ...]] = ContextVar("millstream_scopes", default=())


def register_in_scopes(task: Task) -> None:
    for scope in _scopes.get():
        scope.tasks.append(task)


def enter_scope(task: Task) -> Scope:
    """``with x:`` where x is a teardown (its setups are its upstream setups) or a setup."""
    if task.is_teardown:
        setups = [task.dag.tasks[u] for u in sorted(task.upstream_task_ids) if task.dag.tasks[u].is_setup]
        scope = Scope(setups, [task])
    elif task.is_setup:
        teardowns = [
            task.dag.tasks[d] for d in sorted(task.downstream_task_ids) if task.dag.tasks[d].is_teardown
        ]
        scope = Scope([task], teardowns)
    else:
        raise DagDefinitionError(
            f"`with {task.task_id}:` needs a setup or teardown task; mark it with @setup/@teardown, "
            "or write `with create() >> delete():`",
            filename=task.filename,
            lineno=task.lineno,
        )
    scope.token = _scopes.set((*_scopes.get(), scope))  # type: ignore[attr-defined]
    return scope


def exit_scope(scope: Scope) -> None:
    _scopes.reset(scope.token)  # type: ignore[attr-defined]
    scope.close()


def make_setup(task: Task) -> None:
    if task.is_teardown:
        raise DagDefinitionError(
            f"task {task.task_id!r} is already a teardown; a task cannot be both",
            filename=task.filename,
            lineno=task.lineno,
        )
    task.is_setup = True


def make_teardown(task: Task, setups: list[Task], on_failure_fail_dagrun: bool | None = None) -> None:
    if task.is_setup:
        raise DagDefinitionError(
            f"task {task.task_id!r} is already a setup; a task cannot be both",
            filename=task.filename,
            lineno=task.lineno,
        )
    task.is_teardown = True
    task.config["trigger_rule"] = TriggerRule.ALL_DONE_SETUP_SUCCESS
    if on_failure_fail_dagrun is not None:
        task.on_failure_fail_dagrun = on_failure_fail_dagrun
    for s in setups:
        if s is task:
            raise DagDefinitionError(
                f"task {task.task_id!r} cannot be the teardown of itself",
                filename=task.filename,
                lineno=task.lineno,
            )
        make_setup(s)
        s.set_downstream(task)


def validate(tasks: dict[str, Task]) -> None:
    """Checks made when a DAG is complete: each teardown has a setup, and what follows a
    setup directly (other than its teardowns) uses all_success."""
    for t in tasks.values():
        if t.is_teardown and not any(tasks[u].is_setup for u in t.upstream_task_ids):
            raise DagDefinitionError(
                f"teardown {t.task_id!r} has no setup: give it one with "
                f"`.as_teardown(setups=create_task)` or `create_task >> {t.task_id}`",
                filename=t.filename,
                lineno=t.lineno,
            )
        if t.is_teardown and t.config["trigger_rule"] != TriggerRule.ALL_DONE_SETUP_SUCCESS:
            raise DagDefinitionError(
                f"teardown {t.task_id!r}: a teardown's trigger rule cannot be changed "
                f"(it is all_done_setup_success), got {t.config['trigger_rule']}",
                filename=t.filename,
                lineno=t.lineno,
            )
        if t.is_setup:
            for d in t.downstream_task_ids:
                follower = tasks[d]
                rule = follower.config["trigger_rule"]
                if not follower.is_teardown and rule != TriggerRule.ALL_SUCCESS:
                    raise DagDefinitionError(
                        f"task {d!r} directly follows setup {t.task_id!r} and must use trigger_rule "
                        f"all_success (it has {rule}), as in Airflow: work must not start without "
                        "its resource",
                        filename=follower.filename,
                        lineno=follower.lineno,
                    )
