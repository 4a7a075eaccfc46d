"""``@setup`` and ``@teardown``: ``@task`` with a role.

Apart from ``setup_teardown.py`` (the wiring of roles into the DAG, which tasks call)
because these build on ``@task`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from millstream.sdk.decorators import TaskDecorator, task


def decorator(kind: str) -> Callable[..., Any]:
    """``@setup`` / ``@teardown(on_failure_fail_dagrun=...)`` on top of ``@task``."""

    def outer(python_callable: Callable[..., Any] | None = None, **config: Any) -> Any:
        role = {
            "role": kind,
            **(
                {"on_failure_fail_dagrun": config.pop("on_failure_fail_dagrun")}
                if "on_failure_fail_dagrun" in config
                else {}
            ),
        }

        def wrap(fn: Callable[..., Any]) -> TaskDecorator:
            if isinstance(fn, TaskDecorator):
                return TaskDecorator(fn.function, kind=fn.kind, config={**fn.config, **config}, role=role)
            base = task(fn, **config)
            return TaskDecorator(base.function, kind=base.kind, config=base.config, role=role)

        return wrap(python_callable) if python_callable is not None else wrap

    return outer


setup = decorator("setup")
teardown = decorator("teardown")
