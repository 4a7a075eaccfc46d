"""Classic Airflow-style operators, so DAGs written with them port unchanged.

Unlike decorated tasks, an operator's ``task_id`` is taken literally: using one twice
in a DAG is an error, as in Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.sdk.task import Task


def _noop() -> None:
    return None


class EmptyOperator(Task):
    """A task that does nothing: a join point or a placeholder."""

    def __init__(self, task_id: str, **config: Any) -> None:
        super().__init__(task_id=task_id, python_callable=_noop, config=config, explicit_id=True)


class PythonOperator(Task):
    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        **config: Any,
    ) -> None:
        super().__init__(
            task_id=task_id,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            config=config,
            explicit_id=True,
        )


class BashOperator(Task):
    """Runs ``bash_command``; its last line of output is the task's result."""

    def __init__(self, task_id: str, bash_command: str, env: Mapping[str, str] | None = None, **config: Any):
        super().__init__(
            task_id=task_id,
            python_callable=None,
            kind="bash",
            op_kwargs={"bash_command": bash_command, "env": dict(env) if env else None},
            config=config,
            explicit_id=True,
        )
